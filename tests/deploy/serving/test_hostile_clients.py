"""The server under hostile clients (issue 12, section 3): read timeouts, head size, values per request,
NaN/Infinity, the drain timeout, bad --port and loopback --host; and a seeded fuzz of the KServe request
parser, by itself and over HTTP, with no 5xx and no traceback.

Timeouts are set to fractions of a second here so the tests stay fast; the defaults are in the README.
"""

from __future__ import annotations

import gzip
import http.client
import json
import logging
import math
import random
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from attnx.deploy.bundle.manifest import IOSpec
from attnx.deploy.serving.cli import bind, is_loopback
from attnx.deploy.serving.protocol import ProtocolError, RequestedOutput, decode_request, encode_response
from tests.deploy.serving.conftest import running_server
from tests.deploy.serving.test_lifecycle import wait_pending
from tests.helpers import REPO_ROOT as ROOT

FAST = {"header_timeout_s": 0.5, "body_timeout_s": 0.5, "keep_alive_s": 0.5}


class Records(logging.Handler):
    """Every record logged by the server's loggers while attached (uvicorn's do not reach the root logger)."""

    NAMES = ("uvicorn", "uvicorn.error", "uvicorn.access", "attnx.serve")

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def __enter__(self) -> Records:
        for name in self.NAMES:
            logging.getLogger(name).addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        for name in self.NAMES:
            logging.getLogger(name).removeHandler(self)

    def tracebacks(self) -> list[str]:
        return [
            self.format(r) for r in self.records
            if r.exc_info or r.levelno >= logging.ERROR or "Traceback" in r.getMessage()
        ]  # fmt: skip


def connect(url: str) -> socket.socket:
    host, port = url.split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def read_until_closed(sock: socket.socket, limit_s: float) -> tuple[bytes, float, bool]:
    """What the server sends until it closes the connection: (data, seconds, closed within limit_s)."""
    start = time.monotonic()
    sock.settimeout(0.1)
    data = b""
    while time.monotonic() - start < limit_s:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except OSError:  # reset by the server: closed too
            return data, time.monotonic() - start, True
        if not chunk:
            return data, time.monotonic() - start, True
        data += chunk
    return data, time.monotonic() - start, False


def status_of(response: bytes) -> int | None:
    return int(response.split(b" ", 2)[1]) if response.startswith(b"HTTP/1.1 ") else None


def json_of(response: bytes) -> dict:
    return json.loads(response.split(b"\r\n\r\n", 1)[1])


