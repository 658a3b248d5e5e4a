"""The KServe v2 / Open Inference Protocol codec: infer requests in, infer responses out.

Tensors travel as JSON (``"data"``, flat or nested, row-major) or through the *binary tensor data
extension*: the JSON header comes first, its length in the ``Inference-Header-Content-Length`` HTTP
header, and each tensor whose ``parameters.binary_data_size`` is set takes that many raw little-endian
bytes, in order, from the rest of the body. Responses mirror this: an output asked for with
``parameters.binary_data`` (or every output, with the request parameter ``binary_data_output``) is
appended as raw bytes. The classification extension (``parameters.classification: K``) returns the top K
values of an output as ``"value:index"`` strings (BYTES), as Triton does.

Everything here is pure NumPy + json: no web framework, so it is tested on its own and reused by clients.
Every problem with a request raises :class:`ProtocolError` with an HTTP status and a one-line message.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from attnx.deploy.bundle.manifest import IOSpec

# The KServe v2 extensions both frontends (HTTP and gRPC) report in the server metadata.
EXTENSIONS = ["binary_tensor_data", "classification", "model_configuration", "statistics"]


def server_version() -> str:
    """The installed attnx version, as the server metadata reports it ("unknown" when not installed)."""
    from importlib import metadata

    try:
        return metadata.version("attnx")
    except metadata.PackageNotFoundError:
        return "unknown"


HEADER_LENGTH = "Inference-Header-Content-Length"

# v2 datatype name → NumPy dtype (the protocol's binary layout is little-endian).
DATATYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype("<u1"), "UINT16": np.dtype("<u2"), "UINT32": np.dtype("<u4"), "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"), "INT16": np.dtype("<i2"), "INT32": np.dtype("<i4"), "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"), "FP32": np.dtype("<f4"), "FP64": np.dtype("<f8"),
}  # fmt: skip
BYTES = "BYTES"  # strings: 4-byte little-endian length + bytes per element in binary form
_BY_KIND_SIZE = {(dt.kind, dt.itemsize): name for name, dt in DATATYPES.items()}


class ProtocolError(Exception):
    """A request the server cannot serve: ``status`` is the HTTP status, the message says why in one line."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def v2_datatype(dtype: str | np.dtype) -> str:
    """The v2 datatype name of a NumPy dtype (``float32`` → ``FP32``)."""
    dt = np.dtype(dtype)
    name = _BY_KIND_SIZE.get((dt.kind, dt.itemsize))
    if name is None:
        raise ValueError(f"dtype {dt} has no KServe v2 datatype")
    return name


def v2_shape(shape: Sequence[int | str]) -> list[int]:
    """A manifest shape in v2 form: dynamic axes (strings) become -1."""
    return [d if isinstance(d, int) else -1 for d in shape]


@dataclass
class RequestedOutput:
    """An output a request asks for: binary or JSON, and ``class_count`` > 0 for top-K classification."""

    name: str
    binary: bool = False
    class_count: int = 0  # > 0: classification extension, top-K as BYTES


@dataclass
class InferRequest:
    """A decoded inference request: input arrays by name, the outputs asked for, id and parameters."""

    inputs: dict[str, np.ndarray]
    outputs: list[RequestedOutput]
    id: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)


def _bad(message: str) -> ProtocolError:
    return ProtocolError(400, message)


def _header_length(value: str | None, body_size: int) -> int | None:
    if value is None:
        return None
    try:
        length = int(value)
    except ValueError:
        raise _bad(f"{HEADER_LENGTH} must be an integer, got {value[:40]!r}") from None
    if length < 0 or length > body_size:
        raise _bad(f"{HEADER_LENGTH} is {length}, but the body has {body_size} bytes")
    return length


# The most JSON values (numbers, strings, lists...) one request may hold, unless the caller says otherwise:
# each costs ~32 bytes once parsed into Python objects, ten times its text, so the byte limit alone does not
# bound memory. 2 Mi values: a batch of 8 RGB 224x224 images as JSON; larger tensors go as binary data.
MAX_JSON_VALUES = 1 << 21


def json_value_bound(text: bytes) -> int:
    """An upper bound on the number of values in a JSON text, computed without parsing it.

    In JSON, values inside an array or object are separated by commas, so a container of n values holds
    n - 1 commas: the values number at most commas + containers + 1. Commas and brackets inside strings
    only make the bound looser. Three C-speed scans: ~10 ms for 50 MB.
    """
    return text.count(b",") + text.count(b"[") + text.count(b"{") + 1


