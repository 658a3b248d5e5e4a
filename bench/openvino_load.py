"""Load time of OpenVINO bundles, with and without the compiled model `attnx build` saves in them.

    python bench/openvino_load.py /tmp/ov/se50 /tmp/ov/se_tiny            # 7 trials each, 1 thread
    python bench/openvino_load.py BUNDLE --trials 11 --json load.json

"Load" is what a caller waits for: ``load_manifest`` (SHA-256 of every bundle file), the runtime (import of
``compiled.blob``, or conversion and compilation of the bundle's ONNX), and the first inference at the
bundle's opt shape. Every trial runs in a fresh Python process (no OpenVINO state carried over) that imports
``openvino`` and ``onnx`` before the clock starts (about 0.1 s each, once per process whichever the variant),
after one untimed warm-up per variant so that both read the files from the page cache; the variants alternate.
The "onnx" variant is the same bundle without its compiled model (hard links to its files and a manifest
without the ``compiled`` entry), i.e. what a machine whose OpenVINO or CPU differs from the build's does.
Figures depend on the machine and on what else runs on it: the CPU count and load are printed beside them.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PHASES = ("manifest_s", "runtime_s", "first_inference_s", "total_s")


def child(bundle: Path, threads: int) -> dict[str, Any]:
    """One load, timed by phase (run in a fresh process)."""
    import numpy as np
    import onnx  # noqa: F401  (imported by the ONNX path only: out of the timing, as openvino is)
    import openvino  # noqa: F401

    from attnx.deploy.backends.openvino.runner import OpenVinoRunner  # noqa: F401
    from attnx.deploy.bundle.engine import Engine
    from attnx.deploy.bundle.manifest import load_manifest
    from attnx.deploy.bundle.runtime import open_runner

    t0 = time.perf_counter()
    manifest = load_manifest(bundle, verify=True)
    t1 = time.perf_counter()
    engine = Engine(bundle, manifest, open_runner(bundle, manifest, pool_size=1, threads=threads))
    t2 = time.perf_counter()
    spec = manifest.inputs[0]
    shape = spec.profile["opt"] if spec.profile else [d if isinstance(d, int) else 1 for d in spec.shape]
    engine({spec.name: np.zeros(shape, dtype=spec.dtype)})
    t3 = time.perf_counter()
    compiled_from = engine.runner.compiled_from  # type: ignore[attr-defined]  # OpenVINO
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    engine.close()
    return {"manifest_s": t1 - t0, "runtime_s": t2 - t1, "first_inference_s": t3 - t2, "total_s": t3 - t0,
            "max_rss_mib": rss, "compiled_from": compiled_from}  # fmt: skip


def without_compiled(bundle: Path, dest: Path) -> Path:
    """``bundle`` without its compiled model: hard links to its other files and an edited manifest."""
    manifest = json.loads((bundle / "manifest.json").read_text())
    name = manifest["files"].pop("compiled", None)
    if name is None:
        raise SystemExit(f"{bundle} has no compiled model (built by an attnx before it saved one?): rebuild it")
    manifest["sha256"].pop(name, None)
    manifest["build"].pop("compiled", None)
    dest.mkdir(parents=True)
    for f in set(manifest["files"].values()):
        try:
            os.link(bundle / f, dest / f)
        except OSError:  # another filesystem
            (dest / f).write_bytes((bundle / f).read_bytes())
    (dest / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return dest


def run_child(bundle: Path, threads: int) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, "--child", str(bundle), "--threads", str(threads)],
                         capture_output=True, text=True, cwd=ROOT)  # fmt: skip
    if out.returncode:
        raise SystemExit(f"loading {bundle} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def measure(bundle: Path, trials: int, threads: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="attnx-ov-load-", dir=bundle.parent) as tmp:
        variants = {"blob": bundle, "onnx": without_compiled(bundle, Path(tmp) / bundle.name)}
        runs: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
        for path in variants.values():
            run_child(path, threads)  # warm-up: page cache, lazy imports' .pyc files
        for _ in range(trials):
            for v, path in variants.items():
                runs[v].append(run_child(path, threads))
    result: dict[str, Any] = {"bundle": str(bundle), "trials": trials, "threads": threads, "variants": {}}
    for v, rs in runs.items():
        got = {r["compiled_from"] for r in rs}
        if got != {v}:
            raise SystemExit(f"variant {v} of {bundle} loaded from {got}: the comparison would be wrong")
        result["variants"][v] = {
            p: {"median": statistics.median(r[p] for r in rs), "min": min(r[p] for r in rs)} for p in PHASES
        }
        result["variants"][v]["max_rss_mib"] = statistics.median(r["max_rss_mib"] for r in rs)
    onnx, blob = result["variants"]["onnx"]["total_s"]["median"], result["variants"]["blob"]["total_s"]["median"]
    result["speedup_total"] = onnx / blob
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("bundles", nargs="+", type=Path)
    parser.add_argument("--trials", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1, help="per request (the runtime's threads)")
    parser.add_argument("--json", type=Path, help="write the results here too")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.bundles[0], args.threads)))
        return
    import openvino

    machine = {"cpus": os.cpu_count(), "load_before": os.getloadavg(), "openvino": openvino.get_version()}
    results = [measure(b.resolve(), args.trials, args.threads) for b in args.bundles]
    machine["load_after"] = os.getloadavg()
    load = f"{machine['load_before'][0]:.2f} → {machine['load_after'][0]:.2f}"
    print(f"{machine['cpus']} CPUs, load average {load}, OpenVINO {machine['openvino']}; "
          f"medians (min) of {args.trials} fresh processes, {args.threads} thread(s)")  # fmt: skip
    print(f"{'bundle':<28} {'variant':<7} " + " ".join(f"{p.removesuffix('_s'):>24}" for p in PHASES)
          + f" {'peak RSS MiB':>12}")  # fmt: skip
    for r in results:
        for v in ("onnx", "blob"):
            stats = [r["variants"][v][p] for p in PHASES]
            cells = " ".join(f"{s['median'] * 1e3:>12.1f} ms ({s['min'] * 1e3:>6.1f})" for s in stats)
            print(f"{Path(r['bundle']).name:<28} {v:<7} {cells} {r['variants'][v]['max_rss_mib']:>8.0f}")
        print(f"{'':<28} load {r['speedup_total']:.2f}x faster with the compiled model")
    if args.json:
        from attnx.core.files import write_json

        write_json(args.json, {"machine": machine, "results": results})


if __name__ == "__main__":
    main()