def request(url: str, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    host, port = url.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.getheader("content-type", ""), resp.read()
    finally:
        conn.close()


@pytest.fixture(scope="module", params=["auto", "h11"])  # auto: httptools, uvicorn's default parser
def server(bundles, request):
    with running_server([str(bundles["tiny"]), str(bundles["multi"])], http=request.param, **FAST) as (url, srv):
        yield url, srv


# -- read timeouts ---------------------------------------------------------------------------------------
def test_connection_that_sends_nothing_is_closed(server):
    with connect(server[0]) as sock:
        data, seconds, closed = read_until_closed(sock, 5)
    assert closed and data == b"" and seconds < 2, (seconds, data)


def test_partial_request_line_gets_408_and_is_closed(server):
    with connect(server[0]) as sock:
        sock.sendall(b"POST /v2/models/tiny/inf")
        data, seconds, closed = read_until_closed(sock, 5)
    assert closed and seconds < 2 and status_of(data) == 408, (seconds, data)
    assert "--header-timeout" in json_of(data)["error"]


def test_many_slow_connections_are_all_closed(server):
    """Slowloris: 32 connections trickle header bytes, each pause shorter than any idle timeout."""
    socks = [connect(server[0]) for _ in range(32)]
    try:
        for s in socks:
            s.sendall(b"GET /v2/health/live HTTP/1.1\r\n")
        start = time.monotonic()
        open_socks = set(range(len(socks)))
        while open_socks and time.monotonic() - start < 5:
            for i in list(open_socks):
                try:
                    socks[i].sendall(b"X-a: b\r\n")
                except OSError:
                    open_socks.discard(i)
            time.sleep(0.1)
        assert not open_socks, f"{len(open_socks)} slow connections still open after 5 s"
        assert time.monotonic() - start < 2.5
    finally:
        for s in socks:
            s.close()


def test_stalled_body_gets_408_and_is_closed(server):
    with connect(server[0]) as sock:
        sock.sendall(b'POST /v2/models/tiny/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{"inputs"')
        data, seconds, closed = read_until_closed(sock, 5)
    assert closed and seconds < 2 and status_of(data) == 408, (seconds, data)
    assert "--body-timeout" in json_of(data)["error"]


def test_body_left_unread_after_an_answer_must_finish_in_time(server):
    """A 404 goes out before the body is read; trickling the rest does not keep the connection."""
    with connect(server[0]) as sock:
        sock.sendall(b"POST /v2/nothing HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n12345")
        start = time.monotonic()
        while time.monotonic() - start < 3:
            try:
                sock.sendall(b"x")
            except OSError:
                break
            time.sleep(0.05)
        data, _, closed = read_until_closed(sock, 3)
    assert status_of(data) == 404 and closed and time.monotonic() - start < 3


def test_keep_alive_connections_still_serve_many_requests(server):
    host, port = server[0].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    for _ in range(20):
        conn.request("GET", "/v2/health/live")
        assert conn.getresponse().read() == b""
    conn.close()


# -- head size -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [200 * 1024, 16 * 1024 * 1024])
def test_huge_headers_get_431_or_a_closed_connection(server, size):
    with connect(server[0]) as sock:
        sock.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\nX-Big: ")
        sent, chunk = 0, b"a" * 65536
        try:
            while sent < size:
                sock.sendall(chunk)
                sent += len(chunk)
            sock.sendall(b"\r\n\r\n")
        except OSError:  # the server refused and closed while we were still sending
            pass
        data, seconds, closed = read_until_closed(sock, 5)
    assert closed and seconds < 2
    assert status_of(data) in (431, None), data[:200]  # a reset may drop the 431 sent before it
    if data:
        assert "--max-header-kb" in json_of(data)["error"]


def test_headers_within_the_limit_are_fine(server):
    status, _, _ = request(server[0], "GET", "/v2/health/live", headers={"X-Big": "a" * 60_000})
    assert status == 200


# -- values, not only bytes ------------------------------------------------------------------------------
def test_json_body_with_too_many_values_is_refused_before_parsing(server, monkeypatch):
    values = ",".join(["0.5"] * 3_000_000)  # 12 MB of JSON, 3 M values: over the default 2 Mi
    body = ('{"inputs":[{"name":"input","datatype":"FP32","shape":[1],"data":[' + values + "]}]}").encode()
    loads = json.loads
    parsed = []
    monkeypatch.setattr(json, "loads", lambda *a, **k: parsed.append(1) or loads(*a, **k))
    start = time.monotonic()
    status, kind, data = request(server[0], "POST", "/v2/models/tiny/infer", body)
    assert status == 413 and kind == "application/json", (status, data[:200])
    assert not parsed  # refused from a count of the text, before any JSON parse
    monkeypatch.undo()
    assert "--max-json-values" in json.loads(data)["error"]
    assert time.monotonic() - start < 5


def test_json_value_limit_counts_values_in_the_decoded_json():
    specs = [IOSpec("x", "float32", ["batch", 4])]
    body = json.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [3, 4], "data": [0.0] * 12}]}).encode()
    assert decode_request(body, None, "m", specs, specs, max_json_values=40).inputs["x"].shape == (3, 4)
    with pytest.raises(ProtocolError) as info:
        decode_request(body, None, "m", specs, specs, max_json_values=10)
    assert info.value.status == 413


# -- NaN and Infinity ------------------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_json_inputs_get_400(server, value):
    body = '{"inputs":[{"name":"x","datatype":"FP32","shape":[1,4],"data":[1,2,3,' + value + "]},"
    body += '{"name":"k","datatype":"INT64","shape":[1,4],"data":[1,2,3,4]}]}'
    status, kind, data = request(server[0], "POST", "/v2/models/multi/infer", body.encode())
    assert status == 400 and kind == "application/json", (status, data)
    message = json.loads(data)["error"]
    assert "NaN" in message or "infinite" in message, message


