"""KServe v2 over gRPC (`attnx serve --grpc-port`) with the real `tritonclient.grpc` client: health, metadata,
config and statistics, infer with raw and typed tensor contents, errors as the gRPC codes of the HTTP statuses,
HTTP and gRPC on one server and batcher, concurrency, and the 2,000 × 16 load test (slow)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

grpcclient = pytest.importorskip("tritonclient.grpc")
from tritonclient.grpc import service_pb2, service_pb2_grpc  # noqa: E402
from tritonclient.utils import InferenceServerException  # noqa: E402

from attnx.deploy.serving.load import run_load, run_load_grpc  # noqa: E402
from tests.deploy.serving.conftest import expected, running_server  # noqa: E402
from tests.deploy.serving.test_load import workload  # noqa: E402


@contextlib.contextmanager
def grpc_server(bundle_args: list[str], **options: Any) -> Iterator[tuple[str, str, Any]]:
    """A server with HTTP and gRPC on free loopback ports; yields (http url, grpc url, server)."""
    with running_server(bundle_args, grpc_port=0, **options) as (url, server):
        deadline = time.monotonic() + 30
        while server.grpc.bound_port is None:
            assert time.monotonic() < deadline, "the gRPC server did not start"
            time.sleep(0.01)
        yield url, f"127.0.0.1:{server.grpc.bound_port}", server


@pytest.fixture(scope="module")
def served(bundles):
    args = [str(bundles["tiny"]), str(bundles["multi"]), str(bundles["static"])]
    with grpc_server(args, max_batch=8, max_delay_ms=2.0, max_body_mb=1.0) as (http_url, grpc_url, server):
        yield http_url, grpc_url, server


@pytest.fixture
def client(served):
    c = grpcclient.InferenceServerClient(served[1])
    yield c
    c.close()


def _input(name: str, arr: np.ndarray, datatype: str) -> Any:
    t = grpcclient.InferInput(name, list(arr.shape), datatype)
    t.set_data_from_numpy(arr)
    return t


def _code(exc: InferenceServerException) -> str:
    return str(exc.status())


def test_health_and_metadata(client, bundles):
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("tiny") and client.is_model_ready("tiny", "1")
    meta = client.get_server_metadata(as_json=True)
    assert meta["name"] == "attnx" and "binary_tensor_data" in meta["extensions"]
    m = client.get_model_metadata("multi", as_json=True)
    assert m["name"] == "multi" and m["versions"] == ["1"] and m["platform"] == "onnxruntime_onnx"
    assert {(t["name"], t["datatype"], tuple(int(d) for d in t["shape"])) for t in m["inputs"]} == {
        ("x", "FP32", (-1, 4)), ("k", "INT64", (-1, 4)),
    }  # fmt: skip
    config = client.get_model_config("tiny", as_json=True)["config"]
    assert config["max_batch_size"] == "8" or config["max_batch_size"] == 8
    index = client.get_model_repository_index(as_json=True)["models"]
    assert sorted(x["name"] for x in index) == ["multi", "static", "tiny"]
    assert all(x["state"] == "READY" for x in index)


def test_infer_raw_contents_two_inputs_two_dtypes(client, bundles):
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    k = np.arange(12, dtype=np.int64).reshape(3, 4) - 5
    result = client.infer("multi", [_input("x", x, "FP32"), _input("k", k, "INT64")], request_id="r-1")
    assert result.get_response().id == "r-1"
    np.testing.assert_array_equal(result.as_numpy("y"), x * 2 + k.astype(np.float32))
    np.testing.assert_array_equal(result.as_numpy("z"), k + 1)
    assert result.as_numpy("z").dtype == np.int64


def test_infer_tiny_matches_engine_and_http(client, bundles, served):
    import tritonclient.http as httpclient

    x = np.random.default_rng(3).standard_normal((2, 3, 16, 16)).astype(np.float32)
    want = expected(bundles["tiny"], {"input": x})
    got = client.infer("tiny", [_input("input", x, "FP32")])
    name = next(iter(want))
    np.testing.assert_allclose(got.as_numpy(name), want[name], rtol=1e-5, atol=1e-6)
    with httpclient.InferenceServerClient(served[0]) as http:
        t = httpclient.InferInput("input", list(x.shape), "FP32")
        t.set_data_from_numpy(x)
        np.testing.assert_array_equal(http.infer("tiny", [t]).as_numpy(name), got.as_numpy(name))


def test_typed_contents_and_classification(served, bundles):
    """Typed contents (fp32_contents, int64_contents) go through the same checks as JSON data."""
    channel = __import__("grpc").insecure_channel(served[1])
    stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
    req = service_pb2.ModelInferRequest(model_name="multi", id="typed")
    x = req.inputs.add(name="x", datatype="FP32", shape=[1, 4])
    x.contents.fp32_contents.extend([1.0, 2.0, 3.0, 4.0])
    k = req.inputs.add(name="k", datatype="INT64", shape=[1, 4])
    k.contents.int64_contents.extend([1, 1, 1, 1])
    out = req.outputs.add(name="y")
    out.parameters["classification"].int64_param = 2
    resp = stub.ModelInfer(req)
    assert resp.id == "typed" and [o.name for o in resp.outputs] == ["y"]
    assert resp.outputs[0].datatype == "BYTES" and list(resp.outputs[0].shape) == [1, 2]
    raw = resp.raw_output_contents[0]
    items, off = [], 0
    while off < len(raw):
        n = int.from_bytes(raw[off : off + 4], "little")
        items.append(raw[off + 4 : off + 4 + n].decode())
        off += 4 + n
    assert items == ["9.000000:3", "7.000000:2"]  # y = 2x + 1 → [3, 5, 7, 9]
    # typed contents in the wrong field, and values that do not fit the datatype: INVALID_ARGUMENT
    bad = service_pb2.ModelInferRequest(model_name="multi")
    bad.inputs.add(name="x", datatype="FP32", shape=[1, 4]).contents.int64_contents.extend([1, 2, 3, 4])
    bad.inputs.add(name="k", datatype="INT64", shape=[1, 4]).contents.int64_contents.extend([1, 1, 1, 1])
    with pytest.raises(__import__("grpc").RpcError) as err:
        stub.ModelInfer(bad)
    assert err.value.code().name == "INVALID_ARGUMENT" and "fp32_contents" in err.value.details()
    channel.close()


@pytest.mark.parametrize(
    "case, code, words",
    [
        ("unknown_model", "StatusCode.NOT_FOUND", "unknown model 'nope'"),
        ("unknown_version", "StatusCode.NOT_FOUND", "no version '7'"),
        ("wrong_dtype", "StatusCode.INVALID_ARGUMENT", "has datatype FP64; the model takes FP32"),
        ("wrong_shape", "StatusCode.INVALID_ARGUMENT", "model 'tiny'"),
        ("unknown_input", "StatusCode.INVALID_ARGUMENT", "has no input 'nope'"),
        ("unknown_output", "StatusCode.INVALID_ARGUMENT", "has no output 'nope'"),
        ("too_large", "StatusCode.RESOURCE_EXHAUSTED", ""),
    ],
)
def test_errors_carry_the_grpc_code_of_the_http_status(client, case, code, words):
    x = np.zeros((1, 3, 16, 16), np.float32)
    model, version, inputs, outputs = "tiny", "", [_input("input", x, "FP32")], None
    if case == "unknown_model":
        model = "nope"
    elif case == "unknown_version":
        version = "7"
    elif case == "wrong_dtype":
        inputs = [_input("input", x.astype(np.float64), "FP64")]
    elif case == "wrong_shape":
        inputs = [_input("input", np.zeros((1, 3, 8, 16), np.float32), "FP32")]
    elif case == "unknown_input":
        inputs = [_input("nope", x, "FP32")]
    elif case == "unknown_output":
        outputs = [grpcclient.InferRequestedOutput("nope")]
    elif case == "too_large":  # over --max-body-mb 1 (this module's server): grpc refuses the message itself
        inputs = [_input("input", np.zeros((400, 3, 16, 16), np.float32), "FP32")]
    with pytest.raises(InferenceServerException) as err:
        client.infer(model, inputs, model_version=version, outputs=outputs)
    assert _code(err.value) == code
    assert words in err.value.message()
    assert client.is_server_ready()  # every error is that request's alone


def test_raw_contents_count_and_size_are_checked(served):
    import grpc

    with grpc.insecure_channel(served[1]) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        req = service_pb2.ModelInferRequest(model_name="static")
        req.inputs.add(name="x", datatype="FP32", shape=[2, 3])
        req.raw_input_contents.append(np.zeros(5, np.float32).tobytes())
        with pytest.raises(grpc.RpcError) as err:
            stub.ModelInfer(req)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "raw_input_contents[0] has 20 bytes" in err.value.details()
        req.raw_input_contents.append(b"")
        with pytest.raises(grpc.RpcError) as err:
            stub.ModelInfer(req)
        assert "1 input(s) but 2 raw_input_contents" in err.value.details()
        with pytest.raises(grpc.RpcError) as err:  # not served here: UNIMPLEMENTED, not a crash
            stub.SystemSharedMemoryStatus(service_pb2.SystemSharedMemoryStatusRequest())
        assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_queue_full_is_unavailable(bundles):
    """503 (queue full) is UNAVAILABLE over gRPC: a client retries it like Triton's."""
    with grpc_server([str(bundles["tiny"])], max_batch=1, max_queue=1, max_delay_ms=0.0) as (_, url, server):
        model = server.models[0]
        release = threading.Event()
        original = model.engine.__call__

        def slow(feed):
            release.wait(10)
            return original(feed)

        model.batcher.run = slow
        x = np.zeros((1, 3, 16, 16), np.float32)
        codes: list[str] = []

        def one() -> None:
            with grpcclient.InferenceServerClient(url) as c:
                try:
                    c.infer("tiny", [_input("input", x, "FP32")])
                    codes.append("OK")
                except InferenceServerException as exc:
                    codes.append(_code(exc))

        threads = [threading.Thread(target=one) for _ in range(6)]
        for t in threads:
            t.start()
            time.sleep(0.05)
        release.set()
        for t in threads:
            t.join(30)
        assert "StatusCode.UNAVAILABLE" in codes and "OK" in codes
        assert set(codes) <= {"OK", "StatusCode.UNAVAILABLE"}


