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

from deploy.errors import UserError

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def bind(host: str, port: int) -> socket.socket:
    """A listening socket (port 0: any free port), bound before serving so errors are one clear line."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise UserError(f"cannot resolve host '{host}': {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    # proto must say TCP: asyncio turns Nagle off (TCP_NODELAY) only on sockets whose proto is IPPROTO_TCP,
    # and with Nagle on, a response written as headers + body waits ~40 ms for the client's delayed ACK.
    sock = socket.socket(family, kind, proto or socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def make_server(bundles: Sequence[str | Path], *, max_batch: int = 8, max_delay_ms: float = 1.0,
                max_body_mb: float = 64.0, pool_size: int = 1, threads: int | None = None, max_queue: int = 1024,
                drain_timeout_s: float = 30.0, log_level: str = "warning", access_log: bool = False,
                verify: bool = True, http: str = "auto", loop: str = "auto") -> Any:  # fmt: skip
    """A uvicorn server for the bundles (engines loaded, not yet listening): ``server.run(sockets=[sock])``."""
    try:
        import uvicorn

        from deploy.serving.app import create_app
    except ImportError as exc:
        raise UserError(
            f"attnx serve needs fastapi and uvicorn ({exc.name} is missing): pip install 'attnx[serve]'"
        ) from None
    from deploy.serving.models import load_models

    if max_body_mb <= 0:
        raise UserError(f"--max-body-mb must be > 0, got {max_body_mb}")
    if drain_timeout_s < 0:
        raise UserError(f"--drain-timeout must be ≥ 0, got {drain_timeout_s}")
    _check_impl("--http", http, {"auto": None, "h11": "h11", "httptools": "httptools"})
    _check_impl("--loop", loop, {"auto": None, "asyncio": None, "uvloop": "uvloop"})
    models = load_models(bundles, max_batch=max_batch, max_delay_ms=max_delay_ms, pool_size=pool_size,
                         threads=threads, max_queue=max_queue, verify=verify)  # fmt: skip
    app = create_app(models, max_body_bytes=int(max_body_mb * (1 << 20)), drain_timeout_s=drain_timeout_s)

    class Server(uvicorn.Server):
        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            app.state.draining = True  # readiness turns 503 while requests in flight finish
            await super().shutdown(sockets)

    config = uvicorn.Config(
        app, log_level=log_level, access_log=access_log, lifespan="on", http=http, loop=loop,
        timeout_graceful_shutdown=max(1, round(drain_timeout_s)), server_header=False,
    )  # fmt: skip
    server = Server(config)
    server.models = models  # type: ignore[attr-defined]
    return server


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
          access_log: bool = False, verify: bool = True, http: str = "auto", loop: str = "auto") -> None:  # fmt: skip
    """Serve bundles over the KServe v2 HTTP protocol until SIGINT/SIGTERM, then finish requests in flight."""
    server = make_server(
        bundles, max_batch=max_batch, max_delay_ms=max_delay_ms, max_body_mb=max_body_mb, pool_size=pool_size,
        threads=threads, max_queue=max_queue, drain_timeout_s=drain_timeout_s, log_level=log_level,
        access_log=access_log, verify=verify, http=http, loop=loop,
    )  # fmt: skip
    try:
        sock = bind(host, port)
    except UserError:
        for m in server.models:
            m.close()
        raise
    bound_host, bound_port = sock.getsockname()[:2]
    url_host = f"[{bound_host}]" if ":" in bound_host else bound_host
    for m in server.models:
        batching = (
            f"batches ≤ {m.batcher.max_batch}, delay ≤ {max_delay_ms:g} ms"
            if m.batcher.max_batch > 1
            else "no batching"
        )
        print(f"model '{m.name}' ({m.manifest.backend} {m.manifest.precision}, {batching}) from {m.bundle}", flush=True)
    if host not in LOOPBACK:
        print(f"warning: listening on {host}, reachable from other machines; the server has no authentication",
              file=sys.stderr, flush=True)  # fmt: skip
    print(f"serving KServe v2 on http://{url_host}:{bound_port}/v2 (Ctrl+C stops after requests in flight)", flush=True)
    if threading.current_thread() is threading.main_thread():
        # uvicorn re-raises the signal it handled once the graceful shutdown is done; make SIGTERM, like
        # SIGINT, end in a normal return (exit code 0) instead of the default kill.
        previous = signal.signal(signal.SIGTERM, _raise_stop)
    try:
        server.run(sockets=[sock])
    except (KeyboardInterrupt, _Stop):
        pass
    finally:
        sock.close()
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, previous)


class _Stop(Exception):
    pass


def _raise_stop(signum: int, frame: Any) -> None:
    raise _Stop()


def triton_repo(bundles: Sequence[str | Path], out: Path, max_batch: int | None = None, max_delay_us: int | None = 100,
                instances: int = 1, instance_kind: str = "auto", force: bool = False, check: bool = True,
                verify: bool = True) -> list[Path]:  # fmt: skip
    """Write a Triton model repository for the bundles; print one line per model; return the model folders."""
    from deploy.serving.triton_repo import write_repository

    models = write_repository(
        bundles, Path(out), max_batch=max_batch, max_delay_us=max_delay_us, instance_count=instances,
        instance_kind=instance_kind, force=force, check=check, verify=verify,
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