def test_non_finite_outputs_never_become_invalid_json(server):
    x = np.array([[1, np.nan, np.inf, 2]], dtype=np.float32)
    head = {"inputs": [
        {"name": "x", "datatype": "FP32", "shape": [1, 4], "parameters": {"binary_data_size": 16}},
        {"name": "k", "datatype": "INT64", "shape": [1, 4], "data": [0, 0, 0, 0]},
    ]}  # fmt: skip
    for outputs, want in [(None, 422), ([{"name": "y", "parameters": {"binary_data": True}}], 200)]:
        h = json.dumps({**head, **({"outputs": outputs} if outputs else {})}).encode()
        status, _, data = request(server[0], "POST", "/v2/models/multi/infer", h + x.tobytes(),
                                  {"Inference-Header-Content-Length": str(len(h))})  # fmt: skip
        assert status == want, (status, data)
        if status == 422:  # JSON asked: refused, with strict JSON saying how to get the values
            assert "binary_data" in json.loads(data, parse_constant=pytest.fail)["error"]
        else:  # binary asked: the raw IEEE values
            size = int(json.loads(data[: data.index(b"}]}") + 3])["outputs"][0]["parameters"]["binary_data_size"])
            y = np.frombuffer(data[-size:], dtype=np.float32)
            assert np.isnan(y[1]) and np.isposinf(y[2]) and y[0] == 2


# -- drain timeout ---------------------------------------------------------------------------------------
def test_requests_past_the_drain_timeout_get_json_503_and_no_traceback(bundles):
    x = np.zeros((1, 3, 16, 16), np.float32)
    head = json.dumps({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 3, 16, 16],
                                   "parameters": {"binary_data_size": x.nbytes}}]}).encode()  # fmt: skip
    results: list[tuple[int, str, bytes]] = []
    with Records() as logs:
        # a 20 s batching delay keeps the requests queued well past the 0.3 s drain timeout
        with running_server([str(bundles["tiny"])], max_delay_ms=20_000, drain_timeout_s=0.3) as (url, server):

            def send() -> None:
                results.append(request(url, "POST", "/v2/models/tiny/infer", head + x.tobytes(),
                                       {"Inference-Header-Content-Length": str(len(head))}))  # fmt: skip

            threads = [threading.Thread(target=send) for _ in range(3)]
            for t in threads:
                t.start()
            wait_pending(url, 3)
            # and one client stalled inside its body, which only uvicorn's last-resort cancel reaches
            stalled = connect(url)
            stalled.sendall(b"POST /v2/models/tiny/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 99\r\n\r\n{")
            time.sleep(0.1)
            start = time.monotonic()
            server.should_exit = True
            for t in threads:
                t.join(30)
            late, _, _ = read_until_closed(stalled, 10)
            stalled.close()
        assert time.monotonic() - start < 8
    assert len(results) == 3
    for status, kind, data in results:
        assert status == 503 and kind == "application/json", (status, data)
        assert "--drain-timeout" in json.loads(data)["error"]
    assert status_of(late) == 503 and "--drain-timeout" in json_of(late)["error"], late
    assert logs.tracebacks() == [] or all("Cancel 1 running task" in t for t in logs.tracebacks()), logs.tracebacks()


# -- command line ----------------------------------------------------------------------------------------
def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from attnx.deploy.cli.main import main; main()", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip


@pytest.mark.parametrize("port", ["99999", "-1"])
def test_out_of_range_port_is_one_line_and_exit_2(bundles, port):
    proc = run_cli("serve", str(bundles["tiny"]), "--port", port)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and f"--port must be 0..65535 (0: any free port), got {port}" in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def test_bad_limits_are_one_line_and_exit_2(bundles):
    proc = run_cli("serve", str(bundles["tiny"]), "--header-timeout", "0")
    assert proc.returncode == 2 and "--header-timeout must be > 0" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_loopback_addresses():
    for address in ["127.0.0.1", "127.0.0.2", "127.255.255.254", "::1", "::ffff:127.0.0.2"]:
        assert is_loopback(address), address
    for address in ["0.0.0.0", "::", "10.0.0.1", "192.168.1.2", "localhost-but-not-an-address"]:
        assert not is_loopback(address), address


