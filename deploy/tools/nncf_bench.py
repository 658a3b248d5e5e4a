"""Benchmark (not a test): OpenVINO INT8 three ways on the same FP32 ONNX and the same calibration images.

    python -m attnx.deploy.tools.nncf_bench --models se_resnet,cbam_resnet,vit_tiny \\
        --configs resnet50,resnet50,vit_s16 --size 224 --threads 2 --runs 30 --json bench/openvino_int8_nncf.json

Per model (export at opset 17, dynamic batch; digits: ``--count`` calibration images from the train split,
``--eval-count`` held-out images from the test split):

* ``attnx-ort-qdq``: attnx's former OpenVINO INT8 route, the ORT-layout Q/DQ ONNX of
  ``apply_precision(..., "int8", style="ort")`` compiled by OpenVINO;
* ``nncf-direct``: ``nncf.quantize`` run directly on the FP32 ONNX read by OpenVINO, with NNCF's defaults
  (``model_type=TRANSFORMER`` where the model has attention), the peer an OpenVINO user would pick;
* ``attnx``: what ``attnx build --backend openvino --precision int8`` builds
  (:func:`attnx.calibration.precision.apply_openvino_int8`): NNCF with the plan's float nodes as ignored scope,
  sigmoid gates quantized, NNCF's overflow fix by ``--cpu-target`` (native: on where this CPU lacks VNNI);
* with ``--gates-float``, ``attnx-gates-float``: the same with the plan's sigmoid gates kept float.

Each is compared with OpenVINO FP32 on the held-out images (:func:`attnx.calibration.evaluate.agreement`) and all
the variants are timed in one interleaved run
(:func:`attnx.deploy.bench.measure.measure`: OpenVINO CPU, batch 1, ``--threads``,
latency hint, one seeded input). Ratios are to ``nncf-direct``: p50 over p50, and the median of the
per-round paired ratios (:func:`attnx.deploy.bench.measure.paired_ratios`).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

VARIANTS = ("fp32", "attnx-ort-qdq", "nncf-direct", "attnx")


def nncf_direct(path: Path, arrays: dict[str, np.ndarray], transformer: bool) -> tuple[Any, float]:
    """NNCF as a user runs it on the FP32 ONNX: defaults, every calibration image (batch 1 each)."""
    import logging

    import nncf  # type: ignore[import-untyped]
    import openvino

    model = openvino.Core().read_model(str(path))
    count = next(iter(arrays.values())).shape[0]
    samples = [{k: v[i : i + 1] for k, v in arrays.items()} for i in range(count)]
    logging.getLogger("nncf").setLevel(logging.WARNING)
    t = time.perf_counter()
    quantized = nncf.quantize(model, nncf.Dataset(samples), subset_size=count,
                              model_type=nncf.ModelType.TRANSFORMER if transformer else None)  # fmt: skip
    return quantized, time.perf_counter() - t


def bench_model(name: str, config: str | None, size: int | None, threads: int, runs: int,
                calibration: dict[str, Any], folder: Path, gates_float: bool = False) -> dict[str, Any]:  # fmt: skip
    """One benchmark row for zoo model ``name``: export to ``folder``, build the INT8 variants (``VARIANTS``,
    plus ``attnx-gates-float`` with ``gates_float``), compare each with OpenVINO FP32 on the held-out images
    (min cosine, top-1 agreement) and, when ``runs`` > 0, time them (p50 ms, ratios to ``nncf-direct``).

    Returns the row as a JSON-ready dict. Needs openvino and nncf (ImportError without them).
    """
    import onnx
    import openvino

    from attnx.calibration.config import CalibrationConfig
    from attnx.calibration.data import load_split
    from attnx.calibration.evaluate import agreement
    from attnx.calibration.graph import graph_inputs, name_nodes
    from attnx.calibration.nncf_quant import float_plan
    from attnx.calibration.precision import apply_openvino_int8, apply_precision
    from attnx.core.onnx_files import load_onnx
    from attnx.deploy.bench.measure import BenchOptions, BenchTarget, measure, paired_ratios, summarize
    from attnx.deploy.tools.int8_bench import export
    from attnx.deploy.tools.selection_report import direct_runner, first_output

    path = export(name, size, folder, None, config)
    model = load_onnx(path)
    name_nodes(model)
    cfg = CalibrationConfig.from_dict(calibration)
    calib, held = load_split(graph_inputs(model), cfg)
    ignored, transformer = float_plan(model, calib.input_shapes(), cfg)
    shape = list(calib.input_shapes().values())[0]
    row: dict[str, Any] = {"model": name, "config": config or "tiny", "input_shape": list(shape),
                           "transformer": transformer, "ignored_nodes": len(ignored), "calibration": calib.description,
                           "held_out": held.description, "variants": {}}  # fmt: skip
    paths = {"fp32": path}

    t = time.perf_counter()
    result = apply_precision(path, "int8", "ort", calibration, folder / f"{name}-int8-ort")
    paths["attnx-ort-qdq"] = folder / f"{name}-int8-ort.onnx"
    onnx.save(result.model, str(paths["attnx-ort-qdq"]))
    row["variants"]["attnx-ort-qdq"] = {"seconds": round(time.perf_counter() - t, 2),
                                        "float_nodes": result.plan["counts"]["float"],
                                        "quantized": result.plan["counts"].get("quantized")}  # fmt: skip

    direct, seconds = nncf_direct(path, calib.arrays, transformer)
    paths["nncf-direct"] = folder / f"{name}-nncf-direct.xml"
    openvino.save_model(direct, str(paths["nncf-direct"]), compress_to_fp16=False)
    row["variants"]["nncf-direct"] = {"seconds": round(seconds, 2),
                                      "model_type": "transformer" if transformer else "default",
                                      "overflow_fix": "default (first_layer_only)",
                                      "fake_quantize": _count_fq(direct)}  # fmt: skip

    variants = {"attnx": calibration}
    if gates_float:  # the plan with its sigmoid gates kept float (calibration option quantize_gates=false)
        variants["attnx-gates-float"] = {**calibration, "quantize_gates": False}
    for key, options in variants.items():
        built = apply_openvino_int8(path, options)
        paths[key] = folder / f"{name}-{key}.xml"
        openvino.save_model(built.model, str(paths[key]), compress_to_fp16=False)
        row["variants"][key] = {**built.plan["nncf"], "recipe": built.plan["cpu"]["recipe"]}
    keys = list(paths)

    runners = {k: direct_runner("openvino", "fp32" if k == "fp32" else "int8", p, threads) for k, p in paths.items()}
    input_name = graph_inputs(model)[0].name
    samples = held.arrays[input_name]

    def outputs(run: Any) -> dict[str, np.ndarray]:
        return {"output": np.concatenate([first_output(run, {input_name: samples[i : i + 1]})
                                          for i in range(len(samples))])}

    reference = outputs(runners["fp32"])
    for key in keys[1:]:
        a = agreement(reference, outputs(runners[key]))
        row["variants"][key]["cosine"] = round(a.min_cosine, 6)
        row["variants"][key]["top1_agreement"] = round(1.0 - a.top1_drop_all / 100.0, 4)

    if runs:
        targets = [BenchTarget(k, "openvino", "fp32" if k == "fp32" else "int8", infer=runners[k].infer)
                   for k in keys]
        x = np.random.default_rng(0).standard_normal(tuple(row["input_shape"])).astype(np.float32)
        block = 1
        measured = {m.target.name: m for m in measure(targets, {input_name: x}, 1,
                                                      BenchOptions(iterations=runs, threads=threads, warmup=5,
                                                                   block=block))}  # fmt: skip
        ref = measured["nncf-direct"].samples_ms
        p50 = {k: summarize(m.samples_ms).p50_ms for k, m in measured.items()}
        row["latency_p50_ms"] = {k: round(v, 3) for k, v in p50.items()}
        for key in keys:
            r = row["variants"].setdefault(key, {})
            r["p50_ms"] = round(p50[key], 3)
            r["ratio_to_nncf_direct"] = round(p50[key] / p50["nncf-direct"], 3)
            r["paired_ratio_to_nncf_direct"] = round(
                float(np.median(paired_ratios(measured[key].samples_ms, ref, block))), 3
            )
    direct_cos = row["variants"]["nncf-direct"]["cosine"]
    for key in keys[1:]:
        row["variants"][key]["cosine_minus_nncf_direct"] = round(row["variants"][key]["cosine"] - direct_cos, 6)
    return row


def _count_fq(model: Any) -> int:
    return sum(op.get_type_name() == "FakeQuantize" for op in model.get_ordered_ops())


def markdown(rows: list[dict[str, Any]]) -> str:
    """The rows of :func:`bench_model` as a Markdown table, one line per model and variant (FP32, the reference,
    first): held-out cosine, top-1 agreement, p50 ms and the ratios to ``nncf-direct``.
    """
    lines = [
        "| model | variant | held-out cosine vs OpenVINO fp32 | top-1 agreement | p50 ms | × nncf-direct (p50) | "
        "× nncf-direct (paired) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        for key in ["fp32", *[k for k in r["variants"] if k != "fp32"]]:
            v = r["variants"].get(key, {})
            cos = f"{v['cosine']:.5f}" if "cosine" in v else "(reference)"
            top1 = f"{v['top1_agreement']:.3f}" if "top1_agreement" in v else ""
            ratios = f"{v.get('ratio_to_nncf_direct', '–')} | {v.get('paired_ratio_to_nncf_direct', '–')}"
            lines.append(
                f"| {r['model']} ({r['config']}) | {key} | {cos} | {top1} | {v.get('p50_ms', '–')} | {ratios} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from attnx.core.cpu import CPU_TARGETS, detect
    from attnx.core.files import write_json
    from attnx.deploy.bench.measure import machine_info, steady_malloc
    from attnx.deploy.bench.roofline import cpu_peak

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="se_resnet,cbam_resnet,vit_tiny", help="comma-separated zoo names")
    parser.add_argument("--configs", default="", help="comma-separated zoo configurations, one per model "
                        "(e.g. resnet50,resnet50,vit_s16; empty: each model's tiny configuration)")  # fmt: skip
    parser.add_argument("--size", type=int, default=None, help="export at size×size (default: the configuration's)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=30, help="timed runs per variant (0: skip timing)")
    parser.add_argument("--count", type=int, default=64, help="calibration images (digits train split)")
    parser.add_argument("--eval-count", type=int, default=32, help="held-out images (digits test split)")
    parser.add_argument("--source", default="digits")
    parser.add_argument("--cpu-target", choices=CPU_TARGETS, default="native",
                        help="attnx's CPU target (NNCF overflow fix where it lacks VNNI); see `attnx cpu`")  # fmt: skip
    parser.add_argument("--gates-float", action="store_true",
                        help="also attnx-gates-float: the plan with its sigmoid gates kept float")  # fmt: skip
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    names = [n for n in args.models.split(",") if n]
    configs = [c or None for c in args.configs.split(",")] if args.configs else [None] * len(names)
    if len(configs) != len(names):
        parser.error(f"--configs names {len(configs)} configuration(s) for {len(names)} model(s)")
    calibration = {"count": args.count, "eval_count": args.eval_count, "source": args.source, "threads": args.threads,
                   "cache": False, "cpu_target": args.cpu_target}  # fmt: skip
    steady_malloc()
    rows = []
    with tempfile.TemporaryDirectory(prefix="attnx-nncf-bench-") as tmp:
        for name, config in zip(names, configs):
            row = bench_model(name, config, args.size, args.threads, args.runs, calibration, Path(tmp),
                              args.gates_float)  # fmt: skip
            rows.append(row)
            v = {k: x for k, x in row["variants"].items() if "cosine" in x}
            p50 = row.get("latency_p50_ms", {})
            print(f"{name} ({row['config']}): cosine " + ", ".join(f"{k} {x['cosine']:.5f}" for k, x in v.items())
                  + (", p50 ms " + ", ".join(f"{k} {t:.2f}" for k, t in p50.items()) if p50 else ""),
                  file=sys.stderr, flush=True)  # fmt: skip
    print(markdown(rows))
    if args.json:
        import nncf  # type: ignore[import-untyped]

        write_json(args.json, {
            "command": "python -m attnx.deploy.tools.nncf_bench "
            + " ".join(argv if argv is not None else sys.argv[1:]),
            "size": args.size, "threads": args.threads, "runs": args.runs, "calibration": calibration,
            "cpu_features": detect().to_dict(), "nncf": nncf.__version__,
            "machine": machine_info(args.threads, cpu_peak()), "rows": rows,
        })  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
