"""The functions behind ``attnx serve`` and ``attnx triton-repo`` (the typer commands call these).

Both take bundles as ``PATH`` or ``NAME=PATH``; a model's name defaults to its bundle folder's name.
fastapi and uvicorn are imported inside ``serve`` only, so the CLI stays fast to start.
"""

from __future__ import annotations

import signal
import socket
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from attnx.core.errors import UserError
from attnx.deploy.serving.net import bind, check_port, is_loopback
from attnx.deploy.serving.triton_repo import write_repository

# The server's modules (numpy, fastapi, uvicorn, grpc) are imported inside the functions that serve, so
# `attnx --help` and `attnx triton-repo` do not load them.


def make_server(bundles: Sequence[str | Path], *, max_batch: int = 8, max_delay_ms: float = 1.0,
                max_body_mb: float = 64.0, pool_size: int = 1, threads: int | None = None, max_queue: int = 1024,
                drain_timeout_s: float = 30.0, log_level: str = "warning", access_log: bool = False,
                verify: bool = True, http: str = "auto", loop: str = "auto",
                allow_failed_parity: bool = False, max_header_kb: float = 64.0, max_json_values: int = 1 << 21,
                header_timeout_s: float = 10.0, body_timeout_s: float = 30.0,
                keep_alive_s: float = 5.0, grpc_port: int | None = None,
                grpc_host: str = "127.0.0.1") -> Any:  # fmt: skip
    """A uvicorn server for the bundles (engines loaded, not yet listening): ``server.run(sockets=[sock])``.

    The limits and timeouts (``max_*``, ``*_timeout_s``) are described in :mod:`attnx.deploy.serving.limits`. With
    ``grpc_port`` (0: any free port) the KServe v2 gRPC service runs too, on the same event loop, models and
    batchers (:mod:`attnx.deploy.serving.grpc_server`); ``server.grpc.bound_port`` says where once it has started.
    """
    try:
        import uvicorn

        from attnx.deploy.serving.app import create_app
    except ImportError as exc:
        raise UserError(
            f"attnx serve needs fastapi and uvicorn ({exc.name} is missing): pip install 'attnx[serve]'"
        ) from None
    from attnx.deploy.serving.limits import protocol_class
    from attnx.deploy.serving.models import load_models

    limits = make_limits(max_body_mb, max_header_kb, max_json_values, header_timeout_s, body_timeout_s, keep_alive_s)
    if drain_timeout_s < 0:
        raise UserError(f"--drain-timeout must be ≥ 0, got {drain_timeout_s}")
    _check_impl("--http", http, {"auto": None, "h11": "h11", "httptools": "httptools"})
    _check_impl("--loop", loop, {"auto": None, "asyncio": None, "uvloop": "uvloop"})
    if grpc_port is not None:
        from attnx.deploy.serving.grpc_server import require_grpc

        check_port(grpc_port, "--grpc-port")
        require_grpc()
    models = load_models(bundles, max_batch=max_batch, max_delay_ms=max_delay_ms, pool_size=pool_size,
                         threads=threads, max_queue=max_queue, verify=verify,
                         allow_failed_parity=allow_failed_parity)  # fmt: skip
    app = create_app(models, drain_timeout_s=drain_timeout_s, limits=limits)
    grpc_frontend = None
    if grpc_port is not None:
        from attnx.deploy.serving.grpc_server import GrpcFrontend

        grpc_frontend = GrpcFrontend(models, grpc_host, grpc_port, limits,
                                     lambda: bool(app.state.ready) and not app.state.draining)  # fmt: skip

    class Server(uvicorn.Server):
        announce = False  # print where gRPC listens once bound (attnx serve)
        grpc_error: UserError | None = None

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            if grpc_frontend is None or self.should_exit:
                return
            try:
                await grpc_frontend.start()
            except UserError as exc:  # e.g. the port was taken since it was checked: stop, say why
                self.grpc_error = exc
                await super().shutdown(sockets)
                self.should_exit = True
                return
            if self.announce:
                print(f"serving KServe v2 gRPC on {grpc_frontend.address} (inference.GRPCInferenceService)",
                      flush=True)  # fmt: skip

        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            import asyncio

            app.state.draining = True  # readiness turns 503 (gRPC: not ready) while requests in flight finish
            # Past the drain timeout, requests still queued or running get the documented JSON 503 (the
            # batchers fail them); uvicorn's own cancel, 2 s later, is only the last resort.
            timer = asyncio.get_running_loop().call_later(drain_timeout_s, _abort, models, drain_timeout_s)
            try:
                if grpc_frontend is not None:  # no new RPCs; those in flight finish with the HTTP ones
                    await asyncio.gather(super().shutdown(sockets), grpc_frontend.stop(drain_timeout_s + 2))
                else:
                    await super().shutdown(sockets)
            finally:
                timer.cancel()

    config = uvicorn.Config(
        app, log_level=log_level, access_log=access_log, lifespan="on", http=protocol_class(http, limits),
        loop=loop, timeout_graceful_shutdown=drain_timeout_s + 2, server_header=False,
        timeout_keep_alive=limits.keep_alive_s, h11_max_incomplete_event_size=limits.max_header_bytes,
    )  # fmt: skip
    server = Server(config)
    server.models = models  # type: ignore[attr-defined]
    server.grpc = grpc_frontend  # type: ignore[attr-defined]
    return server


