"""The KServe v2 HTTP application (FastAPI/Starlette): health, metadata, config, statistics and infer.

Errors are JSON ``{"error": "..."}`` with a 4xx status for anything the client can fix (404 unknown model or
version, 400 malformed or mismatched request, 408 body stalled past ``--body-timeout`` (connection closed),
413 body or JSON values over the limit, 415 unknown content encoding, 422 an output holding NaN/Infinity
asked for as JSON, which cannot carry them) and 503 while the queue is full or the server is shutting down
(also for requests still waiting when ``--drain-timeout`` ends). A failure inside an engine answers 500 for
that request only; the server keeps serving. Header size and read timeouts are enforced below the app, in
:mod:`attnx.deploy.serving.limits`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import zlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Route

from attnx.deploy.serving.limits import Limits, LimitsMiddleware, model_json_values
from attnx.deploy.serving.models import ServedModel
from attnx.deploy.serving.protocol import (
    EXTENSIONS,
    HEADER_LENGTH,
    ProtocolError,
    decode_request,
    encode_response,
    server_version,
)

log = logging.getLogger("attnx.serve")
# Bodies above this are decoded and encoded in a worker thread, so one large JSON tensor does not stall
# the event loop (and with it every other connection) while it is parsed.
OFFLOAD_BYTES = 256 * 1024


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing (413) as soon as it is known to exceed ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ProtocolError(413, f"request body of {int(declared)} bytes exceeds the limit of {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ProtocolError(413, f"request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _decompress(body: bytes, encoding: str, limit: int) -> bytes:
    wbits = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}.get(encoding)
    if wbits is None:
        raise ProtocolError(415, f"unsupported Content-Encoding '{encoding}': send identity, gzip or deflate")
    d = zlib.decompressobj(wbits)
    try:
        out = d.decompress(body, limit + 1)  # bounded: a small compressed body may expand enormously
    except zlib.error as exc:
        raise ProtocolError(400, f"request body is not valid {encoding} data: {exc}") from None
    if len(out) > limit or d.unconsumed_tail:
        raise ProtocolError(413, f"decompressed request body exceeds the limit of {limit} bytes")
    if not d.eof:
        raise ProtocolError(400, f"request body is truncated {encoding} data")
    return out


# Prometheus metrics under Triton's names, so dashboards made for Triton read this server too.
_METRICS = [
    ("nv_inference_request_success", "counter", "Number of successful inference requests", lambda s: s.success.count),
    ("nv_inference_request_failure", "counter", "Number of failed inference requests", lambda s: s.fail.count),
    ("nv_inference_count", "counter", "Number of inferences performed (samples)", lambda s: s.inference_count),
    ("nv_inference_exec_count", "counter", "Number of model executions (batches)", lambda s: s.execution_count),
    ("nv_inference_queue_duration_us", "counter", "Cumulative queue time of requests", lambda s: s.queue.ns // 1000),
    (
        "nv_inference_compute_infer_duration_us",
        "counter",
        "Cumulative engine time",
        lambda s: s.compute_infer.ns // 1000,
    ),
]


def prometheus_metrics(models: Sequence[ServedModel]) -> str:
    """The served models' statistics in Prometheus text format, with Triton's metric names (``nv_inference_*``)."""
    lines = []
    for name, kind, help_text, value in _METRICS:
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
        lines += [f'{name}{{model="{m.name}",version="{m.version}"}} {value(m.batcher.stats)}' for m in models]
    lines += [
        "# HELP nv_inference_pending_request_count Requests waiting to run (queued or being batched)",
        "# TYPE nv_inference_pending_request_count gauge",
    ]
    lines += [
        f'nv_inference_pending_request_count{{model="{m.name}",version="{m.version}"}} {m.batcher.depth}'
        for m in models
    ]
    return "\n".join(lines) + "\n"


def create_app(
    models: Sequence[ServedModel], *, max_body_bytes: int | None = None, drain_timeout_s: float = 30.0,
    limits: Limits | None = None,
) -> FastAPI:  # fmt: skip
    """The FastAPI app serving ``models`` over the KServe v2 HTTP protocol.

    ``limits`` (default :class:`~attnx.deploy.serving.limits.Limits`) bound requests; ``max_body_bytes`` overrides
    its body limit. Startup starts the batchers; shutdown drains requests for up to ``drain_timeout_s`` seconds.
    """
    limits = limits or Limits()
    if max_body_bytes is not None:
        limits = dataclasses.replace(limits, max_body_bytes=max_body_bytes)
    max_body_bytes = limits.max_body_bytes
    registry = {m.name: m for m in models}
    # per model: no more JSON values than its largest valid request holds (--max-json-values caps it)
    json_values = {m.name: model_json_values(m.manifest.inputs, limits.max_json_values) for m in models}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        for m in models:
            m.batcher.start()
        app.state.ready = True
        yield
        app.state.ready = False
        await asyncio.gather(*(m.batcher.close(drain_timeout_s) for m in models))
        for m in models:
            m.close()

    app = FastAPI(title="attnx serve", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.ready = False
    app.state.draining = False
    app.state.models = registry

    @app.exception_handler(ProtocolError)
    async def protocol_error(request: Request, exc: ProtocolError) -> JSONResponse:
        response = _error(exc.status, exc.message)
        if exc.status == 408:  # the body stalled: what is left of it will not be read
            response.headers["connection"] = "close"
        return response

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            return _error(404, f"no such endpoint: {request.method} {request.url.path} (see the KServe v2 protocol)")
        if exc.status_code == 405:
            return _error(405, f"{request.method} is not allowed on {request.url.path}")
        return _error(exc.status_code, str(exc.detail))

    def lookup(name: str, version: str | None = None) -> ServedModel:
        model = registry.get(name)
        if model is None:
            raise ProtocolError(404, f"unknown model '{name}'; this server has {sorted(registry)}")
        if version not in (None, "", model.version):
            raise ProtocolError(404, f"model '{name}' has no version '{version}'; it has [{model.version!r}]")
        return model

    def is_ready() -> bool:
        return bool(app.state.ready) and not app.state.draining

    @app.get("/v2/health/live")
    async def live() -> Response:
        return Response(status_code=200)

    @app.get("/v2/health/ready")
    async def ready() -> Response:
        return Response(status_code=200) if is_ready() else _error(503, "server is not ready")

    @app.get("/v2")
    async def server_metadata() -> dict[str, Any]:
        return {"name": "attnx", "version": server_version(), "extensions": EXTENSIONS}

    @app.post("/v2/repository/index")
    async def repository_index() -> list[dict[str, str]]:
        state = "READY" if is_ready() else "UNAVAILABLE"
        return [{"name": m.name, "version": m.version, "state": state} for m in models]

    @app.get("/v2/models/stats")
    async def all_stats() -> dict[str, Any]:
        return {"model_stats": [m.statistics() for m in models]}

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(prometheus_metrics(models), media_type="text/plain; version=0.0.4")

    @app.get("/v2/models/{name}")
    @app.get("/v2/models/{name}/versions/{version}")
    async def model_metadata(name: str, version: str | None = None) -> dict[str, Any]:
        return lookup(name, version).metadata()

    @app.get("/v2/models/{name}/ready")
    @app.get("/v2/models/{name}/versions/{version}/ready")
    async def model_ready(name: str, version: str | None = None) -> Response:
        model = lookup(name, version)
        return Response(status_code=200) if is_ready() else _error(503, f"model '{model.name}' is not ready")

    @app.get("/v2/models/{name}/config")
    @app.get("/v2/models/{name}/versions/{version}/config")
    async def model_config(name: str, version: str | None = None) -> dict[str, Any]:
        return lookup(name, version).config()

    @app.get("/v2/models/{name}/stats")
    @app.get("/v2/models/{name}/versions/{version}/stats")
    async def model_stats(name: str, version: str | None = None) -> dict[str, Any]:
        return {"model_stats": [lookup(name, version).statistics()]}

    async def infer(request: Request) -> Response:
        model = lookup(request.path_params["name"], request.path_params.get("version"))
        if not is_ready():
            raise ProtocolError(503, "server is shutting down")
        body = await _read_body(request, max_body_bytes)
        encoding = request.headers.get("content-encoding", "identity").strip().lower()
        header_length = request.headers.get(HEADER_LENGTH)
        large = len(body) > OFFLOAD_BYTES or encoding != "identity"

        def decode() -> Any:
            raw = body if encoding == "identity" else _decompress(body, encoding, max_body_bytes)
            req = decode_request(raw, header_length, model.name, model.manifest.inputs, model.manifest.outputs,
                                 json_values[model.name])  # fmt: skip
            return req, model.validate(req.inputs)

        req, feed = await asyncio.to_thread(decode) if large else decode()
        results = await model.infer(feed)

        def encode() -> tuple[bytes, int | None]:
            return encode_response(model.name, model.version, req.id, results, req.outputs, model.batched)

        out_size = sum(a.nbytes for a in results.values())
        content, json_size = await asyncio.to_thread(encode) if out_size > OFFLOAD_BYTES else encode()
        if json_size is None:
            return Response(content, media_type="application/json")
        return Response(content, media_type="application/octet-stream", headers={HEADER_LENGTH: str(json_size)})

    # The hot path as plain Starlette routes, matched first: no FastAPI parameter resolution per request
    # (about a fifth of the server's own time per request on small models).
    for path in ("/v2/models/{name}/infer", "/v2/models/{name}/versions/{version}/infer"):
        app.router.routes.insert(0, Route(path, infer, methods=["POST"]))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return _error(500, f"internal error: {type(exc).__name__}: {exc}")

    app.add_middleware(LimitsMiddleware, body_timeout_s=limits.body_timeout_s)
    return app
