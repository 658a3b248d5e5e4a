"""Top-1 of fp32 / fp16 / int8 ORT bundles of every zoo classifier on real images (the README table).

    python -m attnx.deploy.tools.accuracy_report [--models a,b] [--precisions fp32,fp16,int8] [--json out.json]

Each classifier is built from its digits-trained weights (weights/digits/, `make train-digits`), INT8
calibrated on the digits *train* split, and every bundle is scored on the held-out *test* split.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

WEIGHTS = Path(__file__).resolve().parents[2] / "weights" / "digits"


def main(argv: list[str] | None = None) -> int:
    from attnx.core.files import write_json
    from attnx.deploy.accuracy import evaluate_bundle
    from attnx.deploy.apis.build import BuildOptions, build_bundle
    from attnx.deploy.tools.train_digits import classifiers

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="")
    parser.add_argument("--precisions", default="fp32,fp16,int8")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--weights", type=Path, default=WEIGHTS)
    args = parser.parse_args(argv)
    names = [n for n in args.models.split(",") if n] or classifiers()
    precisions = [p for p in args.precisions.split(",") if p]
    rows = []
    with tempfile.TemporaryDirectory(prefix="attnx-acc-") as tmp:
        for name in names:
            row: dict = {"model": name}
            for precision in precisions:
                t0 = time.perf_counter()
                options = BuildOptions(backend="ort", precision=precision, calibration={"source": "digits"})
                result = build_bundle(name, Path(tmp) / f"{name}-{precision}", options,
                                      weights=args.weights / f"{name}.safetensors")  # fmt: skip
                acc = evaluate_bundle(result.bundle)
                outs = [o for c in result.parity.cases for o in c.outputs]
                row[precision] = {"top1": acc.top1, "correct": acc.correct, "samples": acc.samples,
                                  "seeded_min_cosine": min(o.cosine for o in outs),
                                  "build_parity_passed": result.parity.passed,
                                  "build_seconds": round(time.perf_counter() - t0, 1)}  # fmt: skip
            rows.append(row)
            print(name, {p: round(row[p]["top1"], 2) for p in precisions}, flush=True)
    print()
    reduced = [p for p in precisions if p != "fp32"]
    print("| model | " + " | ".join(f"{p} top-1 %" for p in precisions) + " | Δ fp16 | Δ int8 | "
          + " | ".join(f"{p} cosine (seeded, min)" for p in reduced) + " |")  # fmt: skip
    print("|---|" + "---:|" * (len(precisions) + 2 + len(reduced)))
    for row in rows:
        cells = [f"{row[p]['top1']:.2f}" for p in precisions]
        d16 = f"{row['fp16']['top1'] - row['fp32']['top1']:+.2f}" if "fp16" in row and "fp32" in row else "–"
        d8 = f"{row['int8']['top1'] - row['fp32']['top1']:+.2f}" if "int8" in row and "fp32" in row else "–"
        cos = [f"{row[p]['seeded_min_cosine']:.5f}" for p in reduced]
        print(f"| {row['model']} | " + " | ".join(cells) + f" | {d16} | {d8} | " + " | ".join(cos) + " |")
    if args.json:
        write_json(args.json, {"dataset": "digits test split", "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
