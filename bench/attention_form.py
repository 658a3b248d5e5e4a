"""Fused (one ONNX ``Attention`` node) vs decomposed (MatMul/Softmax/MatMul) attention: CPU latency, one run.

    python bench/attention_form.py --model vit_tiny --config vit_s16 --json bench/attention_form.json

Both forms are exported at opset 23 by attnx (``--attention fused`` and ``--attention decomposed``, each checked
for fp32 parity with PyTorch by the export), then timed at batch 1 on ONNX Runtime's and OpenVINO's CPU
engines. Runs interleave (fused, decomposed, fused, ...) within each engine, after a warm-up of each, so that
drift of the machine's load hits both forms alike. The figures are medians of one run on one machine: the CPU
model, thread count and load are recorded beside them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FORMS = ("fused", "decomposed")


def export_both(model: str, config: str | None, work: Path) -> tuple[dict[str, Path], dict[str, Any], tuple[int, ...]]:
    from attnx.deploy.apis.pipeline import export_model, full_input_shape, prepare_model
    from attnx.exporters.attention_form import count_fused
    from attnx.exporters.export import ExportOptions

    prepared = prepare_model(model, config=config)
    shape = tuple(full_input_shape(prepared, None, batch=1))
    paths, info = {}, {}
    for form in FORMS:
        t0 = time.perf_counter()
        options = ExportOptions(input_shape=shape, dynamic_batch=False, opset=23, attention=form)
        result, _ = export_model(prepared, work / f"{form}.onnx", options)
        import onnx

        proto = onnx.load(str(result.path))
        paths[form] = result.path
        info[form] = {"export_s": round(time.perf_counter() - t0, 1), "exporter": result.exporter,
                      "nodes": result.node_count, "attention_nodes": count_fused(proto)["Attention"],
                      "softmax_nodes": sum(n.op_type == "Softmax" for n in proto.graph.node),
                      "parity_checked_at": [list(s) for s in result.checked_shapes]}  # fmt: skip
    return paths, info, shape


def sessions(paths: dict[str, Path], threads: int) -> dict[str, dict[str, Any]]:
    import onnxruntime as ort
    import openvino as ov

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    core = ov.Core()
    out: dict[str, dict[str, Any]] = {"ort": {}, "openvino": {}}
    for form, path in paths.items():
        s = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        out["ort"][form] = lambda x, s=s: s.run(None, {"input": x})
        c = core.compile_model(str(path), "CPU", {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"})
        req = c.create_infer_request()
        out["openvino"][form] = lambda x, r=req: r.infer({"input": x})
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="vit_tiny")
    p.add_argument("--config", default="vit_s16")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--iterations", type=int, default=40, help="timed runs per form and engine (interleaved)")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)

    import numpy as np

    with tempfile.TemporaryDirectory(prefix="attnx-attn-bench-") as tmp:
        paths, exports, shape = export_both(args.model, args.config, Path(tmp))
        x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
        runners = sessions(paths, args.threads)
        results: dict[str, Any] = {}
        for engine, forms in runners.items():
            outs = {f: np.array(run(x)[0] if engine == "ort" else list(run(x).values())[0], copy=True)
                    for f, run in forms.items()}  # fmt: skip
            for run in forms.values():
                for _ in range(args.warmup):
                    run(x)
            times: dict[str, list[float]] = {f: [] for f in forms}
            for _ in range(args.iterations):
                for f, run in forms.items():  # interleaved
                    t0 = time.perf_counter()
                    run(x)
                    times[f].append((time.perf_counter() - t0) * 1e3)
            med = {f: statistics.median(t) for f, t in times.items()}
            results[engine] = {
                **{f"{f}_median_ms": round(m, 2) for f, m in med.items()},
                **{f"{f}_p90_ms": round(float(np.percentile(times[f], 90)), 2) for f in forms},
                "fused_over_decomposed": round(med["fused"] / med["decomposed"], 3),
                "max_abs_fused_vs_decomposed": float(np.abs(outs["fused"] - outs["decomposed"]).max()),
            }
    import onnxruntime
    import openvino

    record = {
        "model": args.model, "config": args.config, "input": list(shape), "opset": 23, "threads": args.threads,
        "iterations": args.iterations, "warmup": args.warmup, "interleaved": True, "exports": exports,
        "results": results,
        "machine": {"cpu": _cpu_model(), "cpus": os.cpu_count(), "load_1m": round(os.getloadavg()[0], 2),
                    "python": platform.python_version(), "onnxruntime": onnxruntime.__version__,
                    "openvino": openvino.__version__.split("-")[0]},
        "command": "python bench/attention_form.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }  # fmt: skip
    text = json.dumps(record, indent=2) + "\n"
    if args.json:
        args.json.write_text(text)
    print(text)
    return 0


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    raise SystemExit(main())