def make_limits(max_body_mb: float = 64.0, max_header_kb: float = 64.0, max_json_values: int = 1 << 21,
                header_timeout_s: float = 10.0, body_timeout_s: float = 30.0,
                keep_alive_s: float = 5.0) -> Any:  # fmt: skip
    """The server's :class:`~attnx.deploy.serving.limits.Limits` from the CLI's units, checked
    (one line per bad one)."""
    from attnx.deploy.serving.limits import Limits

    for option, value in [("--max-body-mb", max_body_mb), ("--max-header-kb", max_header_kb)]:
        if not value > 0:
            raise UserError(f"{option} must be > 0, got {value:g}")
    limits = Limits(
        max_body_bytes=int(max_body_mb * (1 << 20)), max_header_bytes=max(1, int(max_header_kb * 1024)),
        max_json_values=max_json_values, header_timeout_s=header_timeout_s, body_timeout_s=body_timeout_s,
        keep_alive_s=keep_alive_s,
    )  # fmt: skip
    limits.check()
    return limits


def _abort(models: Sequence[Any], drain_timeout_s: float) -> None:
    import logging

    reason = f"the server shut down before this request finished (--drain-timeout {drain_timeout_s:g} s passed)"
    failed = sum(m.batcher.abort(reason) for m in models)
    if failed:
        logging.getLogger("attnx.serve").warning("drain timeout: answered %d unfinished request(s) with 503", failed)


def _check_impl(option: str, value: str, modules: dict[str, str | None]) -> None:
    """uvicorn's choice of HTTP parser / event loop; "auto" takes httptools and uvloop when installed."""
    if value not in modules:
        raise UserError(f"unknown {option} '{value}': choose {', '.join(modules)}")
    module = modules[value]
    if module:
        import importlib.util

        if importlib.util.find_spec(module) is None:
            raise UserError(f"{option} {value} needs the {module} package: pip install 'uvicorn[standard]'")


