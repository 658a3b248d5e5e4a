"""The KServe v2 gRPC front end: Triton's ``inference.GRPCInferenceService`` beside the HTTP app.

It runs on the HTTP server's event loop (``attnx serve --grpc-port``), in front of the same models, batchers and
limits, and decodes every request through :func:`attnx.deploy.serving.protocol.decode_header`, the checks the HTTP
path makes: a ``ModelInferRequest`` is put in the HTTP header's form (``raw_input_contents`` become binary data,
typed ``contents`` become ``data``). Outputs always travel as ``raw_output_contents`` (as Triton sends them);
the classification extension works through the output parameter ``classification``.

Errors carry the HTTP status's gRPC code (:data:`CODES`): 400 → INVALID_ARGUMENT, 404 → NOT_FOUND, 413 →
RESOURCE_EXHAUSTED (also grpc's own answer to a message over ``--max-body-mb``), 503 → UNAVAILABLE (queue full,
shutting down), 500 → INTERNAL. The service stubs and messages are those shipped in ``tritonclient[grpc]``
(``service_pb2``, ``service_pb2_grpc``): no protos are generated here. RPCs attnx does not serve (shared memory,
model load/unload, streaming, trace and log settings) answer UNIMPLEMENTED.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from attnx.core.errors import UserError
from attnx.deploy.serving.limits import Limits, model_json_values
from attnx.deploy.serving.models import ServedModel
from attnx.deploy.serving.net import bind
from attnx.deploy.serving.protocol import (
    BYTES,
    DATATYPES,
    EXTENSIONS,
    InferRequest,
    ProtocolError,
    _bytes_payload,
    classify,
    decode_header,
    server_version,
    v2_datatype,
)

log = logging.getLogger("attnx.serve")

try:
    import grpc
    from google.protobuf import json_format
    from tritonclient.grpc import service_pb2, service_pb2_grpc
except ImportError as exc:  # pragma: no cover - the serve extra without tritonclient[grpc]
    _MISSING: str | None = exc.name or "grpc"
    _Base: Any = object
else:
    _MISSING = None
    _Base = service_pb2_grpc.GRPCInferenceServiceServicer

OFFLOAD_BYTES = 256 * 1024  # as the HTTP app: larger requests are decoded in a worker thread

# The HTTP status each ProtocolError carries → the gRPC status code of the same meaning.
CODES = {
    400: "INVALID_ARGUMENT", 404: "NOT_FOUND", 408: "DEADLINE_EXCEEDED", 413: "RESOURCE_EXHAUSTED",
    415: "INVALID_ARGUMENT", 422: "INVALID_ARGUMENT", 500: "INTERNAL", 503: "UNAVAILABLE",
}  # fmt: skip

# v2 datatype → the InferTensorContents field that carries it typed (FP16 has none: raw contents only).
CONTENT_FIELDS = {
    "BOOL": "bool_contents", "INT8": "int_contents", "INT16": "int_contents", "INT32": "int_contents",
    "INT64": "int64_contents", "UINT8": "uint_contents", "UINT16": "uint_contents", "UINT32": "uint_contents",
    "UINT64": "uint64_contents", "FP32": "fp32_contents", "FP64": "fp64_contents", "BYTES": "bytes_contents",
}  # fmt: skip


def require_grpc() -> None:
    """Raise a UserError naming what to install when grpcio or tritonclient's gRPC stubs are missing."""
    if _MISSING:
        raise UserError(
            f"--grpc-port needs grpcio and tritonclient's gRPC stubs ({_MISSING} is missing): "
            "pip install 'tritonclient[grpc]' 'protobuf<7'"
        )  # fmt: skip


def _param_value(p: Any) -> Any:
    which = p.WhichOneof("parameter_choice")
    return None if which is None else getattr(p, which)


def _params(mapping: Any) -> dict[str, Any]:
    return {k: _param_value(v) for k, v in mapping.items()}


def _bad(message: str) -> ProtocolError:
    return ProtocolError(400, message)


