"""Bounded loopback load: 2,000 requests from 16 concurrent tritonclient clients, each with its own input and
1–2 rows, through dynamic batching; no errors, and every response carries exactly its own request's rows.
(Throughput and latency figures come from bench/serve_load.py, not from here.)"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from attnx.core.errors import UserError
from attnx.deploy.bundle.engine import Engine
from attnx.deploy.serving.load import check_loopback, run_load
from tests.deploy.serving.conftest import running_server


def workload(bundle, n: int, seed: int):
    rng = np.random.default_rng(seed)
    requests = [
        {"input": rng.standard_normal((int(rng.integers(1, 3)), 3, 16, 16)).astype(np.float32)} for _ in range(n)
    ]
    with Engine.load(bundle) as engine:
        want = [engine(r) for r in requests]
    return requests, want


@pytest.mark.slow
def test_2000_requests_16_clients_every_response_its_own(bundles):
    requests, want = workload(bundles["tiny"], 2000, seed=11)
    with running_server([str(bundles["tiny"])], max_batch=8, max_delay_ms=2.0, pool_size=2, threads=1) as (url, srv):
        result = run_load(url, "tiny", requests, want, concurrency=16, time_limit_s=240)
        stats = srv.models[0].batcher.stats
    assert result.errors == [] and result.mismatches == []
    assert result.completed == 2000
    assert stats.inference_count == sum(r["input"].shape[0] for r in requests)  # no row lost or duplicated
    assert stats.execution_count < 2000  # requests really were batched together
    assert max(stats.batch_sizes) <= 8


def test_concurrent_json_requests_to_two_models(bundles):
    requests, want = workload(bundles["tiny"], 200, seed=12)
    rng = np.random.default_rng(13)
    multi_req = []
    for _ in range(200):
        n = int(rng.integers(1, 4))
        multi_req.append({"x": rng.standard_normal((n, 4)).astype(np.float32), "k": rng.integers(-9, 9, (n, 4))})
    multi_want = [{"y": r["x"] * 2 + r["k"].astype(np.float32), "z": r["k"] + 1} for r in multi_req]
    with running_server([str(bundles["tiny"]), str(bundles["multi"])], max_batch=8, max_delay_ms=2.0) as (url, _):
        out = {}
        t = threading.Thread(
            target=lambda: out.update(multi=run_load(url, "multi", multi_req, multi_want, concurrency=8, binary=False))
        )
        t.start()
        tiny = run_load(url, "tiny", requests, want, concurrency=8, binary=False)
        t.join(240)
    for result in (tiny, out["multi"]):
        assert result.errors == [] and result.mismatches == [] and result.completed == 200


def test_load_generator_only_targets_loopback():
    assert check_loopback("127.0.0.1:8000") and check_loopback("localhost:1") and check_loopback("[::1]:80")
    for url in ("10.0.0.5:8000", "192.168.1.2:80", "example.com:80"):
        with pytest.raises(UserError, match="only targets loopback"):
            check_loopback(url)