def serve(bundles: Sequence[str | Path], host: str = "127.0.0.1", port: int = 8000, max_batch: int = 8,
          max_delay_ms: float = 1.0, max_body_mb: float = 64.0, pool_size: int = 1, threads: int | None = None,
          max_queue: int = 1024, drain_timeout_s: float = 30.0, log_level: str = "warning",
          access_log: bool = False, verify: bool = True, http: str = "auto", loop: str = "auto",
          allow_failed_parity: bool = False, max_header_kb: float = 64.0, max_json_values: int = 1 << 21,
          header_timeout_s: float = 10.0, body_timeout_s: float = 30.0,
          keep_alive_s: float = 5.0, grpc_port: int | None = None) -> None:  # fmt: skip
    """Serve bundles over the KServe v2 HTTP protocol (and gRPC on ``grpc_port``) until SIGINT/SIGTERM, then
    finish requests in flight."""
    check_port(port)  # bad settings fail before any bundle is loaded
    if grpc_port is not None:
        check_port(grpc_port, "--grpc-port")
        if grpc_port == port and port != 0:
            raise UserError(f"--grpc-port and --port are both {port}: give them different ports")
    limit_options = {
        "max_header_kb": max_header_kb, "max_json_values": max_json_values, "header_timeout_s": header_timeout_s,
        "body_timeout_s": body_timeout_s, "keep_alive_s": keep_alive_s,
    }  # fmt: skip
    make_limits(max_body_mb, **limit_options)
    server = make_server(
        bundles, max_batch=max_batch, max_delay_ms=max_delay_ms, max_body_mb=max_body_mb, pool_size=pool_size,
        threads=threads, max_queue=max_queue, drain_timeout_s=drain_timeout_s, log_level=log_level,
        access_log=access_log, verify=verify, http=http, loop=loop, allow_failed_parity=allow_failed_parity,
        grpc_port=grpc_port, grpc_host=host, **limit_options,
    )  # fmt: skip
    server.announce = True
    try:
        sock = bind(host, port)
        if grpc_port is not None:
            from attnx.deploy.serving.grpc_server import check_grpc_port

            try:
                check_grpc_port(host, grpc_port)
            except UserError:
                sock.close()
                raise
    except UserError:
        for m in server.models:
            m.close()
        raise
    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        # From here to the end, SIGINT/SIGTERM ask uvicorn for its graceful shutdown: before uvicorn installs
        # its own handlers (a signal right after the "serving" line), while they are in place, and when it
        # re-raises the signal after shutting down. A handler that raised instead could land inside a weakref
        # callback, where Python ignores it, and the server would run on.
        previous = {sig: signal.signal(sig, server.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
    bound_host, bound_port = sock.getsockname()[:2]
    url_host = f"[{bound_host}]" if ":" in bound_host else bound_host
    for m in server.models:
        batching = (
            f"batches ≤ {m.batcher.max_batch}, delay ≤ {max_delay_ms:g} ms"
            if m.batcher.max_batch > 1
            else "no batching"
        )
        print(f"model '{m.name}' ({m.manifest.backend} {m.manifest.precision}, {batching}) from {m.bundle}", flush=True)
    if not is_loopback(bound_host):  # what was bound: a name such as localhost counts as what it resolved to
        print(f"warning: listening on {host}, reachable from other machines; the server has no authentication",
              file=sys.stderr, flush=True)  # fmt: skip
    print(f"serving KServe v2 on http://{url_host}:{bound_port}/v2 (Ctrl+C stops after requests in flight)", flush=True)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if server.grpc_error is not None:
        raise server.grpc_error


def triton_repo(bundles: Sequence[str | Path], out: Path, max_batch: int | None = None, max_delay_us: int | None = 100,
                instances: int = 1, instance_kind: str = "auto", force: bool = False, check: bool = True,
                verify: bool = True, allow_failed_parity: bool = False) -> list[Path]:  # fmt: skip
    """Write a Triton model repository for the bundles; print one line per model; return the model folders."""
    models = write_repository(
        bundles, Path(out), max_batch=max_batch, max_delay_us=max_delay_us, instance_count=instances,
        instance_kind=instance_kind, force=force, check=check, verify=verify,
        allow_failed_parity=allow_failed_parity,
    )  # fmt: skip
    checked = "checked with Triton's model_config schema" if check else "NOT checked (--no-check)"
    for m in models:
        c = m.config
        runs_on = c.get("platform") or f"{c['backend']} backend"
        print(f"{Path(out) / m.name}: {runs_on}, max_batch_size {c['max_batch_size']}, "
              f"{len(m.files)} model file(s), config.pbtxt {checked}")  # fmt: skip
        if c.get("backend") == "openvino" and any(man.precision != "bf16" for _, man in m.bundles):
            # Said here too, not only in the README: a silent precision change is what parity checks exist for.
            print(f"warning: {m.name}: Triton's OpenVINO backend cannot pin f32, so on a CPU with native bf16 this "
                  "model may compute in bf16, unlike its bundle's parity check; to keep fp32 there, serve an ORT "
                  "bundle (attnx build --backend ort)")  # fmt: skip
    print(f"{Path(out) / 'README.md'}: how to start tritonserver on it")
    return [Path(out) / m.name for m in models]