def _non_finite(name: str) -> float:
    raise _bad(
        f"request JSON holds {name}, which is not JSON (RFC 8259 has no NaN or Infinity); "
        "send such values as binary tensor data"
    )  # fmt: skip


def parse_json_body(data: bytes | memoryview, max_values: int = MAX_JSON_VALUES) -> dict[str, Any]:
    """The JSON header of a request; refuses (413) a text that could hold over ``max_values`` values before
    parsing it, and (400) NaN and Infinity. (A number such as 1e999 parses as infinity: tensor data is checked
    to be finite after conversion.)"""
    raw = bytes(data)
    bound = json_value_bound(raw)
    if bound > max_values:
        raise ProtocolError(
            413,
            f"request JSON may hold up to {bound} values, over the limit of {max_values} (the model's largest "
            "valid request, capped by --max-json-values); send large tensors as binary data (binary_tensor_data)",
        )
    try:
        obj = json.loads(raw, parse_constant=_non_finite)
    except UnicodeDecodeError:
        raise _bad(
            f"request body is not UTF-8 JSON; binary tensor data needs the {HEADER_LENGTH} header"
        ) from None  # fmt: skip
    except json.JSONDecodeError as exc:
        raise _bad(f"request body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise _bad("request body JSON is nested too deeply") from None
    if not isinstance(obj, dict):
        raise _bad(f"request body must be a JSON object, got {type(obj).__name__}")
    return obj


def decode_request(body: bytes, header_length: str | None, model: str, inputs: Sequence[IOSpec],
                   outputs: Sequence[IOSpec], max_json_values: int = MAX_JSON_VALUES) -> InferRequest:  # fmt: skip
    """Decode an infer request body against a model's inputs and outputs (names and datatypes).

    Every problem raises :class:`ProtocolError` with a 4xx status (400, or 413 over ``max_json_values``).
    """
    length = _header_length(header_length, len(body))
    view = memoryview(body)
    header = parse_json_body(view if length is None else view[:length], max_json_values)
    binary = view[len(body) :] if length is None else view[length:]
    return decode_header(header, binary, model, inputs, outputs)


def decode_header(header: dict[str, Any], binary: memoryview, model: str, inputs: Sequence[IOSpec],
                  outputs: Sequence[IOSpec]) -> InferRequest:  # fmt: skip
    """An infer request from its parsed JSON header and the binary data after it: the checks every transport
    shares (the gRPC server puts its ModelInferRequest in this form, raw contents as binary data)."""
    request_id = header.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise _bad(f"request 'id' must be a string, got {type(request_id).__name__}")
    params = header.get("parameters") or {}
    if not isinstance(params, dict):
        raise _bad("request 'parameters' must be a JSON object")
    unsupported = sorted(k for k in params if k.startswith("sequence_") or k.startswith("shared_memory"))
    if unsupported:
        raise _bad(f"request parameters {unsupported} are not supported (no sequence batching, no shared memory)")

    raw_inputs = header.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise _bad("request must have a non-empty 'inputs' list")
    specs = {s.name: s for s in inputs}
    decoded: dict[str, np.ndarray] = {}
    offset = 0
    for i, tensor in enumerate(raw_inputs):
        if not isinstance(tensor, dict):
            raise _bad(f"inputs[{i}] must be a JSON object")
        name = tensor.get("name")
        if not isinstance(name, str):
            raise _bad(f"inputs[{i}] has no 'name'")
        spec = specs.get(name)
        if spec is None:
            raise _bad(f"model '{model}' has no input '{name}'; its inputs are {list(specs)}")
        if name in decoded:
            raise _bad(f"input '{name}' is given twice")
        arr, used = _decode_tensor(tensor, spec, binary, offset)
        offset += used
        decoded[name] = arr
    if offset != len(binary):
        raise _bad(
            f"{len(binary) - offset} bytes of binary data follow the inputs that no input's binary_data_size claims"
        )  # fmt: skip
    missing = [s.name for s in inputs if s.name not in decoded]
    if missing:
        raise _bad(f"missing input(s) {missing} for model '{model}'")

    return InferRequest(decoded, _requested_outputs(header, params, model, outputs), request_id, params)


def _shape_of(tensor: dict[str, Any], name: str) -> list[int]:
    shape = tensor.get("shape")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise _bad(f"input '{name}' needs a 'shape' list of non-negative integers, got {shape!r}")
    return shape


def _decode_tensor(tensor: dict[str, Any], spec: IOSpec, binary: memoryview, offset: int) -> tuple[np.ndarray, int]:
    """One input tensor as a NumPy array, and how many bytes of binary data it used."""
    name = spec.name
    shape = _shape_of(tensor, name)
    datatype = tensor.get("datatype")
    want = v2_datatype(spec.dtype)
    if datatype != want:
        if datatype not in DATATYPES and datatype != BYTES:
            raise _bad(f"input '{name}' has unknown datatype {datatype!r}; v2 datatypes are {[*DATATYPES, BYTES]}")
        raise _bad(f"input '{name}' has datatype {datatype}; the model takes {want}")
    dtype = DATATYPES[want]
    count = math.prod(shape)
    params = tensor.get("parameters") or {}
    if not isinstance(params, dict):
        raise _bad(f"input '{name}': 'parameters' must be a JSON object")
    if any(k.startswith("shared_memory") for k in params):
        raise _bad(f"input '{name}': shared memory is not supported")
    size = params.get("binary_data_size")
    if size is not None:
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise _bad(f"input '{name}': binary_data_size must be a non-negative integer, got {size!r}")
        if "data" in tensor:
            raise _bad(f"input '{name}' has both 'data' and binary_data_size: give one")
        if size != count * dtype.itemsize:
            raise _bad(
                f"input '{name}' has binary_data_size {size}, but shape {shape} {want} needs "
                f"{count * dtype.itemsize} bytes"
            )  # fmt: skip
        if offset + size > len(binary):
            raise _bad(
                f"binary data for input '{name}' is truncated: it needs {size} bytes at offset {offset}, "
                f"the body has {len(binary) - offset} left"
            )  # fmt: skip
        # A copy, so that the arrays own their memory (and are writable) after the request body is freed.
        arr = np.frombuffer(binary[offset : offset + size], dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))
        return arr, size
    if "data" not in tensor:
        raise _bad(f"input '{name}' has neither 'data' nor parameters.binary_data_size")
    return _from_json_data(tensor["data"], name, shape, want, dtype), 0


