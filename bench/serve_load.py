"""Bounded loopback load test of `attnx serve`: throughput and p50/p99 latency with and without dynamic batching,
over KServe v2 HTTP and gRPC side by side (one server per configuration serves both), and the server's overhead
over direct Engine calls.

    python bench/serve_load.py                                  # tiny_net, 2,000 requests, 16 clients
    python bench/serve_load.py --model cbam_resnet --requests 1000 --json serve.json
    python bench/serve_load.py --bundle bundles/cbam --rows 2
    python bench/serve_load.py --bundle /tmp/b --protocols http,grpc --json bench/serve_grpc_http.json

Each configuration runs the same seeded requests (one distinct input per request). The server runs in its own
process on 127.0.0.1 (free ports); the clients are `tritonclient.http` / `tritonclient.grpc` clients in threads of
this process, one protocol at a time (their order alternates between rounds), against the same server.
Every response is checked against the result an in-process Engine computes for that request; the run fails
(exit 1) on any error or mismatch. Figures depend on the machine and on what else runs on it: report the CPU
count and load beside them.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(bundle: Path, port: int, opts: dict[str, Any]) -> subprocess.Popen[bytes]:
    """The server in a child process; with ``grpc_port`` in ``opts`` it serves gRPC too (ready: both answer)."""
    kwargs = ", ".join(f"{k}={v!r}" for k, v in opts.items())
    code = (f"from attnx.deploy.serving.cli import serve; "
            f"serve([{str(bundle)!r}], host='127.0.0.1', port={port}, {kwargs})")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {proc.stderr.read().decode()[-2000:] if proc.stderr else ''}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready", timeout=2) as r:
                if r.status == 200 and (opts.get("grpc_port") is None or _grpc_ready(opts["grpc_port"])):
                    return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("server did not become ready in 120 s")


def _grpc_ready(port: int) -> bool:
    import tritonclient.grpc as grpcclient

    try:
        with grpcclient.InferenceServerClient(f"127.0.0.1:{port}") as c:
            return bool(c.is_server_ready(client_timeout=2))
    except Exception:
        return False


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGINT)  # graceful: finish in-flight requests, then exit
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def server_stats(port: int, model: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/models/{model}/stats", timeout=10) as r:
        stats = json.loads(r.read())["model_stats"][0]
    return {
        "inference_count": stats["inference_count"],
        "execution_count": stats["execution_count"],
        "mean_rows_per_run": round(stats["inference_count"] / max(1, stats["execution_count"]), 2),
        "runs_by_batch_size": {b["batch_size"]: b["compute_infer"]["count"] for b in stats["batch_stats"]},
    }


def _delta(after: dict[str, Any], before: dict[str, Any]) -> dict[str, Any]:
    """Server statistics of one load run: the counters' growth over it (one server serves both protocols)."""
    inferences = after["inference_count"] - before["inference_count"]
    runs = after["execution_count"] - before["execution_count"]
    sizes = {b: n - before["runs_by_batch_size"].get(b, 0) for b, n in after["runs_by_batch_size"].items()}
    return {"inference_count": inferences, "execution_count": runs,
            "mean_rows_per_run": round(inferences / max(1, runs), 2),
            "runs_by_batch_size": {b: n for b, n in sizes.items() if n}}  # fmt: skip


def _load(proto: str, port: int, gport: int, model: str, requests: list[Any], expected: list[Any], clients: int,
          binary: bool, time_limit_s: float) -> Any:  # fmt: skip
    from attnx.deploy.serving.load import run_load, run_load_grpc

    if proto == "grpc":
        return run_load_grpc(f"127.0.0.1:{gport}", model, requests, expected, concurrency=clients,
                             time_limit_s=time_limit_s)  # fmt: skip
    return run_load(f"127.0.0.1:{port}", model, requests, expected, concurrency=clients, binary=binary,
                    time_limit_s=time_limit_s)  # fmt: skip


