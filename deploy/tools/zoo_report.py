"""Export every zoo model and check ONNX Runtime parity; print a Markdown table (used for the README).

Parameters that start at zero (DANet's gates, the STN's last layer) get seeded non-zero values first,
so that parity covers the branches they gate.

    python -m attnx.deploy.tools.zoo_report [--json out.json] [--opset 17]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    from attnx.core.files import write_json
    from attnx.deploy.apis.pipeline import export_model, prepare_model, run_parity
    from attnx.deploy.parity.compare import POLICIES
    from attnx.exporters.export import ExportOptions
    from attnx.exporters.flops import count_macs, count_params
    from attnx.exporters.init import wake_zero_parameters
    from attnx.exporters.registry import zoo

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="also write the rows as JSON")
    parser.add_argument("--opset", type=int, default=17)
    args = parser.parse_args(argv)

    rows = []
    with tempfile.TemporaryDirectory(prefix="attnx-zoo-") as tmp:
        for name, entry in zoo().items():
            prepared = prepare_model(name)
            woken = wake_zero_parameters(prepared.model)
            shape = entry.input_shape_for(None)
            t0 = time.perf_counter()
            options = ExportOptions(input_shape=shape, dynamic_hw=entry.dynamic_hw, opset=args.opset)
            result, report = export_model(prepared, Path(tmp) / f"{name}.onnx", options, target="trt10")
            export_s = time.perf_counter() - t0
            parity = run_parity(prepared, result.path, POLICIES["fp32"], batches=[1, 3])
            outs = [o for c in parity.cases for o in c.outputs]
            rows.append({
                "model": name, "task": entry.task, "input": "x".join(map(str, entry.sample_shape)),
                "dynamic_hw": entry.dynamic_hw, "params_m": count_params(prepared.model) / 1e6,
                "gmacs": count_macs(prepared.model, shape) / 1e9, "onnx_nodes": result.node_count,
                "op_types": len(report.ops), "export_s": export_s,
                "max_abs": max(o.max_abs for o in outs), "min_cosine": min(o.cosine for o in outs),
                "passed": parity.passed, "woken_parameters": woken,
            })  # fmt: skip
    print("| model | task | input (C×H×W) | dynamic H/W | params (M) | GMACs | ONNX nodes | export (s) "
          "| max abs err (batch 1, 3) | min cosine | fp32 parity |")  # fmt: skip
    print("|---|---|---|---|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        print(
            f"| {r['model']} | {r['task']} | {r['input']} | {'yes' if r['dynamic_hw'] else 'no'} "
            f"| {r['params_m']:.3f} | {r['gmacs']:.4f} | {r['onnx_nodes']} | {r['export_s']:.2f} "
            f"| {r['max_abs']:.2e} | {r['min_cosine']:.8f} | {'pass' if r['passed'] else 'FAIL'} |"
        )
    if args.json:
        write_json(args.json, {"opset": args.opset, "rows": rows})
    return 0 if all(r["passed"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