def request_header(request: Any, max_values: int) -> tuple[dict[str, Any], memoryview]:
    """A ``ModelInferRequest`` as the HTTP path's JSON header and binary data (raw contents, in input order)."""
    raw = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        raise _bad(
            f"the request has {len(request.inputs)} input(s) but {len(raw)} raw_input_contents: give raw contents "
            "for every input or for none"
        )  # fmt: skip
    tensors: list[dict[str, Any]] = []
    values = 0
    for i, t in enumerate(request.inputs):
        entry: dict[str, Any] = {"name": t.name, "datatype": t.datatype, "shape": list(t.shape)}
        params = _params(t.parameters)
        has_contents = t.HasField("contents")
        if raw:
            if has_contents:
                raise _bad(f"input '{t.name}' has both typed contents and raw_input_contents: give one")
            dtype = DATATYPES.get(t.datatype)
            if dtype is not None and all(d >= 0 for d in t.shape):
                need = int(np.prod(t.shape, dtype=np.int64)) * dtype.itemsize
                if len(raw[i]) != need:
                    raise _bad(f"input '{t.name}': raw_input_contents[{i}] has {len(raw[i])} bytes, but shape "
                               f"{list(t.shape)} {t.datatype} needs {need}")  # fmt: skip
            params["binary_data_size"] = len(raw[i])
        elif has_contents:
            field = CONTENT_FIELDS.get(t.datatype)
            filled = [f.name for f, _ in t.contents.ListFields()]
            if field is None or filled not in ([field], []):
                how = f"contents.{field}" if field else "raw_input_contents (it has no typed contents field)"
                raise _bad(f"input '{t.name}' is {t.datatype}: send it as {how}, not {filled}")
            data = getattr(t.contents, field)
            values += len(data)
            if values > max_values:
                raise ProtocolError(
                    413,
                    f"typed contents hold over {max_values} values (the model's largest valid request, capped by "
                    "--max-json-values); send large tensors as raw_input_contents",
                )  # fmt: skip
            entry["data"] = list(data)
        if params:
            entry["parameters"] = params
        tensors.append(entry)
    header: dict[str, Any] = {"inputs": tensors, "parameters": _params(request.parameters)}
    if request.id:
        header["id"] = request.id
    if request.outputs:
        header["outputs"] = [{"name": o.name, "parameters": _params(o.parameters)} for o in request.outputs]
    binary = memoryview(b"".join(raw)) if raw else memoryview(b"")
    return header, binary


def response_message(model: ServedModel, req: InferRequest, results: dict[str, np.ndarray]) -> Any:
    """Outputs as raw_output_contents (what Triton sends; tritonclient's ``as_numpy`` reads them)."""
    response = service_pb2.ModelInferResponse(model_name=model.name, model_version=model.version, id=req.id or "")
    for wanted in req.outputs:
        arr = results[wanted.name]
        if wanted.class_count:
            arr = classify(arr, wanted.class_count, model.batched)
            datatype, blob = BYTES, _bytes_payload(arr)
        else:
            datatype = v2_datatype(arr.dtype)
            blob = np.ascontiguousarray(arr, dtype=DATATYPES[datatype]).tobytes()
        response.outputs.add(name=wanted.name, datatype=datatype, shape=list(arr.shape))
        response.raw_output_contents.append(blob)
    return response


class InferenceService(_Base):  # type: ignore[misc]
    """``inference.GRPCInferenceService`` over the served models; ``is_ready`` is the HTTP app's readiness."""

    def __init__(self, models: Sequence[ServedModel], is_ready: Callable[[], bool], limits: Limits):
        self.models = list(models)
        self.registry = {m.name: m for m in models}
        self.is_ready = is_ready
        self.json_values = {m.name: model_json_values(m.manifest.inputs, limits.max_json_values) for m in models}

    async def _abort(self, context: Any, exc: ProtocolError) -> None:
        await context.abort(getattr(grpc.StatusCode, CODES.get(exc.status, "INTERNAL")), exc.message)

    def lookup(self, name: str, version: str = "") -> ServedModel:
        """The served model ``name`` (``version`` "" or its own). Raises ProtocolError 404 otherwise."""
        model = self.registry.get(name)
        if model is None:
            raise ProtocolError(404, f"unknown model '{name}'; this server has {sorted(self.registry)}")
        if version not in ("", model.version):
            raise ProtocolError(404, f"model '{name}' has no version '{version}'; it has [{model.version!r}]")
        return model

    # -- health and metadata ----------------------------------------------------------------------------
    async def ServerLive(self, request: Any, context: Any) -> Any:
        """Always live while the process serves."""
        return service_pb2.ServerLiveResponse(live=True)

    async def ServerReady(self, request: Any, context: Any) -> Any:
        """Ready once the HTTP app has started (and until it drains)."""
        return service_pb2.ServerReadyResponse(ready=self.is_ready())

    async def ModelReady(self, request: Any, context: Any) -> Any:
        """Ready when the server is; NOT_FOUND for an unknown model or version."""
        try:
            self.lookup(request.name, request.version)
        except ProtocolError as exc:
            await self._abort(context, exc)
        return service_pb2.ModelReadyResponse(ready=self.is_ready())

    async def ServerMetadata(self, request: Any, context: Any) -> Any:
        """The server's name, version and KServe v2 extensions."""
        return service_pb2.ServerMetadataResponse(name="attnx", version=server_version(), extensions=EXTENSIONS)

    async def ModelMetadata(self, request: Any, context: Any) -> Any:
        """A model's inputs and outputs (name, datatype, shape; -1 for dynamic axes)."""
        try:
            meta = self.lookup(request.name, request.version).metadata()
        except ProtocolError as exc:
            await self._abort(context, exc)
        return json_format.ParseDict(meta, service_pb2.ModelMetadataResponse())

    async def ModelConfig(self, request: Any, context: Any) -> Any:
        """A model's configuration in Triton's model_config form."""
        try:
            config = self.lookup(request.name, request.version).config()
        except ProtocolError as exc:
            await self._abort(context, exc)
        return json_format.ParseDict({"config": config}, service_pb2.ModelConfigResponse())

    async def ModelStatistics(self, request: Any, context: Any) -> Any:
        """Triton-style statistics of one model, or of all when no name is given."""
        try:
            chosen = [self.lookup(request.name, request.version)] if request.name else self.models
        except ProtocolError as exc:
            await self._abort(context, exc)
        stats = {"model_stats": [m.statistics() for m in chosen]}
        return json_format.ParseDict(stats, service_pb2.ModelStatisticsResponse())

    async def RepositoryIndex(self, request: Any, context: Any) -> Any:
        """Every served model, READY."""
        state = "READY" if self.is_ready() else "UNAVAILABLE"
        response = service_pb2.RepositoryIndexResponse()
        for m in self.models:
            response.models.add(name=m.name, version=m.version, state=state)
        return response

    # -- inference ------------------------------------------------------------------------------------
    async def ModelInfer(self, request: Any, context: Any) -> Any:
        """Run one inference request through the model's batcher (raw or typed contents)."""
        try:
            return await self._infer(request)
        except ProtocolError as exc:
            await self._abort(context, exc)

    async def _infer(self, request: Any) -> Any:
        model = self.lookup(request.model_name, request.model_version)
        if not self.is_ready():
            raise ProtocolError(503, "server is shutting down")
        manifest = model.manifest

        def decode() -> tuple[InferRequest, dict[str, np.ndarray]]:
            header, binary = request_header(request, self.json_values[model.name])
            req = decode_header(header, binary, model.name, manifest.inputs, manifest.outputs)
            return req, model.validate(req.inputs)

        size = sum(len(r) for r in request.raw_input_contents)
        req, feed = await asyncio.to_thread(decode) if size > OFFLOAD_BYTES else decode()
        results = await model.infer(feed)
        out_size = sum(a.nbytes for a in results.values())
        if out_size > OFFLOAD_BYTES:
            return await asyncio.to_thread(response_message, model, req, results)
        return response_message(model, req, results)


