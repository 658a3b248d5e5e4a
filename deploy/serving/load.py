"""A bounded load generator for a KServe v2 server on this machine (used by bench/serve_load.py and the tests).

``concurrency`` threads, each with its own ``tritonclient.http`` (or ``tritonclient.grpc``) client, send the
prepared requests (a distinct input per request, tagged with its index as the request id) until all are sent or
the time limit passes, and check every response: its id, and its outputs against the result expected for *that*
request.
Only loopback addresses are accepted: this is a test tool, not a traffic generator.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from attnx.core.errors import UserError
from attnx.deploy.serving.protocol import v2_datatype

Feed = dict[str, np.ndarray]


@dataclass
class LoadResult:
    """A load run: requests sent, concurrency, wall time (s), per-request latencies (s), errors, mismatches."""

    requests: int
    concurrency: int
    wall_s: float
    latencies_s: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    mismatches: list[int] = field(default_factory=list)  # request indices whose response was not theirs

    @property
    def completed(self) -> int:
        """Requests answered correctly."""
        return len(self.latencies_s)

    def summary(self) -> dict[str, Any]:
        """The run as JSON-ready data: counts, throughput (requests/s) and latency percentiles (ms)."""
        lat = np.asarray(self.latencies_s) * 1000
        return {
            "requests": self.requests,
            "completed": self.completed,
            "concurrency": self.concurrency,
            "errors": len(self.errors),
            "mismatches": len(self.mismatches),
            "wall_s": round(self.wall_s, 3),
            "throughput_rps": round(self.completed / self.wall_s, 1) if self.wall_s else None,
            "latency_ms": {
                "p50": round(float(np.percentile(lat, 50)), 3),
                "p90": round(float(np.percentile(lat, 90)), 3),
                "p99": round(float(np.percentile(lat, 99)), 3),
                "mean": round(float(lat.mean()), 3),
            } if lat.size else None,
        }  # fmt: skip


def check_loopback(url: str) -> str:
    """``url`` unchanged when its host is loopback (127.0.0.0/8, ::1, localhost); UserError otherwise."""
    host = url.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return url
    try:
        if ipaddress.ip_address(host).is_loopback:
            return url
    except ValueError:
        pass
    raise UserError(f"the load generator only targets loopback addresses (127.0.0.0/8, ::1, localhost), not {host}")


def _matches(got: Feed, want: Feed, rtol: float, atol: float) -> bool:
    for name, ref in want.items():
        arr = got.get(name)
        if arr is None or arr.shape != ref.shape or arr.dtype != ref.dtype:
            return False
        if not np.allclose(arr, ref, rtol=rtol, atol=atol):
            return False
    return True


Worker = tuple[Callable[[int], None], Callable[[], None]]  # (run request i, clean up)


def _drive(
    n: int, concurrency: int, time_limit_s: float, make_worker: Callable[[], Worker], result: LoadResult
) -> None:
    """Run indices 0..n-1 across ``concurrency`` threads (each with its own worker state), bounded in time."""
    counter = iter(range(n))
    lock = threading.Lock()
    deadline = time.monotonic() + time_limit_s

    def loop() -> None:
        work, close = make_worker()
        try:
            _loop(work)
        finally:
            close()

    def _loop(work: Callable[[int], None]) -> None:
        while time.monotonic() < deadline:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            t0 = time.perf_counter()
            try:
                work(i)
            except Exception as exc:  # record and go on: the run reports every failure
                with lock:
                    result.errors.append(f"request {i}: {type(exc).__name__}: {exc}"[:300])
                continue
            with lock:
                result.latencies_s.append(time.perf_counter() - t0)

    threads = [threading.Thread(target=loop, daemon=True) for _ in range(concurrency)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(time_limit_s + 60)
    result.wall_s = time.perf_counter() - t0


def _checker(result: LoadResult, expected: Sequence[Feed] | None, rtol: float,
             atol: float) -> Callable[[int, object, Feed], None]:  # fmt: skip
    """Record request ``i`` as a mismatch when its response id or outputs differ from what was expected
    (thread-safe: the clients call it concurrently)."""
    lock = threading.Lock()

    def check(i: int, got_id: object, got: Feed) -> None:
        if got_id != str(i) or (expected is not None and not _matches(got, expected[i], rtol, atol)):
            with lock:
                result.mismatches.append(i)

    return check


def run_load(url: str, model: str, requests: Sequence[Feed], expected: Sequence[Feed] | None, *, concurrency: int,
             binary: bool = True, time_limit_s: float = 300.0, rtol: float = 1e-5,
             atol: float = 1e-6) -> LoadResult:  # fmt: skip
    """Send ``requests`` to ``model`` at ``url`` from ``concurrency`` clients; check each against ``expected``."""
    import tritonclient.http as httpclient

    check_loopback(url)
    result = LoadResult(len(requests), concurrency, 0.0)
    check = _checker(result, expected, rtol, atol)

    def make_worker() -> Worker:
        client = httpclient.InferenceServerClient(url, connection_timeout=60, network_timeout=120)

        def work(i: int) -> None:
            inputs = []
            for name, arr in requests[i].items():
                tensor = httpclient.InferInput(name, list(arr.shape), v2_datatype(arr.dtype))
                tensor.set_data_from_numpy(arr, binary_data=binary)
                inputs.append(tensor)
            names = list(expected[i]) if expected is not None else None
            outputs = [httpclient.InferRequestedOutput(n, binary_data=binary) for n in names] if names else None
            response = client.infer(model, inputs, outputs=outputs, request_id=str(i))
            check(i, response.get_response().get("id"), {n: response.as_numpy(n) for n in (names or [])})

        return work, client.close

    _drive(len(requests), concurrency, time_limit_s, make_worker, result)
    return result


def run_load_grpc(url: str, model: str, requests: Sequence[Feed], expected: Sequence[Feed] | None, *,
                  concurrency: int, time_limit_s: float = 300.0, rtol: float = 1e-5,
                  atol: float = 1e-6) -> LoadResult:  # fmt: skip
    """:func:`run_load` over KServe v2 gRPC: one ``tritonclient.grpc`` client (its own channel) per thread,
    tensors as raw contents."""
    import tritonclient.grpc as grpcclient

    check_loopback(url)
    result = LoadResult(len(requests), concurrency, 0.0)
    check = _checker(result, expected, rtol, atol)

    def make_worker() -> Worker:
        client = grpcclient.InferenceServerClient(url)

        def work(i: int) -> None:
            inputs = []
            for name, arr in requests[i].items():
                tensor = grpcclient.InferInput(name, list(arr.shape), v2_datatype(arr.dtype))
                tensor.set_data_from_numpy(arr)
                inputs.append(tensor)
            names = list(expected[i]) if expected is not None else None
            outputs = [grpcclient.InferRequestedOutput(n) for n in names] if names else None
            response = client.infer(model, inputs, outputs=outputs, request_id=str(i), client_timeout=120)
            check(i, response.get_response().id, {n: response.as_numpy(n) for n in (names or [])})

        return work, client.close

    _drive(len(requests), concurrency, time_limit_s, make_worker, result)
    return result


def run_direct(engine: Callable[[Feed], Feed], requests: Sequence[Feed], *, concurrency: int,
               time_limit_s: float = 300.0) -> LoadResult:  # fmt: skip
    """The same requests through an in-process Engine from ``concurrency`` threads: the no-server baseline."""
    result = LoadResult(len(requests), concurrency, 0.0)

    def make_worker() -> Worker:
        def work(i: int) -> None:
            engine(requests[i])

        return work, lambda: None

    _drive(len(requests), concurrency, time_limit_s, make_worker, result)
    return result
