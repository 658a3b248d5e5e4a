"""The server through the real ``tritonclient.http`` client (and raw HTTP for what that client will not send):
health, metadata, config, statistics, JSON and binary infer against in-process Engine results, and a clear
4xx for every kind of bad request."""

from __future__ import annotations

import gzip
import http.client
import json

import numpy as np
import pytest
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from tests.deploy.serving.conftest import expected, running_server


@pytest.fixture(scope="module")
def server(bundles):
    args = [str(bundles["tiny"]), str(bundles["multi"]), f"fixed={bundles['static']}"]
    with running_server(args, max_batch=8, max_delay_ms=1.0) as (url, srv):
        yield url, srv


@pytest.fixture
def client(server):
    c = httpclient.InferenceServerClient(server[0])
    yield c
    c.close()


def image(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 3, 16, 16)).astype(np.float32)


def infer_input(name: str, arr: np.ndarray, datatype: str, binary: bool = True) -> httpclient.InferInput:
    i = httpclient.InferInput(name, list(arr.shape), datatype)
    i.set_data_from_numpy(arr, binary_data=binary)
    return i


def raw(url: str, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    host, port = url.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, (json.loads(data) if data and resp.getheader("content-type", "").endswith("json") else data)
    finally:
        conn.close()


def fails(call, status: str, *fragments: str) -> str:
    with pytest.raises(InferenceServerException) as info:
        call()
    assert info.value.status() == status, (info.value.status(), info.value.message())
    for f in fragments:
        assert f in info.value.message(), info.value.message()
    return info.value.message()


# -- health and metadata ---------------------------------------------------------------------------------
def test_health_and_server_metadata(client):
    assert client.is_server_live() and client.is_server_ready()
    meta = client.get_server_metadata()
    assert meta["name"] == "attnx" and "binary_tensor_data" in meta["extensions"]
    index = client.get_model_repository_index()
    assert {(m["name"], m["state"]) for m in index} == {("tiny", "READY"), ("multi", "READY"), ("fixed", "READY")}


def test_model_metadata_and_readiness(client):
    tiny = client.get_model_metadata("tiny")
    assert tiny["platform"] == "onnxruntime_onnx" and tiny["versions"] == ["1"]
    assert tiny["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 3, 16, 16]}]
    assert tiny["outputs"] == [{"name": "output", "datatype": "FP32", "shape": [-1, 4]}]
    multi = client.get_model_metadata("multi", model_version="1")
    assert [(t["name"], t["datatype"]) for t in multi["inputs"]] == [("x", "FP32"), ("k", "INT64")]
    assert client.get_model_metadata("fixed")["inputs"][0]["shape"] == [2, 3]
    assert client.is_model_ready("tiny") and client.is_model_ready("tiny", "1")
    assert not client.is_model_ready("nope") and not client.is_model_ready("tiny", "2")
    fails(lambda: client.get_model_metadata("nope"), "404", "unknown model 'nope'", "'fixed', 'multi', 'tiny'")
    fails(lambda: client.get_model_metadata("tiny", model_version="2"), "404", "no version '2'")


def test_model_config_is_tritons_form(client):
    tiny = client.get_model_config("tiny")
    assert tiny["max_batch_size"] == 8 and tiny["dynamic_batching"] == {"max_queue_delay_microseconds": 1000}
    assert tiny["input"] == [{"name": "input", "data_type": "TYPE_FP32", "dims": [3, 16, 16]}]
    fixed = client.get_model_config("fixed")
    assert fixed["max_batch_size"] == 0 and "dynamic_batching" not in fixed and fixed["input"][0]["dims"] == [2, 3]


# -- infer -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("binary", [True, False])
def test_infer_matches_the_engine(client, bundles, binary):
    x = image(3, seed=1)
    out = httpclient.InferRequestedOutput("output", binary_data=binary)
    result = client.infer("tiny", [infer_input("input", x, "FP32", binary)], outputs=[out], request_id="r1")
    assert result.get_response()["id"] == "r1" and result.get_response()["model_version"] == "1"
    np.testing.assert_allclose(
        result.as_numpy("output"), expected(bundles["tiny"], {"input": x})["output"], rtol=1e-5, atol=1e-6
    )


def test_multi_io_mixed_json_and_binary_and_output_selection(client):
    x = np.arange(12, dtype=np.float32).reshape(3, 4) / 7
    k = np.arange(-6, 6, dtype=np.int64).reshape(3, 4)
    inputs = [infer_input("x", x, "FP32", binary=False), infer_input("k", k, "INT64", binary=True)]
    result = client.infer("multi", inputs)  # no outputs named: all of them, binary
    np.testing.assert_allclose(result.as_numpy("y"), 2 * x + k, rtol=1e-6)
    assert result.as_numpy("z").dtype == np.int64 and np.array_equal(result.as_numpy("z"), k + 1)
    only_z = client.infer("multi", inputs, outputs=[httpclient.InferRequestedOutput("z", binary_data=False)])
    assert [o["name"] for o in only_z.get_response()["outputs"]] == ["z"] and only_z.as_numpy("y") is None


def test_unbatched_model_and_versioned_infer(client):
    x = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.float32)
    result = client.infer("fixed", [infer_input("x", x, "FP32", binary=False)], model_version="1")
    assert np.array_equal(result.as_numpy("y"), x + 1)
    fails(lambda: client.infer("fixed", [infer_input("x", x[:1], "FP32")]), "400", "axis 0 must be 2")


def test_classification_extension(client, bundles):
    x = image(2, seed=3)
    result = client.infer(
        "tiny", [infer_input("input", x, "FP32")], outputs=[httpclient.InferRequestedOutput("output", class_count=2)]
    )
    top = result.as_numpy("output")
    ref = expected(bundles["tiny"], {"input": x})["output"]
    assert top.shape == (2, 2)
    for row, scores in zip(top, ref):
        got = [int(s.decode().split(":")[1]) for s in row]
        assert got == list(np.argsort(-scores, kind="stable")[:2])


@pytest.mark.parametrize("algorithm", ["gzip", "deflate"])
def test_compressed_requests(client, bundles, algorithm):
    x = image(2, seed=4)
    result = client.infer("tiny", [infer_input("input", x, "FP32")], request_compression_algorithm=algorithm)
    np.testing.assert_allclose(
        result.as_numpy("output"), expected(bundles["tiny"], {"input": x})["output"], rtol=1e-5, atol=1e-6
    )


def test_statistics_count_requests(client):
    before = client.get_inference_statistics("multi")["model_stats"][0]
    x, k = np.ones((2, 4), np.float32), np.ones((2, 4), np.int64)
    client.infer("multi", [infer_input("x", x, "FP32"), infer_input("k", k, "INT64")])
    after = client.get_inference_statistics("multi")["model_stats"][0]
    assert after["inference_count"] == before["inference_count"] + 2
    assert after["execution_count"] == before["execution_count"] + 1
    assert after["inference_stats"]["success"]["count"] == before["inference_stats"]["success"]["count"] + 1
    every = client.get_inference_statistics()["model_stats"]
    assert {s["name"] for s in every} == {"tiny", "multi", "fixed"}


def test_prometheus_metrics_use_tritons_names(server, client):
    x, k = np.ones((3, 4), np.float32), np.ones((3, 4), np.int64)
    client.infer("multi", [infer_input("x", x, "FP32"), infer_input("k", k, "INT64")])
    status, text = raw(server[0], "GET", "/metrics")
    lines = dict(line.rsplit(" ", 1) for line in text.decode().splitlines() if not line.startswith("#"))
    stats = client.get_inference_statistics("multi")["model_stats"][0]
    assert int(lines['nv_inference_count{model="multi",version="1"}']) == stats["inference_count"] >= 3
    assert int(lines['nv_inference_exec_count{model="multi",version="1"}']) == stats["execution_count"]
    assert lines['nv_inference_pending_request_count{model="tiny",version="1"}'] == "0"


# -- bad requests ----------------------------------------------------------------------------------------
def test_bad_requests_through_tritonclient(client):
    x = image(1)
    fails(lambda: client.infer("nope", [infer_input("input", x, "FP32")]), "404", "unknown model 'nope'")
    fails(lambda: client.infer("tiny", [infer_input("input", x, "FP32")], model_version="3"), "404", "no version '3'")
    fails(lambda: client.infer("tiny", [infer_input("input", image(1)[:, :, :8, :8], "FP32")]), "400",
          "model 'tiny'", "axis 2 must be 16")  # fmt: skip
    fails(lambda: client.infer("tiny", [infer_input("input", x.astype(np.float64), "FP64")]), "400",
          "input 'input' has datatype FP64; the model takes FP32")  # fmt: skip
    fails(lambda: client.infer("tiny", [infer_input("image", x, "FP32")]), "400", "has no input 'image'")
    logits = [httpclient.InferRequestedOutput("logits")]
    fails(
        lambda: client.infer("tiny", [infer_input("input", x, "FP32")], outputs=logits), "400", "has no output 'logits'"
    )
    fails(lambda: client.infer("tiny", [infer_input("input", image(9), "FP32")]), "400", "outside the engine's profile")
    fails(lambda: client.infer("tiny", [infer_input("input", image(0), "FP32")]), "400", "outside the engine's profile")
    x2, k3 = np.ones((2, 4), np.float32), np.ones((3, 4), np.int64)
    fails(lambda: client.infer("multi", [infer_input("x", x2, "FP32"), infer_input("k", k3, "INT64")]), "400",
          "disagree on the batch size")  # fmt: skip
    assert client.is_server_ready()  # none of it hurt the server


def test_non_json_malformed_and_truncated_bodies(server):
    url = server[0]
    status, body = raw(url, "POST", "/v2/models/tiny/infer", b"this is not json", {"Content-Type": "application/json"})
    assert status == 400 and "not valid JSON" in body["error"]
    status, body = raw(url, "POST", "/v2/models/tiny/infer", b'{"inputs": {"name": "input"}}')
    assert status == 400 and "non-empty 'inputs' list" in body["error"]
    x = image(1)
    head = json.dumps({"inputs": [{"name": "input", "shape": [1, 3, 16, 16], "datatype": "FP32",
                                   "parameters": {"binary_data_size": x.nbytes}}]}).encode()  # fmt: skip
    truncated = head + x.tobytes()[:-100]
    status, body = raw(
        url, "POST", "/v2/models/tiny/infer", truncated, {"Inference-Header-Content-Length": str(len(head))}
    )
    assert status == 400 and "binary data for input 'input' is truncated" in body["error"]
    status, body = raw(url, "POST", "/v2/models/tiny/infer", truncated, {"Inference-Header-Content-Length": "-3"})
    assert status == 400 and "Inference-Header-Content-Length is -3" in body["error"]
    status, body = raw(url, "POST", "/v2/models/tiny/infer", gzip.compress(head)[:-4], {"Content-Encoding": "gzip"})
    assert status == 400 and "gzip" in body["error"]
    status, body = raw(url, "POST", "/v2/models/tiny/infer", head, {"Content-Encoding": "br"})
    assert status == 415 and "unsupported Content-Encoding 'br'" in body["error"]


def test_unknown_endpoints_and_methods(server):
    status, body = raw(server[0], "GET", "/v2/nothing/here")
    assert status == 404 and "no such endpoint: GET /v2/nothing/here" in body["error"]
    status, body = raw(server[0], "GET", "/v2/models/tiny/infer")
    assert status == 405 and "GET is not allowed" in body["error"]
    status, body = raw(server[0], "POST", "/v2/models/ghost/infer", b"{}")
    assert status == 404 and "unknown model 'ghost'" in body["error"]


@pytest.mark.parametrize("http_impl", ["h11", "auto"])  # h11 always ships with uvicorn; auto takes httptools if there
def test_oversized_bodies_get_413(bundles, http_impl):
    with running_server([str(bundles["tiny"])], max_body_mb=0.01, http=http_impl) as (url, _):  # 10,485 bytes
        c = httpclient.InferenceServerClient(url)
        ok = c.infer("tiny", [infer_input("input", image(1), "FP32")])  # 3 KiB: fine
        assert ok.as_numpy("output").shape == (1, 4)
        fails(
            lambda: c.infer("tiny", [infer_input("input", image(4), "FP32")]), "413", "exceeds the limit of 10485 bytes"
        )
        fails(
            lambda: c.infer("tiny", [infer_input("input", image(2), "FP32", binary=False)]), "413", "exceeds the limit"
        )
        # a small gzip body that inflates past the limit
        bomb = gzip.compress(b'{"inputs": [' + b" " * 200_000 + b"]}")
        status, body = raw(url, "POST", "/v2/models/tiny/infer", bomb, {"Content-Encoding": "gzip"})
        assert status == 413 and "decompressed request body exceeds" in body["error"]
        # no Content-Length (chunked): counted while reading
        host, port = url.split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        conn.request("POST", "/v2/models/tiny/infer", body=iter([b"x" * 8000, b"x" * 8000]), encode_chunked=True)
        resp = conn.getresponse()
        assert resp.status == 413 and "exceeds the limit" in json.loads(resp.read())["error"]
        conn.close()
        assert c.is_server_ready()
        c.close()