def test_concurrent_grpc_and_http_share_one_batcher(bundles, served):
    http_url, grpc_url, server = served
    requests, want = workload(bundles["tiny"], 160, seed=21)
    before = server.models[0].batcher.stats.inference_count
    out: dict[str, Any] = {}
    t = threading.Thread(target=lambda: out.update(http=run_load(http_url, "tiny", requests[80:], want[80:],
                                                                  concurrency=8)))  # fmt: skip
    t.start()
    g = run_load_grpc(grpc_url, "tiny", requests[:80], want[:80], concurrency=8)
    t.join(120)
    for r in (g, out["http"]):
        assert r.errors == [] and r.mismatches == [] and r.completed == 80
    rows = sum(r["input"].shape[0] for r in requests)
    assert server.models[0].batcher.stats.inference_count - before == rows


def test_port_in_use_is_one_line(bundles):
    from attnx.core.errors import UserError
    from attnx.deploy.serving.cli import bind, serve

    taken = bind("127.0.0.1", 0)
    try:
        with pytest.raises(UserError, match="cannot listen for gRPC on 127.0.0.1"):
            serve([str(bundles["static"])], port=0, grpc_port=taken.getsockname()[1])
    finally:
        taken.close()
    with pytest.raises(UserError, match="--grpc-port must be 0..65535"):
        serve([str(bundles["static"])], port=0, grpc_port=70000)


@pytest.mark.slow
def test_2000_requests_16_grpc_clients_every_response_its_own(bundles):
    requests, want = workload(bundles["tiny"], 2000, seed=11)
    with grpc_server([str(bundles["tiny"])], max_batch=8, max_delay_ms=2.0, pool_size=2, threads=1) as (_, url, srv):
        result = run_load_grpc(url, "tiny", requests, want, concurrency=16, time_limit_s=240)
        stats = srv.models[0].batcher.stats
    assert result.errors == [] and result.mismatches == []
    assert result.completed == 2000
    assert stats.inference_count == sum(r["input"].shape[0] for r in requests)
    assert stats.execution_count < 2000
    assert max(stats.batch_sizes) <= 8