def test_host_127_0_0_2_gives_no_reachable_warning(bundles):
    sock = bind("127.0.0.2", 0)
    port = sock.getsockname()[1]
    sock.close()
    proc = subprocess.Popen(
        [sys.executable, "-c", "from attnx.deploy.cli.main import main; main()", "serve", str(bundles["tiny"]),
         "--host", "127.0.0.2", "--port", str(port)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        lines = []
        while not lines or "serving KServe v2" not in lines[-1]:
            lines.append(proc.stdout.readline())
            if not lines[-1]:
                break
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert f"serving KServe v2 on http://127.0.0.2:{port}/v2" in lines[-1], (lines, err)
    assert "reachable from other machines" not in err, err


# -- fuzz ------------------------------------------------------------------------------------------------
DATATYPES = ["BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32",
             "FP64", "BYTES", "fp32", "", None, 7]  # fmt: skip
INPUTS = [IOSpec("x", "float32", ["batch", 4]), IOSpec("k", "int64", ["batch", 4])]
OUTPUTS = [IOSpec("y", "float32", ["batch", 4]), IOSpec("z", "int64", ["batch", 4])]


def random_value(rng: random.Random, depth: int = 0):
    kind = rng.randrange(12 if depth < 3 else 8)
    return [
        lambda: rng.randint(-(2**70), 2**70),
        lambda: rng.random() * 10 ** rng.randint(-5, 40),
        lambda: True,
        lambda: None,
        lambda: "s" * rng.randint(0, 5),
        lambda: rng.choice([0, -1, 1, 2**31, 2**63]),
        lambda: float(rng.choice(["nan", "inf", "-inf"])),
        lambda: rng.uniform(-1, 1),
        lambda: [random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))],
        lambda: {"a": random_value(rng, depth + 1)},
        lambda: [[rng.random()] * 4] * rng.randint(0, 3),
        lambda: [rng.random() for _ in range(rng.randint(0, 9))],
    ][kind]()


def random_shape(rng: random.Random):
    choice = rng.randrange(10)
    if choice < 5:
        return [rng.randint(1, 3), 4]
    return rng.choice([[], [0, 4], [-1, 4], [2**40, 2**40], [1, 4, 1], [True, 4], "1,4", None, [1.5, 4],
                       [rng.randint(0, 5) for _ in range(rng.randint(0, 6))]])  # fmt: skip


def clean_tensor(rng: random.Random, name: str, rows: int, blobs: list[bytes]) -> dict:
    datatype, dtype = {"x": ("FP32", np.float32), "k": ("INT64", np.int64)}[name]
    arr = (np.random.default_rng(rng.getrandbits(32)).standard_normal((rows, 4)) * 5).astype(dtype)
    tensor: dict = {"name": name, "shape": [rows, 4], "datatype": datatype}
    if rng.random() < 0.5:
        blobs.append(arr.tobytes())
        tensor["parameters"] = {"binary_data_size": arr.nbytes}
    else:
        tensor["data"] = arr.tolist() if rng.random() < 0.5 else arr.reshape(-1).tolist()
    return tensor