def _from_json_data(data: Any, name: str, shape: list[int], datatype: str, dtype: np.dtype) -> np.ndarray:
    if not isinstance(data, list):
        raise _bad(f"input '{name}': 'data' must be a JSON array of numbers")
    try:
        arr = np.asarray(data)
    except ValueError:  # ragged nesting
        raise _bad(f"input '{name}': 'data' is not a rectangular array (ragged nested lists)") from None
    allowed = {"BOOL": "b"}.get(datatype) or ("fiu" if datatype.startswith("FP") else "iu")
    if arr.size and arr.dtype.kind == "O" and all(type(v) is int for v in arr.reshape(-1)):
        raise _bad(f"input '{name}': some values do not fit {datatype}")  # beyond 64 bits: NumPy made objects
    if arr.size and arr.dtype.kind not in allowed:
        what = {"b": "booleans", "fiu": "numbers", "iu": "integers"}[allowed]
        got = {"U": "strings", "f": "fractional numbers", "b": "booleans", "i": "integers", "u": "integers"}
        raise _bad(
            f"input '{name}' is {datatype}: 'data' must hold {what}, got {got.get(arr.dtype.kind, 'mixed values')}"
        )
    count = math.prod(shape)
    if arr.size != count:
        raise _bad(f"input '{name}' has {arr.size} values in 'data', but shape {shape} needs {count}")
    if dtype.kind in "iu" and arr.size:
        info = np.iinfo(dtype)
        lo, hi = int(arr.min()), int(arr.max())
        if lo < info.min or hi > info.max:
            raise _bad(f"input '{name}': values {lo}..{hi} do not fit {datatype}")
    with np.errstate(over="ignore", invalid="ignore"):
        out = arr.astype(dtype.newbyteorder("=")).reshape(shape)
    if dtype.kind == "f" and out.size and not np.isfinite(out).all():  # e.g. 1e6 as FP16
        raise _bad(f"input '{name}': some values do not fit {datatype} (they would become infinite)")
    return out


