"""``attnx serve``: bundles over HTTP (and gRPC) with the KServe v2 / Open Inference Protocol."""

from __future__ import annotations

import typer

from attnx.deploy.cli import options as opt


def serve(
    bundles: list[str] = opt.NAMED_BUNDLES,
    host: str = typer.Option("127.0.0.1", "--host", help="address to bind (loopback by default)"),
    port: int = typer.Option(8000, "--port", help="TCP port"),
    grpc_port: int = typer.Option(
        None, "--grpc-port", help="also serve KServe v2 over gRPC on this port (Triton's default: 8001; 0: any)"
    ),
    max_batch: int = opt.POOL_MAX_BATCH,
    max_delay_ms: float = opt.POOL_MAX_DELAY_MS,
    max_body_mb: float = typer.Option(64.0, "--max-body-mb", help="largest request body accepted"),
    pool_size: int = opt.POOL_SIZE,
    threads: int = opt.threads(None, "unset: the library's default (all cores)"),
    max_queue: int = typer.Option(1024, "--max-queue", help="queued requests per model before 503"),
    drain_timeout: float = typer.Option(30.0, "--drain-timeout", help="seconds to finish requests on shutdown"),
    max_header_kb: float = typer.Option(64.0, "--max-header-kb", help="largest request line + headers (else 431)"),
    max_json_values: int = typer.Option(
        1 << 21, "--max-json-values", help="most JSON values in one request (else 413; send big tensors as binary)"
    ),
    header_timeout: float = typer.Option(10.0, "--header-timeout", help="seconds to send a request's headers"),
    body_timeout: float = typer.Option(30.0, "--body-timeout", help="longest pause inside a request body (else 408)"),
    keep_alive_timeout: float = typer.Option(5.0, "--keep-alive-timeout", help="idle seconds between requests"),
    allow_failed_parity: bool = opt.ALLOW_FAILED_PARITY,
) -> None:
    """Serve bundles over HTTP (and gRPC) with the KServe v2 / Open Inference Protocol (JSON and binary tensors)."""
    # the serving stack: loaded when the command runs, so `attnx --help` stays instant
    from attnx.deploy.serving.cli import serve as run_server

    run_server(bundles, host=host, port=port, max_batch=max_batch, max_delay_ms=max_delay_ms,
               max_body_mb=max_body_mb, pool_size=pool_size, threads=threads, max_queue=max_queue,
               drain_timeout_s=drain_timeout, allow_failed_parity=allow_failed_parity,
               max_header_kb=max_header_kb, max_json_values=max_json_values, header_timeout_s=header_timeout,
               body_timeout_s=body_timeout, keep_alive_s=keep_alive_timeout, grpc_port=grpc_port)  # fmt: skip
