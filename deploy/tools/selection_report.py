"""Benchmark (not a test): is the bundle `--precision best` picks as fast as the best CPU engine run directly?

    python -m attnx.deploy.tools.selection_report --models resnets --config resnet50 --threads 2 \\
        --json bench/cpu_selection.json --markdown bench/cpu_selection.md

Per model:

* ``build_bundle(--backend auto --precision best)``: attnx builds every CPU candidate, times them and keeps
  the fastest that passes its parity policy (``attnx.deploy.apis.build.build_best``);
* beside it, the five CPU configurations run *directly* by their libraries on the same ONNX files — the
  fp32 export and the ORT-layout Q/DQ int8 model made from the same (cached) calibration table: ONNX Runtime
  fp32 and int8 (an ``InferenceSession`` with default optimisations), OpenVINO fp32, bf16 and int8
  (``compile_model`` with the inference precision hint); only the thread count is set;
* all six timed in one interleaved run (``attnx.deploy.bench.measure.measure``), batch 1, the same seeded input;
* each direct configuration's parity against direct ONNX Runtime fp32 on held-out digits under its
  precision's policy (``attnx.deploy.parity.compare``), and the GFLOP/s and share of the CPU's fp32 FMA peak of each.

The verdict per model: the chosen bundle's median latency over the fastest *passing* direct configuration's
(≤ 1 means attnx's choice is at least as fast; ratios within a few percent are timing noise).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from attnx.deploy.backends.base import Runner
from attnx.deploy.backends.onnxrt.runner import OnnxrtRunner
from attnx.deploy.backends.openvino.runner import OpenVinoRunner
from attnx.deploy.tools.int8_bench import RESNETS

DIRECT = (("ort", "fp32"), ("ort", "int8"), ("openvino", "fp32"), ("openvino", "bf16"), ("openvino", "int8"))


def direct_runner(backend: str, precision: str, path: Path, threads: int) -> Runner:
    """An activated runner of ``path`` with the library's own defaults (ORT: every graph optimisation, one
    inter-op thread; OpenVINO: the LATENCY hint), ``threads`` CPU threads; ``backend``: ``ort`` or
    ``openvino``; ``precision`` ``bf16`` compiles OpenVINO with bf16 inference precision."""
    runner: Runner
    if backend == "ort":
        runner = OnnxrtRunner(path, threads=threads, inter_threads=1)
    else:
        runner = OpenVinoRunner(path, "bf16" if precision == "bf16" else "fp32", threads=threads,
                                performance_hint="LATENCY")  # fmt: skip
    runner.activate()
    return runner


def first_output(runner: Runner, feed: dict[str, np.ndarray]) -> np.ndarray:
    """The runner's first output for ``feed``."""
    return runner.infer(feed)[runner.output_names()[0]]


def report_model(name: str, config: str | None, threads: int, iterations: int, folder: Path,
                 eval_count: int) -> dict[str, Any]:  # fmt: skip
    """Build zoo model ``name``'s ``--precision best`` CPU bundle in ``folder`` and time it, ``iterations`` runs at
    batch 1 on ``threads`` threads, against the five ``DIRECT`` configurations (each with its parity against
    direct ORT fp32 on ``eval_count`` held-out digits); returns the model's report as a JSON-ready dict
    (rows: p50/mean ms, GFLOP/s, share of the CPU's fp32 peak; ``chosen_over_best_direct``: latency ratio).
    """
    import onnx

    from attnx.calibration.config import CalibrationConfig
    from attnx.calibration.data import load_split
    from attnx.calibration.graph import graph_inputs
    from attnx.calibration.precision import apply_precision
    from attnx.deploy.apis.build import BuildOptions, build_bundle
    from attnx.deploy.apis.pipeline import export_model, full_input_shape, prepare_model
    from attnx.deploy.backends.base import TensorSpec
    from attnx.deploy.bench.measure import BenchOptions, BenchTarget, bundle_target, measure, summarize
    from attnx.deploy.bench.roofline import count_flops, cpu_peak
    from attnx.deploy.parity.compare import compare_output, policy
    from attnx.deploy.parity.inputs import seeded_inputs
    from attnx.exporters.export import ExportOptions

    built = build_bundle(name, folder / f"{name}-best", BuildOptions(backend="auto", precision="best", threads=threads),
                         config=config)  # fmt: skip
    selection = built.manifest.build.get("selection", {})

    prepared = prepare_model(name, config=config)
    shape = full_input_shape(prepared, None)
    fp32_path = folder / f"{name}-fp32.onnx"
    export_model(prepared, fp32_path, ExportOptions(input_shape=shape, dynamic_batch=True, opset=17), target="ort")
    int8 = apply_precision(fp32_path, "int8", style="ort", calibration={}, work_dir=folder / f"{name}-int8")
    int8_path = folder / f"{name}-int8.onnx"
    onnx.save(int8.model, str(int8_path))
    paths = {"fp32": fp32_path, "bf16": fp32_path, "int8": int8_path}

    runners = {(b, p): direct_runner(b, p, paths[p], threads) for b, p in DIRECT}
    fp32 = onnx.load(str(fp32_path))  # read once: for its inputs and its FLOPs
    inputs = graph_inputs(fp32)
    input_name = inputs[0].name

    # Parity of each direct configuration against direct ORT fp32, on held-out real images.
    _, held_out = load_split(inputs, CalibrationConfig.from_dict({"count": 1, "eval_count": eval_count}))
    samples = next(iter(held_out.arrays.values()))

    def outputs(run: Any) -> np.ndarray:
        return np.concatenate([first_output(run, {input_name: samples[i : i + 1]}) for i in range(len(samples))])

    reference = outputs(runners[("ort", "fp32")])
    parity = {}
    for key, run in runners.items():
        comp = compare_output("output", reference, outputs(run), policy(key[1]))
        parity[key] = {"passed": comp.passed, "cosine": round(comp.cosine, 6), "failures": comp.failures}

    targets = [BenchTarget(f"direct {b} {p}", b, p, infer=run.infer) for (b, p), run in runners.items()]
    chosen = bundle_target(built.bundle, threads, name="attnx best bundle")
    targets.append(chosen)
    feed = seeded_inputs([TensorSpec(input_name, np.dtype("float32"), (None, *shape[1:]))], {input_name: shape}, 0)
    try:
        measured = measure(targets, feed, 1, BenchOptions(iterations=iterations, threads=threads, warmup=5))
    finally:
        if chosen.close:
            chosen.close()
    flops = count_flops(fp32, {input_name: tuple(shape)}).total
    peak = cpu_peak().for_cores(threads)
    rows = []
    for m in measured:
        stats = summarize(m.samples_ms)
        gflops = flops / (stats.p50_ms / 1e3) / 1e9
        key = (m.target.backend, m.target.precision)
        row = {"target": m.target.name, "backend": key[0], "precision": key[1], "p50_ms": round(stats.p50_ms, 3),
               "mean_ms": round(stats.mean_ms, 3), "gflops_per_s": round(gflops, 1),
               "peak_fraction": round(gflops / peak, 3)}  # fmt: skip
        if m.target is not chosen:
            row["parity"] = parity[key]
        rows.append(row)
    direct_ok = [r for r in rows if r.get("parity", {}).get("passed")]  # ORT fp32 always: it is the reference
    best = min(direct_ok, key=lambda r: r["p50_ms"])
    chosen_row = rows[-1]
    return {
        "model": name, "config": config or "tiny", "input_shape": list(shape), "threads": threads,
        "gflop": round(flops / 1e9, 3), "peak_gflops": round(peak, 1),
        "chosen": selection.get("chosen") or {"backend": built.manifest.backend, "precision": built.manifest.precision},
        "selection": selection, "rows": rows, "best_direct": best["target"],
        "chosen_over_best_direct": round(chosen_row["p50_ms"] / best["p50_ms"], 3),
    }  # fmt: skip