def _requested_outputs(header: dict[str, Any], params: dict[str, Any], model: str,
                       outputs: Sequence[IOSpec]) -> list[RequestedOutput]:  # fmt: skip
    binary_default = params.get("binary_data_output", False)
    if not isinstance(binary_default, bool):
        raise _bad("request parameter 'binary_data_output' must be true or false")
    names = [o.name for o in outputs]
    raw = header.get("outputs")
    if raw is None:
        return [RequestedOutput(n, binary_default) for n in names]
    if not isinstance(raw, list):
        raise _bad("request 'outputs' must be a list")
    wanted: list[RequestedOutput] = []
    for i, out in enumerate(raw):
        if not isinstance(out, dict) or not isinstance(out.get("name"), str):
            raise _bad(f"outputs[{i}] must be an object with a 'name'")
        if out["name"] not in names:
            raise _bad(f"model '{model}' has no output '{out['name']}'; its outputs are {names}")
        if any(w.name == out["name"] for w in wanted):
            raise _bad(f"output '{out['name']}' is requested twice")
        p = out.get("parameters") or {}
        if not isinstance(p, dict):
            raise _bad(f"output '{out['name']}': 'parameters' must be a JSON object")
        if any(k.startswith("shared_memory") for k in p):
            raise _bad(f"output '{out['name']}': shared memory is not supported")
        binary = p.get("binary_data", binary_default)
        classes = p.get("classification", 0)
        if not isinstance(binary, bool):
            raise _bad(f"output '{out['name']}': binary_data must be true or false")
        if not isinstance(classes, int) or isinstance(classes, bool) or classes < 0:
            raise _bad(f"output '{out['name']}': classification must be a non-negative integer")
        wanted.append(RequestedOutput(out["name"], binary, classes))
    return wanted


def classify(arr: np.ndarray, k: int, batched: bool) -> np.ndarray:
    """Top-``k`` values as ``"value:index"`` byte strings, per sample when ``batched`` (Triton's format)."""
    if arr.dtype.kind not in "fiu":
        raise _bad(f"classification needs a numeric output, not {arr.dtype}")
    flat = arr.reshape(arr.shape[0], -1) if batched else arr.reshape(1, -1)
    k = min(k, flat.shape[1])
    # stable sort of the negated scores: ties keep the lower index first, deterministic across runs
    order = np.argsort(-flat.astype(np.float64), axis=1, kind="stable")[:, :k]
    rows = [[f"{float(row[j]):f}:{int(j)}".encode() for j in idx] for row, idx in zip(flat, order)]
    out = np.empty((flat.shape[0], k), dtype=object)
    for r, row in enumerate(rows):
        out[r, :] = row
    return out if batched else out.reshape(k)


def _bytes_payload(arr: np.ndarray) -> bytes:
    parts = []
    for item in arr.reshape(-1):
        b = item if isinstance(item, bytes) else str(item).encode()
        parts.append(len(b).to_bytes(4, "little") + b)
    return b"".join(parts)


def encode_response(model: str, version: str, request_id: str | None, results: dict[str, np.ndarray],
                    requested: Sequence[RequestedOutput], batched: bool) -> tuple[bytes, int | None]:  # fmt: skip
    """The response body, and the JSON header's length when binary data follows it (else None)."""
    outputs: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for req in requested:
        arr = results[req.name]
        datatype = BYTES if req.class_count else v2_datatype(arr.dtype)
        if req.class_count:
            arr = classify(arr, req.class_count, batched)
        entry: dict[str, Any] = {"name": req.name, "datatype": datatype, "shape": list(arr.shape)}
        if req.binary:
            if datatype == BYTES:
                blob = _bytes_payload(arr)
            else:
                blob = np.ascontiguousarray(arr, dtype=DATATYPES[datatype]).tobytes()
            entry["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        elif datatype == BYTES:
            entry["data"] = [b.decode() for b in arr.reshape(-1)]
        else:
            if arr.dtype.kind == "f" and not np.isfinite(arr).all():
                raise ProtocolError(
                    422,
                    f"output '{req.name}' holds {int(arr.size - np.isfinite(arr).sum())} NaN or infinite value(s), "
                    "which JSON cannot carry; ask for it as binary data (parameters.binary_data: true, or the "
                    "request parameter binary_data_output: true) to get the raw IEEE values",
                )  # fmt: skip
            entry["data"] = arr.reshape(-1).tolist()
        outputs.append(entry)
    head: dict[str, Any] = {"model_name": model, "model_version": version}
    if request_id is not None:
        head["id"] = request_id
    head["outputs"] = outputs
    text = json.dumps(head, separators=(",", ":"), allow_nan=False).encode()
    if not blobs:
        return text, None
    return b"".join([text, *blobs]), len(text)