def _versions() -> dict[str, str | None]:
    from importlib import metadata

    out: dict[str, str | None] = {}
    for dist in ("fastapi", "starlette", "uvicorn", "httptools", "uvloop", "grpcio", "onnxruntime", "tritonclient"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


def _median(rounds: list[dict[str, Any]], label: str) -> dict[str, Any]:
    runs = [r[label] for r in rounds]
    return {
        "throughput_rps": round(float(np.median([r["throughput_rps"] for r in runs])), 1),
        "latency_ms": {q: round(float(np.median([r["latency_ms"][q] for r in runs])), 3) for q in ("p50", "p99")},
        "errors": sum(r["errors"] for r in runs),
        "mismatches": sum(r["mismatches"] for r in runs),
        **({"mean_rows_per_engine_run": round(float(np.median([r["server"]["mean_rows_per_run"] for r in runs])), 2)}
           if "server" in runs[0] else {}),
    }  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", type=Path, help="a bundle folder (default: build --model into a temp folder)")
    ap.add_argument("--model", default="tests.fixtures:tiny_net", help="model spec to build when --bundle is not given")
    ap.add_argument("--input-shape", default="1x3x16x16", help="build shape for --model (tiny_net needs one)")
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--rows", type=int, default=1, help="samples per request")
    ap.add_argument("--max-batch", type=int, default=8)
    ap.add_argument("--max-delay-ms", type=float, default=1.0)
    ap.add_argument("--pool-size", type=int, default=1, help="ORT sessions (batches run at once)")
    ap.add_argument("--threads", type=int, default=1, help="ORT intra-op threads per session")
    ap.add_argument("--http", default="auto", help="uvicorn HTTP implementation: auto, h11, httptools")
    ap.add_argument("--loop", default="auto", help="uvicorn event loop: auto, asyncio, uvloop")
    ap.add_argument("--json-tensors", action="store_true", help="send JSON tensors instead of binary (HTTP)")
    ap.add_argument("--protocols", default="http,grpc", help="comma-separated: http, grpc (KServe v2 over each)")
    ap.add_argument("--time-limit-s", type=float, default=300.0, help="stop sending after this long, per configuration")
    ap.add_argument("--repeats", type=int, default=3, help="rounds of every configuration (medians are reported)")
    ap.add_argument("--single-requests", type=int, default=300, help="requests for the one-client overhead figure")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    if not (1 <= args.requests <= 100_000 and 1 <= args.concurrency <= 256 and 1 <= args.repeats <= 20):
        raise SystemExit("keep the load bounded: 1..100000 requests, 1..256 clients, 1..20 repeats")
    args.single_requests = max(1, min(args.single_requests, args.requests))

    from attnx.deploy.bundle.engine import Engine
    from attnx.deploy.serving.load import run_direct

    with tempfile.TemporaryDirectory(prefix="attnx-bench-") as tmp:
        bundle = args.bundle
        if bundle is None:
            from attnx.deploy.apis.build import BuildOptions, build_bundle
            from attnx.deploy.parity.inputs import parse_shape

            shape = parse_shape(args.input_shape) if args.input_shape else None
            opts = BuildOptions(backend="ort", precision="fp32", input_shape=shape, max_batch=max(8, args.max_batch))
            bundle = build_bundle(args.model, Path(tmp) / "model", opts).bundle
        engine = Engine.load(bundle, pool_size=args.pool_size, threads=args.threads)
        spec = engine.inputs
        rng = np.random.default_rng(0)
        requests = []
        for _ in range(args.requests):
            feed = {}
            for s in spec:
                shp = [args.rows if isinstance(d, str) else d for d in (s.profile["opt"] if s.profile else s.shape)]
                if s.profile and isinstance(s.shape[0], str):
                    shp[0] = args.rows
                feed[s.name] = rng.standard_normal(shp).astype(s.dtype)
            requests.append(feed)
        expected = [engine(f) for f in requests]
        name = Path(bundle).resolve().name

        figures: dict[str, Any] = {
            "machine": {"cpus": os.cpu_count(), "loadavg_before": os.getloadavg()},
            "bundle": str(bundle), "backend": engine.manifest.backend,
            "input_shapes": {k: list(v.shape) for k, v in requests[0].items()},
            "requests": args.requests, "concurrency": args.concurrency, "repeats": args.repeats,
            "tensors": "json" if args.json_tensors else "binary", "pool_size": args.pool_size, "threads": args.threads,
            "max_batch": args.max_batch, "max_delay_ms": args.max_delay_ms,
            "http": args.http, "loop": args.loop, "server_libraries": _versions(),
        }  # fmt: skip
        configs = {
            "server_no_batching": {"max_batch": 1, "max_delay_ms": 0.0},
            "server_dynamic_batching": {"max_batch": args.max_batch, "max_delay_ms": args.max_delay_ms},
        }
        single = requests[: args.single_requests]
        protocols = [x.strip() for x in args.protocols.split(",") if x.strip()]
        if not protocols or set(protocols) - {"http", "grpc"}:
            raise SystemExit(f"--protocols takes http and/or grpc, got {args.protocols!r}")
        figures["protocols"] = protocols
        failed = False
        rounds: list[dict[str, Any]] = []
        for round_no in range(args.repeats):  # configurations interleaved per round: a noisy machine hits them alike
            row: dict[str, Any] = {}
            direct = run_direct(engine, requests, concurrency=args.concurrency, time_limit_s=args.time_limit_s)
            row["direct_engine"] = direct.summary()
            row["direct_engine_1_client"] = run_direct(engine, single, concurrency=1).summary()
            failed |= bool(direct.errors)
            order = protocols if round_no % 2 == 0 else protocols[::-1]
            for config, batching in configs.items():
                port, gport = free_port(), free_port()
                opts = {**batching, "pool_size": args.pool_size, "threads": args.threads, "http": args.http,
                        "loop": args.loop, **({"grpc_port": gport} if "grpc" in protocols else {})}  # fmt: skip
                proc = start_server(bundle, port, opts)
                try:
                    binary = not args.json_tensors
                    for proto in order:
                        label = f"{proto}_{config}"
                        if config == "server_no_batching":  # one client at a time: the server's own cost per request
                            one = _load(proto, port, gport, name, single, expected[: len(single)], 1, binary,
                                        args.time_limit_s)  # fmt: skip
                            row[f"{proto}_server_1_client"] = one.summary()
                            failed |= bool(one.errors or one.mismatches)
                        before = server_stats(port, name)
                        result = _load(proto, port, gport, name, requests, expected, args.concurrency, binary,
                                       args.time_limit_s)  # fmt: skip
                        row[label] = {**result.summary(), "server": _delta(server_stats(port, name), before)}
                        if result.errors:
                            row[label]["first_errors"] = result.errors[:5]
                        failed |= bool(result.errors or result.mismatches or result.completed != args.requests)
                finally:
                    stop_server(proc)
                for proto in order:
                    row[f"{proto}_{config}"]["server_exit_code"] = proc.returncode
            rounds.append(row)
        engine.close()

        figures["median_over_repeats"] = {label: _median(rounds, label) for label in rounds[0]}
        med = figures["median_over_repeats"]
        figures["server_overhead_ms_per_request_1_client"] = {
            proto: {
                q: round(
                    med[f"{proto}_server_1_client"]["latency_ms"][q] - med["direct_engine_1_client"]["latency_ms"][q], 3
                )
                for q in ("p50", "p99")
            }  # fmt: skip
            for proto in protocols
        }
        figures["table"] = [
            {"protocol": proto, "batching": "on" if "dynamic" in config else "off",
             "throughput_rps": med[f"{proto}_{config}"]["throughput_rps"], **med[f"{proto}_{config}"]["latency_ms"],
             "errors": med[f"{proto}_{config}"]["errors"], "mismatches": med[f"{proto}_{config}"]["mismatches"],
             "mean_rows_per_engine_run": med[f"{proto}_{config}"].get("mean_rows_per_engine_run")}
            for config in configs for proto in protocols
        ]  # fmt: skip
        figures["rounds"] = rounds
        figures["loadavg_after"] = os.getloadavg()

    text = json.dumps(figures, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
