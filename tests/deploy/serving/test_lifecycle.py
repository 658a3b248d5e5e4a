"""Starting and stopping: graceful shutdown finishes requests in flight (in a thread and as the real `serve`
process under SIGINT/SIGTERM), and bad settings fail before serving with one clear line."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import urllib.request

import numpy as np
import pytest
import tritonclient.http as httpclient

from attnx.core.errors import UserError
from attnx.deploy.serving.cli import bind, serve
from attnx.deploy.serving.models import load_models, parse_bundle_args
from tests.deploy.serving.conftest import expected, running_server
from tests.helpers import REPO_ROOT as ROOT


def send_in_threads(url: str, feeds: list[np.ndarray]) -> tuple[list[threading.Thread], dict[int, object]]:
    results: dict[int, object] = {}

    def one(i: int) -> None:
        client = httpclient.InferenceServerClient(url, network_timeout=60)
        try:
            tensor = httpclient.InferInput("input", list(feeds[i].shape), "FP32")
            tensor.set_data_from_numpy(feeds[i])
            results[i] = client.infer("tiny", [tensor]).as_numpy("output")
        except Exception as exc:  # recorded: the test asserts none happened
            results[i] = exc
        finally:
            client.close()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(feeds))]
    for t in threads:
        t.start()
    return threads, results


def wait_pending(url: str, n: int) -> None:
    """Until the server's Prometheus gauge says ``n`` requests are waiting to run."""
    want = f'nv_inference_pending_request_count{{model="tiny",version="1"}} {n}'
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"http://{url}/metrics", timeout=5) as r:
            if want in r.read().decode():
                return
        time.sleep(0.02)
    raise AssertionError(f"the server never had {n} pending requests")


def images(n: int) -> list[np.ndarray]:
    return [np.random.default_rng(i).standard_normal((1, 3, 16, 16)).astype(np.float32) for i in range(n)]


def test_shutdown_finishes_requests_in_flight(bundles):
    feeds = images(5)
    # a long queue delay keeps the 5 requests (fewer than max_batch) waiting inside the server
    with running_server([str(bundles["tiny"])], max_batch=8, max_delay_ms=3000) as (url, server):
        threads, results = send_in_threads(url, feeds)
        batcher = server.models[0].batcher
        wait_pending(url, 5)
        assert batcher.stats.execution_count == 0
        server.should_exit = True  # what SIGINT/SIGTERM do
        for t in threads:
            t.join(60)
    for i, feed in enumerate(feeds):
        assert isinstance(results[i], np.ndarray), results[i]
        np.testing.assert_allclose(
            results[i], expected(bundles["tiny"], {"input": feed})["output"], rtol=1e-5, atol=1e-6
        )
    assert batcher.stats.execution_count == 1 and batcher.stats.inference_count == 5  # one batch, at shutdown
    assert server.models[0].engine._closed  # engines closed after the drain
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://{url}/v2/health/live", timeout=5)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_serve_process_drains_on_signal_and_exits_0(bundles, sig):
    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    sock.close()  # the child binds it again; a free port is all this needs
    code = (
        "from attnx.deploy.serving.cli import serve; "
        f"serve([{str(bundles['tiny'])!r}], host='127.0.0.1', port={port}, max_delay_ms=2000)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        url = f"127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://{url}/v2/health/ready", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"server did not start: {proc.stderr.read().decode()[-2000:]}") from None
                time.sleep(0.1)
        feeds = images(3)
        threads, results = send_in_threads(url, feeds)
        wait_pending(url, 3)  # all three are inside the server, waiting out the 2 s queue delay
        proc.send_signal(sig)
        for t in threads:
            t.join(60)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err.decode()[-2000:]
    assert f"serving KServe v2 on http://127.0.0.1:{port}/v2" in out.decode()
    assert "model 'tiny' (ort fp32, batches ≤ 8, delay ≤ 2000 ms)" in out.decode()
    for i, feed in enumerate(feeds):
        assert isinstance(results[i], np.ndarray), results[i]
        np.testing.assert_allclose(
            results[i], expected(bundles["tiny"], {"input": feed})["output"], rtol=1e-5, atol=1e-6
        )


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_right_at_startup_stops_the_server(bundles, sig):
    """A signal sent the moment the "serving" line appears (before uvicorn installs its handlers) still ends in a
    graceful exit 0; a handler that raised could lose it inside a weakref callback and leave the server running."""
    for _ in range(5):  # a race: several tries
        proc = subprocess.Popen([sys.executable, "-m", "attnx.deploy.cli.main", "serve", str(bundles["tiny"]), "--port",
                                 "0"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
        try:
            line = "start"
            while line and "serving KServe v2" not in line:
                line = proc.stdout.readline()
            proc.send_signal(sig)
            _, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 0, err[-2000:]


def test_bundle_names(tmp_path, bundles):
    assert parse_bundle_args([bundles["tiny"], f"cls={bundles['multi']}"]) == [
        ("tiny", bundles["tiny"]),
        ("cls", bundles["multi"]),
    ]
    assert parse_bundle_args([str(bundles["tiny"]) + "/"])[0][0] == "tiny"
    odd = tmp_path / "has space"
    odd.mkdir()
    with pytest.raises(UserError, match="not usable in URLs .* NAME=PATH"):
        parse_bundle_args([odd])
    with pytest.raises(UserError, match="at least one bundle"):
        parse_bundle_args([])


@pytest.mark.parametrize(
    "args,options,fragment",
    [
        (["tiny", "tiny"], {}, "two bundles are named 'tiny'"),
        (["missing"], {}, "bundle not found"),
        (["tiny"], {"max_batch": 0}, "--max-batch must be ≥ 1"),
        (["tiny"], {"max_delay_ms": -1}, "--max-delay-ms must be ≥ 0"),
        (["tiny"], {"pool_size": 0}, "--pool-size must be ≥ 1"),
    ],
)
def test_bad_settings_fail_before_serving(bundles, tmp_path, args, options, fragment):
    paths = [str(bundles[a]) if a in bundles else str(tmp_path / a) for a in args]
    opts = {"max_batch": 8, "max_delay_ms": 1.0, "pool_size": 1, "threads": None, "max_queue": 16, **options}
    with pytest.raises(UserError, match=fragment):
        load_models(paths, **opts)


def test_port_in_use_is_a_user_error(bundles):
    taken = bind("127.0.0.1", 0)
    try:
        with pytest.raises(UserError, match=f"cannot listen on 127.0.0.1:{taken.getsockname()[1]}"):
            serve([str(bundles["tiny"])], port=taken.getsockname()[1])
    finally:
        taken.close()


def test_served_config_is_a_valid_triton_config(bundles):
    from attnx.deploy.serving.triton_repo import check_pbtxt, render_pbtxt

    with running_server([str(bundles["tiny"]), str(bundles["static"])], max_batch=4) as (url, _):
        for name in ("tiny", "static"):
            with urllib.request.urlopen(f"http://{url}/v2/models/{name}/config", timeout=10) as r:
                config = json.loads(r.read())
            check_pbtxt(render_pbtxt(config), config, name)


def test_importing_the_cli_functions_loads_no_heavy_library():
    heavy = "('torch', 'onnx', 'onnxruntime', 'fastapi', 'uvicorn', 'tritonclient', 'numpy')"
    code = f"import sys, attnx.deploy.serving.cli; print(sorted(m for m in {heavy} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert out.strip() == "[]"
