"""The zoo benchmark behind ``make bench``: a bundle per zoo model and precision, each timed against PyTorch.

    python -m attnx.deploy.tools.zoo_bench --models all --batches 1,8 --precisions fp32,int8 --out bench

Writes ``<model>.json``, ``<model>.png``, ``summary.md``, ``results.json`` and ``speedup.png`` into ``--out``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from rich.console import Console

from attnx.core.errors import UserError
from attnx.core.files import write_json, write_text
from attnx.deploy.apis.bench import run_bench
from attnx.deploy.apis.build import BuildOptions, build_bundle
from attnx.deploy.bench.measure import BenchOptions, BenchResult, bench_table, markdown_summary
from attnx.exporters.registry import zoo


def bench_zoo(
    models: Sequence[str], out_dir: Path, options: BenchOptions, backend: str = "ort",
    precisions: Sequence[str] = ("fp32",), plot: bool = True, progress: Callable[[str], None] | None = None,
) -> list[BenchResult]:  # fmt: skip
    """Build a bundle per model and precision (in a temporary folder), benchmark each model against PyTorch.

    ``models``: zoo names; ``backend``: one or several, comma-separated (``ort,openvino``: each runs the
    precisions it has; bf16 is OpenVINO's only, fp16 is not OpenVINO's); ``options``: the timing (batches,
    iterations, threads). Writes ``<model>.json`` (and ``<model>.png`` with ``plot``), then ``results.json``,
    ``summary.md`` and ``speedup.png`` into ``out_dir``; returns the results in ``models``' order.
    Raises UserError for no models, an unknown model, or a bundle that cannot be built.
    """
    if not models:
        raise UserError("no models to benchmark")
    results = []
    with tempfile.TemporaryDirectory(prefix="attnx-bench-zoo-") as tmp:
        for model in models:
            bundles = []
            pairs = [(b, p) for b in backend.split(",") for p in precisions
                     if not (p == "bf16" and b != "openvino") and not (b == "openvino" and p == "fp16")]  # fmt: skip
            for one_backend, precision in pairs:
                if progress:
                    progress(f"building {model} ({one_backend} {precision})")
                dest = Path(tmp) / f"{model}-{one_backend}-{precision}"
                build_opts = BuildOptions(
                    backend=one_backend, precision=precision, max_batch=max(options.batches), threads=options.threads
                )
                build_bundle(model, dest, build_opts)
                bundles.append(dest)
            if progress:
                progress(f"benchmarking {model}")
            result = run_bench(bundles, model=model, options=options, progress=progress)
            results.append(result)
            write_json(out_dir / f"{model}.json", result.to_dict())
            if plot:
                from attnx.deploy.bench.plots import plot_bench  # imports matplotlib

                plot_bench(result, out_dir / f"{model}.png")
    write_json(out_dir / "results.json", {"format": "attnx-bench-set", "results": [r.to_dict(samples=False) for r in results]})  # noqa: E501
    write_text(out_dir / "summary.md", markdown_summary(results))
    if plot:
        from attnx.deploy.bench.plots import plot_speedups  # imports matplotlib

        plot_speedups(results, out_dir / "speedup.png")
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m attnx.deploy.tools.zoo_bench``: the zoo benchmark (``make bench``). Returns the exit code:
    0, or 2 for bad input (one line on stderr)."""
    p = argparse.ArgumentParser(prog="python -m attnx.deploy.tools.zoo_bench", description=__doc__.splitlines()[0])
    p.add_argument("--models", default="all", help="comma-separated zoo names, or 'all'")
    p.add_argument("--out", type=Path, default=Path("bench"), help="output folder")
    p.add_argument("--batches", default="1", help="batch sweep, e.g. 1,4,8")
    p.add_argument("--precisions", default="fp32", help="bundle precisions, e.g. fp32,int8")
    p.add_argument("--backend", default="ort", help="ort, openvino, trt, or several comma-separated")
    p.add_argument("--iterations", type=int, default=100)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--threads", type=int, default=1,
                   help="intra-op threads per inference session; default 1, for stable timings; 0: the library's "
                        "default (all cores)")  # fmt: skip
    p.add_argument("--no-plot", action="store_true")
    args = p.parse_args(argv)
    console = Console(stderr=True)
    try:
        names = list(zoo()) if args.models == "all" else [m.strip() for m in args.models.split(",") if m.strip()]
        batches = tuple(int(b) for b in args.batches.split(","))
        options = BenchOptions(batches=batches, iterations=args.iterations, warmup=args.warmup,
                               threads=args.threads or None)  # fmt: skip
        with console.status("benchmarking...") as status:
            results = bench_zoo(names, args.out, options, backend=args.backend,
                                precisions=[p.strip() for p in args.precisions.split(",")], plot=not args.no_plot,
                                progress=lambda s: status.update(s))  # fmt: skip
    except (UserError, ValueError) as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False)
        return 2
    out = Console(width=None if sys.stdout.isatty() else 160)  # a piped table keeps its columns
    for r in results:
        out.print(bench_table(r))
    out.print(f"wrote {args.out}/summary.md, results.json and per-model JSON{'' if args.no_plot else ' and plots'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