def server_options(limits: Limits) -> list[tuple[str, int]]:
    """grpc core settings from the server's limits: message size = --max-body-mb, metadata = --max-header-kb,
    idle connections closed after --keep-alive-timeout (at least 60 s: gRPC clients keep channels open)."""
    return [
        ("grpc.max_receive_message_length", limits.max_body_bytes),
        ("grpc.max_send_message_length", -1),
        ("grpc.max_metadata_size", limits.max_header_bytes),
        ("grpc.so_reuseport", 0),  # a port in use is an error, not a second listener
        ("grpc.max_connection_idle_ms", int(max(60.0, limits.keep_alive_s) * 1000)),
    ]


class GrpcFrontend:
    """The gRPC server's lifecycle on the running event loop: :meth:`start` after the HTTP app's startup (the
    batchers run), :meth:`stop` at shutdown (no new RPCs; those in flight finish within the grace period)."""

    def __init__(self, models: Sequence[ServedModel], host: str, port: int, limits: Limits,
                 is_ready: Callable[[], bool]):  # fmt: skip
        require_grpc()
        self.service = InferenceService(models, is_ready, limits)
        self.host, self.port, self.limits = host, port, limits
        self.server: Any = None
        self.bound_port: int | None = None

    @property
    def address(self) -> str:
        """``host:port`` as gRPC takes it (IPv6 in brackets), the bound port once started."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port if self.bound_port is None else self.bound_port}"

    async def start(self) -> int:
        """Start listening; returns the bound port. Raises UserError when the address cannot be bound."""
        self.server = grpc.aio.server(options=server_options(self.limits))
        service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(self.service, self.server)
        try:
            port = self.server.add_insecure_port(self.address)
        except RuntimeError as exc:
            raise UserError(f"cannot listen for gRPC on {self.address}: {exc}") from None
        if port == 0:
            raise UserError(f"cannot listen for gRPC on {self.address} (in use, or not an address of this machine)")
        await self.server.start()
        self.bound_port = port
        return port

    async def stop(self, grace_s: float) -> None:
        """Stop taking RPCs; those in flight get ``grace_s`` seconds to finish."""
        if self.server is not None:
            await self.server.stop(grace_s)


def check_grpc_port(host: str, port: int) -> None:
    """Fail with one line, before serving, when the gRPC port cannot be bound (port 0 always can)."""
    if port == 0:
        return
    try:
        sock = bind(host, port)
    except UserError as exc:
        raise UserError(str(exc).replace("cannot listen on", "cannot listen for gRPC on")) from None
    sock.close()
