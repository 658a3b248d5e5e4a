"""The v2 codec on its own: bodies made by tritonclient's own encoder decode to the same arrays, our responses
parse with tritonclient's own decoder, and every malformed request is a 400 with a message naming the problem."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tritonclient.http as httpclient

from attnx.deploy.bundle.manifest import IOSpec
from attnx.deploy.serving.protocol import (
    HEADER_LENGTH,
    ProtocolError,
    RequestedOutput,
    classify,
    decode_request,
    encode_response,
    v2_datatype,
)

INPUTS = [IOSpec("x", "float32", ["batch", 4]), IOSpec("k", "int64", ["batch", 4])]
OUTPUTS = [IOSpec("y", "float32", ["batch", 4]), IOSpec("z", "int64", ["batch", 4])]


def client_body(arrays: dict[str, np.ndarray], binary: dict[str, bool], outputs=None) -> tuple[bytes, str | None]:
    """A request body exactly as tritonclient.http would send it."""
    inputs = []
    for name, arr in arrays.items():
        i = httpclient.InferInput(name, list(arr.shape), v2_datatype(arr.dtype))
        i.set_data_from_numpy(arr, binary_data=binary[name])
        inputs.append(i)
    body, json_size = httpclient.InferenceServerClient.generate_request_body(inputs, outputs=outputs)
    return body, None if json_size is None else str(json_size)


def decode(body: bytes | dict, header: str | None = None):
    raw = json.dumps(body).encode() if isinstance(body, dict) else body
    return decode_request(raw, header, "m", INPUTS, OUTPUTS)


def rejected(body: bytes | dict, header: str | None = None, status: int = 400) -> str:
    with pytest.raises(ProtocolError) as info:
        decode(body, header)
    assert info.value.status == status
    assert "\n" not in info.value.message
    return info.value.message


@pytest.fixture
def arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"x": rng.standard_normal((3, 4)).astype(np.float32), "k": rng.integers(-5, 5, (3, 4)).astype(np.int64)}


@pytest.mark.parametrize("bx,bk", [(True, True), (False, False), (True, False), (False, True)])
def test_client_bodies_decode_to_the_same_arrays(arrays, bx, bk):
    body, header = client_body(arrays, {"x": bx, "k": bk})
    assert (header is None) == (not bx and not bk)
    req = decode(body, header)
    for name, arr in arrays.items():
        assert req.inputs[name].dtype == arr.dtype and np.array_equal(req.inputs[name], arr)
    assert [o.name for o in req.outputs] == ["y", "z"] and all(o.binary for o in req.outputs)  # binary_data_output


def test_nested_and_flat_json_data_agree(arrays):
    flat = {"inputs": [{"name": n, "shape": [3, 4], "datatype": v2_datatype(a.dtype), "data": a.ravel().tolist()}
                       for n, a in arrays.items()]}  # fmt: skip
    nested = {"inputs": [{"name": n, "shape": [3, 4], "datatype": v2_datatype(a.dtype), "data": a.tolist()}
                         for n, a in arrays.items()]}  # fmt: skip
    a, b = decode(flat), decode(nested)
    for name in arrays:
        assert np.array_equal(a.inputs[name], arrays[name]) and np.array_equal(b.inputs[name], arrays[name])
    assert not any(o.binary for o in a.outputs)


def test_requested_outputs_and_id(arrays):
    outputs = [
        httpclient.InferRequestedOutput("z", binary_data=False),
        httpclient.InferRequestedOutput("y", class_count=2),
    ]
    body, header = client_body(arrays, {"x": True, "k": True}, outputs)
    obj = json.loads(body[: int(header)])
    obj["id"] = "req-7"
    head = json.dumps(obj).encode()
    req = decode(head + body[int(header) :], str(len(head)))
    assert req.id == "req-7"
    assert [(o.name, o.binary, o.class_count) for o in req.outputs] == [("z", False, 0), ("y", True, 2)]


def test_responses_parse_with_tritonclient(arrays):
    results = {"y": arrays["x"] * 2, "z": arrays["k"] + 1}
    for binary in (True, False):
        requested = [RequestedOutput("y", binary), RequestedOutput("z", binary)]
        body, header_len = encode_response("m", "1", "id-1", results, requested, batched=True)
        assert (header_len is not None) == binary
        parsed = httpclient.InferenceServerClient.parse_response_body(body, header_length=header_len)
        assert parsed.get_response()["id"] == "id-1" and parsed.get_response()["model_name"] == "m"
        for name, arr in results.items():
            out = parsed.as_numpy(name)
            assert out.dtype == arr.dtype and np.array_equal(out, arr)


def test_classification_is_top_k_value_colon_index():
    scores = np.array([[0.1, 0.7, 0.2, 0.7], [3.0, -1.0, 2.0, 0.0]], dtype=np.float32)
    top = classify(scores, 3, batched=True)
    assert top.shape == (2, 3)
    assert [b.decode() for b in top[0]] == ["0.700000:1", "0.700000:3", "0.200000:2"]  # ties: lower index first
    assert [b.decode() for b in top[1]] == ["3.000000:0", "2.000000:2", "0.000000:3"]
    assert classify(scores, 10, batched=True).shape == (2, 4)  # K is clamped to the class count
    for binary in (True, False):
        body, hl = encode_response("m", "1", None, {"y": scores}, [RequestedOutput("y", binary, 2)], batched=True)
        parsed = httpclient.InferenceServerClient.parse_response_body(body, header_length=hl).as_numpy("y")
        assert parsed.shape == (2, 2) and parsed[1, 1] in (b"2.000000:2", "2.000000:2")


def test_not_json_and_not_an_object():
    assert "not valid JSON" in rejected(b"{not json")
    assert "not UTF-8 JSON" in rejected(b"\xff\xfe\x00binary")
    assert "must be a JSON object" in rejected(b"[1, 2]")
    assert "non-empty 'inputs'" in rejected({"inputs": []})
    assert "non-empty 'inputs'" in rejected({"outputs": []})
    assert "nested too deeply" in rejected(b"[" * 200_000 + b"]" * 200_000)


def test_header_length_errors(arrays):
    body, header = client_body(arrays, {"x": True, "k": True})
    assert "must be an integer" in rejected(body, "abc")
    assert "but the body has" in rejected(body, str(len(body) + 1))
    assert "not valid JSON" in rejected(body, str(int(header) - 3))


def test_truncated_and_oversized_binary_data(arrays):
    body, header = client_body(arrays, {"x": True, "k": True})
    msg = rejected(body[:-5], header)
    assert "binary data for input 'k' is truncated" in msg and "needs 96 bytes" in msg
    msg = rejected(body + b"\x00" * 7, header)
    assert "7 bytes of binary data follow the inputs" in msg


def test_binary_size_must_match_shape(arrays):
    body, header = client_body(arrays, {"x": True, "k": True})
    obj = json.loads(body[: int(header)])
    obj["inputs"][0]["parameters"]["binary_data_size"] = 40
    head = json.dumps(obj).encode()
    assert "binary_data_size 40, but shape [3, 4] FP32 needs 48 bytes" in rejected(
        head + body[int(header) :], str(len(head))
    )


def tensor(name="x", shape=(1, 4), datatype="FP32", **extra):
    t = {"name": name, "shape": list(shape), "datatype": datatype}
    if "data" not in extra and "parameters" not in extra:
        t["data"] = [0] * int(np.prod(shape))
    t.update(extra)
    return t


K = tensor("k", datatype="INT64")


@pytest.mark.parametrize(
    "inputs,fragment",
    [
        ([tensor("nope"), K], "model 'm' has no input 'nope'; its inputs are ['x', 'k']"),
        ([tensor(), tensor(), K], "input 'x' is given twice"),
        ([tensor(datatype="FP64"), K], "input 'x' has datatype FP64; the model takes FP32"),
        ([tensor(datatype="FLOAT32"), K], "unknown datatype 'FLOAT32'"),
        ([tensor(shape=[1, -4], data=[0]), K], "needs a 'shape' list of non-negative integers"),
        ([tensor(data=[1, 2, 3]), K], "has 3 values in 'data', but shape [1, 4] needs 4"),
        ([tensor(data=[[1, 2], [3]]), K], "ragged"),
        ([tensor(data=["a", "b", "c", "d"]), K], "must hold numbers"),
        ([tensor(data=3.0), K], "'data' must be a JSON array"),
        ([tensor(), tensor("k", datatype="INT64", data=[0.5, 1, 2, 3])], "must hold integers"),
        ([tensor(), tensor("k", datatype="INT64", data=[2**70, 1, 2, 3])], "do not fit INT64"),
        ([{"name": "x", "shape": [1, 4], "datatype": "FP32"}, K], "neither 'data' nor parameters.binary_data_size"),
        ([tensor(data=[0] * 4, parameters={"binary_data_size": 16}), K], "both 'data' and binary_data_size"),
        ([tensor()], "missing input(s) ['k']"),
        ([tensor(data=None, parameters={"shared_memory_region": "r"}), K], "shared memory is not supported"),
    ],
)
def test_bad_inputs(inputs, fragment):
    assert fragment in rejected({"inputs": inputs})


def test_bad_outputs_and_parameters():
    ok = [tensor(), K]
    assert "model 'm' has no output 'w'; its outputs are ['y', 'z']" in rejected(
        {"inputs": ok, "outputs": [{"name": "w"}]}
    )
    assert "requested twice" in rejected({"inputs": ok, "outputs": [{"name": "y"}, {"name": "y"}]})
    assert "classification must be" in rejected(
        {"inputs": ok, "outputs": [{"name": "y", "parameters": {"classification": -1}}]}
    )
    assert "not supported" in rejected({"inputs": ok, "parameters": {"sequence_id": 3}})
    assert "'id' must be a string" in rejected({"inputs": ok, "id": 5})
    assert "binary_data_output" in rejected({"inputs": ok, "parameters": {"binary_data_output": "yes"}})


def test_header_name_is_the_protocols():
    assert HEADER_LENGTH == "Inference-Header-Content-Length"