def markdown(reports: list[dict[str, Any]]) -> str:
    """The reports of :func:`report_model` as a Markdown table, one line per model: each direct configuration's
    p50 ms, the chosen bundle and its ms, chosen / best passing direct, and fp32 GFLOP/s (% of peak).
    """
    head = ["ort fp32", "ort int8", "openvino fp32", "openvino bf16", "openvino int8"]
    lines = [
        "| model | " + " | ".join(f"direct {h} ms" for h in head)
        + " | chosen bundle | its ms | chosen / best direct | fp32 GFLOP/s (% of peak): ORT, OpenVINO |",
        "|---|" + "---:|" * len(head) + "---|---:|---:|---|",
    ]  # fmt: skip
    for r in reports:
        by = {f"{x['backend']} {x['precision']}": x for x in r["rows"] if x["target"].startswith("direct")}
        cells = []
        for h in head:
            x = by[h]
            cells.append(f"{x['p50_ms']:.2f}" + ("" if x["parity"]["passed"] else " (fails parity)"))
        chosen = r["rows"][-1]
        roof = ", ".join(f"{by[h]['gflops_per_s']:.0f} ({100 * by[h]['peak_fraction']:.0f}%)"
                         for h in ("ort fp32", "openvino fp32"))  # fmt: skip
        lines.append(
            f"| {r['model']} ({r['config']}) | " + " | ".join(cells)
            + f" | {r['chosen']['backend']} {r['chosen']['precision']} | {chosen['p50_ms']:.2f} | "
            f"{r['chosen_over_best_direct']:.3f} | {roof} |"
        )  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from attnx.core.files import write_json, write_text
    from attnx.deploy.bench.measure import steady_malloc

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnets", help="comma-separated zoo names, or 'resnets'")
    parser.add_argument("--config", default="resnet50", help="zoo configuration (default resnet50: 3×224×224)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=60, help="timed runs per configuration")
    parser.add_argument("--eval-count", type=int, default=16, help="held-out digits for the direct runs' parity")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args(argv)
    names = list(RESNETS) if args.models == "resnets" else [n for n in args.models.split(",") if n]
    steady_malloc()
    reports = []
    with tempfile.TemporaryDirectory(prefix="attnx-select-") as tmp:
        for name in names:
            r = report_model(name, args.config, args.threads, args.iterations, Path(tmp), args.eval_count)
            reports.append(r)
            print(f"{name}: chosen {r['chosen']['backend']} {r['chosen']['precision']}, "
                  f"{r['chosen_over_best_direct']:.3f}× the best direct ({r['best_direct']})",
                  file=sys.stderr, flush=True)  # fmt: skip
    table = markdown(reports)
    print(table)
    if args.json:
        write_json(args.json, {"reports": reports})
    if args.markdown:
        write_text(args.markdown, table + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