def random_tensor(rng: random.Random, name: str, blobs: list[bytes]) -> dict:
    shape = random_shape(rng)
    datatype = rng.choice(DATATYPES) if rng.random() < 0.3 else {"x": "FP32", "k": "INT64"}.get(name, "FP32")
    tensor: dict = {"name": name, "shape": shape, "datatype": datatype}
    count = math.prod(shape) if isinstance(shape, list) and all(type(d) is int for d in shape) else 3
    count = count if 0 <= count < 64 else 3
    if rng.random() < 0.5:  # binary
        width = 8 if datatype in ("INT64", "FP64", "UINT64") else 4
        size = count * width + rng.choice([0, 0, 0, -1, 1, 7])
        blob = bytes(rng.getrandbits(8) for _ in range(max(0, size) + rng.choice([0, 0, 3])))
        blobs.append(blob)
        tensor["parameters"] = rng.choice(
            [
                {"binary_data_size": size},
                {"binary_data_size": str(size)},
                {"binary_data_size": size, "shared_memory_region": "r"},
                [size],
            ]
        )
        if rng.random() < 0.1:
            tensor["data"] = [0] * count
    else:
        if rng.random() < 0.7:
            values = [rng.uniform(-3, 3) if datatype != "INT64" else rng.randint(-9, 9) for _ in range(count)]
            tensor["data"] = values if rng.random() < 0.8 else [values[: count // 2], values[count // 2 :]]
        else:
            tensor["data"] = random_value(rng)
    if rng.random() < 0.05:
        del tensor["name"]
    return tensor


def random_request(rng: random.Random) -> tuple[bytes, dict[str, str]]:
    """A body and its headers: mostly near-valid KServe requests, with the ways they go wrong."""
    blobs: list[bytes] = []
    if rng.random() < 0.4:  # valid inputs (what follows may still spoil them)
        rows = rng.randint(1, 3)
        head: dict = {"inputs": [clean_tensor(rng, n, rows, blobs) for n in rng.choice([["x", "k"], ["k", "x"]])]}
    else:
        names = rng.choice([["x", "k"], ["x", "k"], ["k", "x"], ["x"], ["x", "x", "k"], ["x", "k", "q"], []])
        head = {"inputs": [random_tensor(rng, n, blobs) for n in names]}
    if rng.random() < 0.3:
        head["outputs"] = [rng.choice([{"name": "y"}, {"name": "z", "parameters": {"binary_data": True}},
                                       {"name": "y", "parameters": {"classification": rng.choice([1, 9, -1, "2"])}},
                                       {"name": "w"}, {"nom": 1}, "y"]) for _ in range(rng.randint(0, 3))]  # fmt: skip
    if rng.random() < 0.2:
        head["parameters"] = rng.choice([{"binary_data_output": True}, {"binary_data_output": 1},
                                         {"sequence_id": 3}, [], {"x": random_value(rng)}])  # fmt: skip
    if rng.random() < 0.1:
        head["id"] = rng.choice(["req-1", 5, None, ["a"]])
    if rng.random() < 0.05:
        head = rng.choice([[head], "text", 3, None])
    text = json.dumps(head).encode()
    if rng.random() < 0.1:  # bare NaN/Infinity, as Python's json writes them
        text = text.replace(b"0.", rng.choice([b"NaN, 0.", b"Infinity, 0.", b"-Infinity, 0."]), 1)
    body = text + b"".join(blobs)
    headers: dict[str, str] = {}
    if blobs or rng.random() < 0.1:
        headers["Inference-Header-Content-Length"] = rng.choice(
            [str(len(text))] * 6 + [str(len(text) + rng.randint(-5, 5)), "-1", "abc", str(10**30), ""]
        )
    if rng.random() < 0.1:  # mutations: truncation, flipped bytes, junk
        cut = rng.randrange(len(body) + 1)
        body = rng.choice([body[:cut], body[:cut] + bytes([rng.getrandbits(8)]) + body[cut + 1 :],
                           bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 40)))])  # fmt: skip
    if rng.random() < 0.08:
        headers["Content-Encoding"] = rng.choice(["gzip", "deflate", "br", "GZIP "])
        if headers["Content-Encoding"].strip().lower() == "gzip" and rng.random() < 0.8:
            body = gzip.compress(body)
    return body, headers


