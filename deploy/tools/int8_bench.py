"""Benchmark (not a test): accuracy of FP16 / INT8 against FP32, and ORT CPU latency FP32 vs INT8, side by side.

    python -m attnx.deploy.tools.int8_bench                                  # every zoo classifier, its tiny size
    python -m attnx.deploy.tools.int8_bench --models se_resnet,cbam_resnet --size 224 --runs 60 --json out.json

Per model: export (opset 17, dynamic batch), then ``apply_precision`` for fp16, int8 (ORT layout) and
int8 (TensorRT layout) with the default calibration (scikit-learn digits), and agreement with FP32 on
held-out digits and on seeded standard-normal inputs. With ``--runs``, FP32 and the ORT-layout INT8 model
are timed in one process, 1 intra-op thread, batch 1, interleaved run by run, median of the runs: other
processes on the machine slow both alike, which keeps the ratio meaningful.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

CLASSIFIERS = (
    "se_resnet",
    "cbam_resnet",
    "bam_resnet",
    "eca_resnet",
    "ca_resnet",
    "psa_resnet",
    "scconv_resnet",
    "stn_classifier",
    "vit_tiny",
    "mobilevitv2",
    "rest",
)
RESNETS = CLASSIFIERS[:7]
MODES = (("fp16", "ort"), ("int8", "ort"), ("int8", "trt"))


def export(name: str, size: int | None, folder: Path, weights: Path | None = None, config: str | None = None) -> Path:
    """Export zoo model ``name`` (``config``; ``weights`` loaded when given, else seeded) to ``folder``/NAME.onnx.

    Input (1, C, size, size), or the zoo's sample shape when ``size`` is None, with a dynamic batch axis.
    Returns the ONNX file's path; raises UserError as :func:`attnx.deploy.apis.pipeline.prepare_model` does.
    """
    from attnx.deploy.apis.pipeline import export_model, full_input_shape, prepare_model
    from attnx.exporters.export import ExportOptions

    prepared = prepare_model(name, config=config, weights=weights)
    shape = full_input_shape(prepared, None) if size is None else (1, prepared.sample_shape[0], size, size)  # type: ignore[index]
    result, _ = export_model(prepared, folder / f"{name}.onnx", ExportOptions(input_shape=shape, dynamic_batch=True))
    return result.path


def bench(
    names: list[str],
    size: int | None,
    runs: int,
    calibration: dict[str, Any],
    gates: bool = False,
    weights: Path | None = None,
    config: str | None = None,
    cpu_targets: tuple[str, ...] = (),
) -> list[dict[str, Any]]:
    """``cpu_targets``: also build the ORT-layout INT8 model for each of these CPU targets (``--cpu-target``)
    and time it in the same interleaved run as ``int8-ort-<target>`` (its kernels as this CPU runs them)."""
    import onnx

    from attnx.calibration.kernel_timing import interleaved_medians
    from attnx.calibration.precision import apply_precision

    rows = []
    with tempfile.TemporaryDirectory(prefix="attnx-bench-") as tmp:
        folder = Path(tmp)
        for name in names:
            trained = weights / f"{name}.safetensors" if weights is not None else None
            trained = trained if trained is not None and trained.is_file() else None
            path = export(name, size, folder, trained, config)
            row: dict[str, Any] = {
                "model": name,
                "config": config or "tiny",
                "shape": None,
                "weights": str(trained) if trained else "seeded",
            }
            baked = {}
            for precision, style in MODES:
                t = time.perf_counter()
                result = apply_precision(path, precision, style, calibration, folder / f"{name}-{precision}-{style}")
                check = result.plan["check"]
                key = f"{precision}-{style}"
                row[key] = {
                    "seconds": round(time.perf_counter() - t, 2),
                    "held_out": _brief(check.get("held_out")),
                    "seeded": _brief(check.get("seeded")),
                    "float_nodes": result.plan["counts"]["float"],
                    "quantized": result.plan["counts"].get("quantized"),
                }
                baked[key] = result.model
                if style == "ort" and precision == "int8":
                    row[key]["recipe"] = result.plan["cpu"]["recipe"]
                    row[key]["kernels"] = result.plan["cpu"]["check_kernels"]
            info = result.calibration_info
            row["shape"] = list(info["sample_shapes"].values())[0] if info else None
            if trained is not None:
                row["accuracy"] = accuracy(onnx.load(str(path)), baked)
            timed = {"fp32": onnx.load(str(path)), "int8-ort": baked["int8-ort"]}
            if gates:  # the same with sigmoid gates quantized (calibration option quantize_gates)
                opts = {**calibration, "quantize_gates": True}
                result = apply_precision(path, "int8", "ort", opts, folder / f"{name}-int8-ort-gates")
                row["int8-ort-gates"] = {
                    "held_out": _brief(result.plan["check"].get("held_out")),
                    "seeded": _brief(result.plan["check"].get("seeded")),
                }
                timed["int8-ort-gates"] = result.model
            for target in cpu_targets:  # the same model for another CPU target (other weight bits / kernels)
                opts = {**calibration, "cpu_target": target}
                result = apply_precision(path, "int8", "ort", opts, folder / f"{name}-int8-ort-{target}")
                row[f"int8-ort-{target}"] = {
                    "held_out": _brief(result.plan["check"].get("held_out")),
                    "seeded": _brief(result.plan["check"].get("seeded")),
                    "recipe": result.plan["cpu"]["recipe"],
                    "kernels": result.plan["cpu"]["check_kernels"],
                }
                timed[f"int8-ort-{target}"] = result.model
            if runs:
                shape = (1, *row["shape"])
                ms = interleaved_medians(timed, shape, runs)
                row["latency_ms"] = {k: round(v, 3) for k, v in ms.items()}
                row["speedup"] = round(ms["fp32"] / ms["int8-ort"], 2)
                if gates:
                    row["speedup_gates"] = round(ms["fp32"] / ms["int8-ort-gates"], 2)
            rows.append(row)
            print(_line(row), file=sys.stderr, flush=True)
    return rows


def accuracy(fp32: Any, baked: dict[str, Any]) -> dict[str, float]:
    """Top-1 accuracy (%) on the whole digits test split (450 images, labels) for FP32 and each variant."""
    from attnx.calibration.config import CalibrationConfig
    from attnx.calibration.data import load_split
    from attnx.calibration.evaluate import run
    from attnx.calibration.graph import graph_inputs

    _, test = load_split(graph_inputs(fp32), CalibrationConfig.from_dict({"count": 1, "eval_count": 10_000}))
    assert test.labels is not None
    out = {}
    for label, model in {"fp32": fp32, **baked}.items():
        logits = next(iter(run(model, test, batch_size=50).values()))
        out[label] = round(100.0 * float(np.mean(np.argmax(logits, axis=1) == test.labels)), 2)
    out["samples"] = len(test.labels)
    return out


def _brief(check: dict[str, Any] | None) -> dict[str, Any] | None:
    if not check:
        return None
    return {
        "cosine": check["min_cosine"],
        "top1_drop": check["top1_drop_points"],
        "top1_drop_all": check["top1_drop_points_all"],
        "samples": check["samples"],
    }


def _line(row: dict[str, Any]) -> str:
    parts = [f"{row['model']:<15}"]
    for precision, style in MODES:
        r = row[f"{precision}-{style}"]
        h, s = r["held_out"] or {}, r["seeded"] or {}
        parts.append(
            f"{precision}-{style}: cos {h.get('cosine', float('nan')):.5f}/{s.get('cosine', float('nan')):.5f}"
            f" top1Δ {h.get('top1_drop_all', 0):.1f}"
        )
    if "accuracy" in row:
        acc = row["accuracy"]
        parts.append("top-1 " + " / ".join(f"{k} {v:.2f}" for k, v in acc.items() if k != "samples"))
    if "speedup" in row:
        lat = row["latency_ms"]
        parts.append(f"fp32 {lat['fp32']:.2f} ms, int8 {lat['int8-ort']:.2f} ms, {row['speedup']:.2f}x")
        if "speedup_gates" in row:
            parts.append(f"gates int8 {lat['int8-ort-gates']:.2f} ms, {row['speedup_gates']:.2f}x")
    return " | ".join(parts)


def markdown(rows: list[dict[str, Any]]) -> str:
    """The rows of :func:`bench` as a Markdown table: per variant the cosine to FP32 (held-out / seeded), the
    top-1 disagreement in points, and with timing the FP32 and INT8 latency (ms) and speed-ups.
    """
    head = (
        "| model | C×H×W | fp16 cos (held-out / seeded) | int8-ort cos | int8-trt cos | top-1 disagreement "
        "fp16 / int8-ort / int8-trt (all held-out samples, points) | fp32 ms | int8-ort ms | speed-up | "
        "speed-up, gates int8 |"
    )
    lines = [head, "|" + "---|" * 10]
    for r in rows:
        cos = []
        for key in ("fp16-ort", "int8-ort", "int8-trt"):
            h, s = r[key]["held_out"] or {}, r[key]["seeded"] or {}
            cos.append(f"{h.get('cosine', float('nan')):.5f} / {s.get('cosine', float('nan')):.5f}")
        drops = " / ".join(
            f"{(r[k]['held_out'] or {}).get('top1_drop_all', 0):.1f}" for k in ("fp16-ort", "int8-ort", "int8-trt")
        )
        lat = r.get("latency_ms", {})
        lines.append(
            f"| {r['model']} | {'×'.join(map(str, r['shape'] or []))} | {' | '.join(cos)} | {drops} | "
            f"{lat.get('fp32', '–')} | {lat.get('int8-ort', '–')} | {r.get('speedup', '–')} | "
            f"{r.get('speedup_gates', '–')} |"
        )
    return "\n".join(lines)


def targets_markdown(rows: list[dict[str, Any]], targets: tuple[str, ...]) -> str:
    """INT8 recipes side by side: weight bits, the kernels this CPU runs them on, cosine and latency."""
    from attnx.core.cpu import detect

    lines = [f"CPU: {detect().describe()}", "",
             "| model | recipe | weight bits | kernels here | cosine held-out / seeded | ms | speed-up vs fp32 |",
             "|---|---|---:|---|---:|---:|---:|"]  # fmt: skip
    for r in rows:
        lat = r.get("latency_ms", {})
        for key in ("int8-ort", *(f"int8-ort-{t}" for t in targets)):
            e = r[key]
            h, s = e["held_out"] or {}, e["seeded"] or {}
            ms = lat.get(key)
            speed = f"{lat['fp32'] / ms:.2f}×" if ms and lat.get("fp32") else "–"
            lines.append(f"| {r['model']} | {e['recipe']['target']} | {e['recipe']['weight_bits']} | {e['kernels']} | "
                         f"{h.get('cosine', float('nan')):.5f} / {s.get('cosine', float('nan')):.5f} | "
                         f"{ms if ms else '–'} | {speed} |")  # fmt: skip
    return "\n".join(lines)


def accuracy_markdown(rows: list[dict[str, Any]]) -> str:
    """Top-1 accuracy (%) of FP32 and each variant, and the change from FP32 (points), as a Markdown table;
    rows without an ``accuracy`` entry (no trained weights) are left out.
    """
    lines = [
        "| model | fp32 top-1 | fp16 | int8 (ORT layout) | int8 (TensorRT layout) | Δ fp16 | Δ int8-ort | Δ int8-trt |",
        "|" + "---|" * 8,
    ]
    for r in rows:
        a = r.get("accuracy")
        if not a:
            continue
        d = {k: a[k] - a["fp32"] for k in ("fp16-ort", "int8-ort", "int8-trt")}
        lines.append(
            f"| {r['model']} | {a['fp32']:.2f} | {a['fp16-ort']:.2f} | {a['int8-ort']:.2f} | "
            f"{a['int8-trt']:.2f} | {d['fp16-ort']:+.2f} | {d['int8-ort']:+.2f} | {d['int8-trt']:+.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from attnx.calibration.config import parse_cli_options
    from attnx.core.files import write_json

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default=",".join(CLASSIFIERS), help="comma-separated zoo names (or 'resnets')")
    parser.add_argument("--config", default=None, help="zoo configuration, e.g. resnet50 (default: tiny)")
    parser.add_argument("--size", type=int, default=None, help="export at size×size (default: the zoo's tiny size)")
    parser.add_argument("--runs", type=int, default=0, help="timed runs per model for latency (0: skip timing)")
    parser.add_argument("--count", type=int, default=64, help="calibration samples")
    parser.add_argument("--eval-count", type=int, default=64, help="held-out samples for the accuracy check")
    parser.add_argument("--source", default="digits")
    parser.add_argument("--method", default="percentile")
    parser.add_argument("--quantize-gates", action="store_true", help="also build and time int8-ort with gates int8")
    parser.add_argument("--weights", type=Path, default=None, help="folder of NAME.safetensors trained on digits")
    parser.add_argument("--calib", action="append", default=[], help="calibration option KEY=VALUE (repeatable)")
    parser.add_argument("--cpu-targets", default="", help="also build int8-ort for these CPU targets, e.g. vnni "
                        "(timed side by side; see `attnx cpu`)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    names = list(RESNETS) if args.models == "resnets" else args.models.split(",")
    calibration = {
        "count": args.count,
        "eval_count": args.eval_count,
        "source": args.source,
        "method": args.method,
        "threads": 1,
        "cache": False,
        **parse_cli_options(args.calib),
    }
    targets = tuple(t for t in args.cpu_targets.split(",") if t)
    rows = bench(names, args.size, args.runs, calibration, args.quantize_gates, args.weights, args.config, targets)
    print(markdown(rows))
    if targets:
        print()
        print(targets_markdown(rows, targets))
    if any("accuracy" in r for r in rows):
        print()
        print(accuracy_markdown(rows))
    if args.json:
        write_json(args.json, {"size": args.size, "config": args.config, "calibration": calibration, "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