def test_fuzz_request_parser_raises_only_4xx_protocol_errors():
    rng = random.Random(20240612)
    outcomes = {"ok": 0, "4xx": 0}
    for case in range(4000):
        body, headers = random_request(rng)
        try:
            req = decode_request(body, headers.get("Inference-Header-Content-Length"), "m", INPUTS, OUTPUTS,
                                 max_json_values=rng.choice([1 << 21, 50]))  # fmt: skip
        except ProtocolError as exc:
            assert 400 <= exc.status < 500 and "\n" not in exc.message, (case, exc.status, exc.message)
            outcomes["4xx"] += 1
            continue
        outcomes["ok"] += 1
        # whatever was accepted encodes back to strict JSON, or to a 4xx when it cannot
        results = {o.name: np.asarray(req.inputs.get("x" if o.name == "y" else "k", np.zeros((1, 4))))
                   for o in req.outputs}  # fmt: skip
        try:
            text, json_size = encode_response("m", "1", req.id, results, req.outputs, batched=True)
        except ProtocolError as exc:
            assert 400 <= exc.status < 500, exc.message
            continue
        json.loads(text[:json_size] if json_size is not None else text, parse_constant=pytest.fail)
    assert outcomes["ok"] > 400 and outcomes["4xx"] > 2000, outcomes  # the generator reaches both sides


def test_encode_response_never_writes_nan():
    arr = np.array([[np.nan, 1, np.inf, -np.inf]], np.float32)
    with pytest.raises(ProtocolError) as info:
        encode_response("m", "1", None, {"y": arr}, [RequestedOutput("y")], batched=True)
    assert info.value.status == 422 and "3 NaN or infinite value(s)" in info.value.message
    text, size = encode_response("m", "1", None, {"y": arr}, [RequestedOutput("y", binary=True)], batched=True)
    assert np.isnan(np.frombuffer(text[size:], np.float32)[0])


def test_fuzz_over_http_no_5xx_and_no_traceback(bundles):
    rng = random.Random(12)
    statuses: dict[int, int] = {}
    with Records() as logs:
        with running_server([str(bundles["multi"])], max_body_mb=0.01, max_json_values=400, **FAST) as (url, _):
            host, port = url.split(":")
            conn = http.client.HTTPConnection(host, int(port), timeout=10)
            for case in range(300):
                body, headers = random_request(rng)
                if rng.random() < 0.05:
                    body += b" " * 12_000  # over --max-body-mb
                path = rng.choice(
                    ["/v2/models/multi/infer"] * 8
                    + ["/v2/models/multi/versions/1/infer", "/v2/models/multi/versions/2/infer"]
                )
                try:
                    conn.request("POST", path, body=body, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                except (http.client.HTTPException, OSError):  # closed after a 4xx: reconnect
                    conn.close()
                    conn = http.client.HTTPConnection(host, int(port), timeout=10)
                    continue
                statuses[resp.status] = statuses.get(resp.status, 0) + 1
                assert resp.status < 500, (case, resp.status, data[:300], headers)
                if resp.status >= 400:
                    error = json.loads(data, parse_constant=pytest.fail)["error"]
                    assert "\n" not in error and "Traceback" not in error
                elif "Inference-Header-Content-Length" not in resp.headers:
                    json.loads(data, parse_constant=pytest.fail)
                if resp.getheader("connection", "").lower() == "close":
                    conn.close()
                    conn = http.client.HTTPConnection(host, int(port), timeout=10)
            conn.close()
    assert statuses.get(200, 0) > 20 and sum(statuses.values()) > 250, statuses
    assert logs.tracebacks() == [], logs.tracebacks()[:3]


def test_json_value_limit_follows_the_model():
    from attnx.deploy.serving.limits import model_json_values

    profiled = IOSpec("x", "float32", ["batch", 3, 16, 16], profile={"min": [1, 3, 16, 16], "opt": [1, 3, 16, 16],
                                                                     "max": [8, 3, 16, 16]})  # fmt: skip
    assert model_json_values([profiled], 1 << 21) == 8 * 768 + 4096
    assert model_json_values([IOSpec("x", "float32", [2, 3])], 1 << 21) == 6 + 4096
    assert model_json_values([IOSpec("x", "float32", ["batch", 4])], 1 << 21) == 1 << 21  # unbounded: the cap
    assert model_json_values([profiled], 100) == 100
