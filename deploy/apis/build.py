"""``attnx build``: model or ONNX → precision-baked ONNX → engine → parity-checked bundle.

The steps are plain functions so that Python users can chain them too:
    source (model spec or .onnx) → fp32 ONNX → apply precision (calibration package) → backend engine
    → parity of the engine against the fp32 reference → manifest → bundle (written atomically).
"""

from __future__ import annotations

import dataclasses
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attnx.core.errors import UserError, shown
from attnx.deploy.apis.parity import plan_bundle_parity, record_held_out
from attnx.deploy.apis.pipeline import compare_backends
from attnx.deploy.bundle.engine import Engine
from attnx.deploy.bundle.manifest import (
    BACKENDS,
    PRECISIONS,
    BundleWriter,
    IOSpec,
    Manifest,
    check_destination,
    cpu_device,
    library_versions,
    replace_dir,
)
from attnx.deploy.parity.compare import policy
from attnx.deploy.parity.report import ParityReport

if TYPE_CHECKING:
    import onnx

    from attnx.deploy.apis.pipeline import PreparedModel


@dataclass
class BuildOptions:
    """Options of :func:`build_bundle` (``attnx build``), checked by :meth:`validate`.

    ``backend``: auto | ort | trt | openvino. ``precision``: fp32 | fp16 | bf16 | int8, or best (build every
    candidate, keep the fastest that passes parity). ``input_shape``: export / optimisation shape, batch included
    (None: the model's default). ``max_batch``: upper bound of the dynamic-batch profile (TensorRT) and of
    ``parity_batches``. ``calibration``: options for :mod:`attnx.calibration.precision`; ``trt``: TensorRT build
    options (:mod:`attnx.deploy.backends.tensorrt.builder`). ``seed``: of the seeded parity inputs; ``threads``: CPU
    threads for parity and timing (None: the backend's default).
    """

    backend: str = "auto"  # auto | ort | trt | openvino
    precision: str = "fp32"  # fp32 | fp16 | bf16 | int8 | best
    input_shape: tuple[int, ...] | None = None  # export / opt shape, batch included
    max_batch: int = 8  # dynamic-batch profile upper bound (TensorRT) and parity range
    opset: int = 17
    plugins: str = "auto"
    calibration: dict[str, Any] = field(default_factory=dict)  # passed to attnx.calibration.precision
    trt: dict[str, Any] = field(default_factory=dict)  # workspace, timing cache, opt level, compat flags...
    parity_batches: tuple[int, ...] = (1, 3)
    seed: int = 0
    threads: int | None = None

    def validate(self) -> None:
        """Raise :class:`~attnx.core.errors.UserError` for an unknown backend or precision, ``max_batch`` < 1, or a pair
        that cannot be built (fp16 with OpenVINO; bf16 with a backend other than OpenVINO or auto).
        """
        if self.backend not in (*BACKENDS, "auto"):
            raise UserError(f"unknown backend '{self.backend}': choose auto, {', '.join(BACKENDS)}")
        if self.precision not in (*PRECISIONS, "best"):
            raise UserError(f"unknown precision '{self.precision}': choose {', '.join(PRECISIONS)} or best")
        if self.max_batch < 1:
            raise UserError(f"--max-batch must be ≥ 1, got {self.max_batch}")
        if self.precision == "fp16" and self.backend == "openvino":
            raise UserError("OpenVINO's CPU plugin has no fp16 path (it would compute in fp32 or bf16): build "
                            "--backend openvino as fp32, bf16 or int8, or fp16 with --backend ort or trt")  # fmt: skip
        if self.precision == "bf16" and self.backend not in ("openvino", "auto"):
            raise UserError("bf16 runs through OpenVINO's inference precision: use --backend openvino (or auto)")


@dataclass
class BuildResult:
    """What :func:`build_bundle` made: the bundle folder, its manifest, and the engine's parity report against the
    fp32 reference (also recorded in ``manifest.parity``).
    """

    bundle: Path
    manifest: Manifest
    parity: ParityReport


def resolve_backend(requested: str) -> tuple[str, str]:
    """``auto`` → TensorRT when a GPU and TensorRT are present, else ONNX Runtime on the CPU; with the reason."""
    from attnx.core.device import gpu_status

    if requested == "ort":
        return requested, "--backend ort"
    if requested == "openvino":
        from attnx.deploy.backends.openvino.runner import openvino_available

        available, why = openvino_available()
        if not available:
            raise UserError(f"--backend openvino: {why}; use --backend ort")
        return "openvino", f"--backend openvino: {why}"
    ok, why = gpu_status()
    if requested == "trt":
        if not ok:
            raise UserError(f"--backend trt needs an NVIDIA GPU with TensorRT, but {why}; use --backend ort")
        return "trt", f"--backend trt: {why}"
    return ("trt", f"auto: {why}") if ok else ("ort", f"auto: ONNX Runtime on the CPU ({why})")


def build_bundle(source: str, out_dir: Path, options: BuildOptions, model_spec: str | None = None,
                 config: str | None = None, weights: Path | None = None) -> BuildResult:  # fmt: skip
    """Build one bundle. ``source`` is a model spec or an .onnx file (its reference rebuilt from metadata)."""
    options.validate()
    if options.precision == "best" or options.backend == "auto":
        candidates, why = cpu_candidates(options)
        if not candidates:
            raise UserError(f"no backend here builds {options.precision}{': ' + '; '.join(why) if why else ''}")
        if len(candidates) > 1:
            return build_best(source, out_dir, options, candidates, why, model_spec, config, weights)
        backend, precision = candidates[0]  # one candidate: build it directly
        options = dataclasses.replace(options, backend=backend, precision=precision)
    backend, backend_reason = resolve_backend(options.backend)
    from attnx.core.tempdirs import sweep_build_leftovers, tempdir

    sweep_build_leftovers(Path(out_dir))  # work folders of killed builds (their process is gone)
    with tempdir("attnx-build-") as work:
        prepared, fp32_path = _fp32_onnx(source, work, options, model_spec, config, weights, backend)
        with BundleWriter(out_dir) as writer:
            manifest = _assemble(prepared, fp32_path, writer, options, backend, work)
            manifest.notes.insert(0, f"backend {backend} ({backend_reason})")
            parity = _engine_parity(prepared, fp32_path, writer.tmp, manifest, options)
            manifest.parity = parity.to_dict()
            bundle = writer.commit(manifest)
    return BuildResult(bundle, manifest, parity)


def cpu_candidates(options: BuildOptions) -> tuple[list[tuple[str, str]], list[str]]:
    """The (backend, precision) pairs `auto` / `best` choose among, and why others were left out.

    With a usable GPU, `auto` means TensorRT (one candidate per precision). On a CPU: ONNX Runtime, and
    OpenVINO when installed (bf16 only where the CPU has it).
    """
    from attnx.core.device import gpu_status

    notes: list[str] = []
    wanted = ["fp32", "fp16", "int8"] if options.precision == "best" else [options.precision]
    if options.backend == "trt" or (options.backend == "auto" and gpu_status()[0]):
        return [("trt", p) for p in wanted if p != "bf16"], notes
    backends = [options.backend] if options.backend in ("ort", "openvino") else ["ort", "openvino"]
    if "openvino" in backends:
        from attnx.deploy.backends.openvino.runner import bf16_supported, openvino_available

        available, why = openvino_available()
        if not available:
            backends.remove("openvino")
            notes.append(f"no OpenVINO candidate: {why}")
        elif options.precision == "best":
            ok, why = bf16_supported()
            if ok:
                wanted.append("bf16")
            else:
                notes.append(f"no bf16 candidate: {why}")
    pairs = [(b, p) for b in backends for p in wanted if not (p == "bf16" and b != "openvino")]
    pairs = [(b, p) for b, p in pairs if not (b == "openvino" and p == "fp16")]  # OpenVINO's CPU has no fp16 path
    return pairs, notes


def build_best(source: str, out_dir: Path, options: BuildOptions, candidates: list[tuple[str, str]],
               notes: list[str], model_spec: str | None = None, config: str | None = None,
               weights: Path | None = None) -> BuildResult:  # fmt: skip
    """Build every candidate, time them side by side in one run, keep the fastest that passes its policy.

    The measurements and the choice are recorded in the kept bundle's manifest (``build.selection``).
    """
    import json

    from attnx.core.files import write_json
    from attnx.deploy.apis.bench import run_bench
    from attnx.deploy.bench.measure import BenchOptions
    from attnx.deploy.bundle.manifest import MANIFEST_NAME

    check_destination(Path(out_dir))  # before any candidate is built
    Path(out_dir).parent.mkdir(parents=True, exist_ok=True)
    from attnx.core.tempdirs import sweep_build_leftovers, tempdir

    sweep_build_leftovers(Path(out_dir))
    with tempdir(f".{Path(out_dir).name}.best-", dir=Path(out_dir).parent) as tmpdir:
        built: dict[tuple[str, str], BuildResult] = {}
        failed: dict[tuple[str, str], str] = {}  # a candidate that cannot be built is recorded, not fatal
        for backend, precision in candidates:
            opts = dataclasses.replace(options, backend=backend, precision=precision)
            try:
                built[(backend, precision)] = build_bundle(source, Path(tmpdir) / f"{backend}-{precision}", opts,
                                                           model_spec, config, weights)  # fmt: skip
            except UserError as exc:
                failed[(backend, precision)] = str(exc)
                notes.append(f"candidate {backend}/{precision} failed to build: {exc}")
        passing = [k for k, r in built.items() if r.parity.passed]
        if not passing:
            tried = ", ".join("/".join(k) for k in [*built, *failed])
            raise UserError(f"no candidate passes its parity policy ({tried}): "
                            "see `attnx build --backend B --precision P` for each")  # fmt: skip
        bench = run_bench([built[k].bundle for k in passing], None,
                          BenchOptions(batches=(1,), iterations=60, threads=options.threads or 1),
                          torch_reference=False)  # fmt: skip
        timing = {(c.backend, c.precision): c.stats for c in bench.configs}
        chosen = min(passing, key=lambda k: timing[k].p50_ms)
        rows = [{"backend": b, "precision": p, "parity_passed": built[(b, p)].parity.passed,
                 "p50_ms": timing[(b, p)].p50_ms if (b, p) in timing else None,
                 "mean_ms": timing[(b, p)].mean_ms if (b, p) in timing else None} for b, p in built]  # fmt: skip
        rows += [{"backend": b, "precision": p, "parity_passed": False, "p50_ms": None, "mean_ms": None,
                  "build_error": why} for (b, p), why in failed.items()]  # fmt: skip
        result = built[chosen]
        manifest_path = result.bundle / MANIFEST_NAME
        data = json.loads(manifest_path.read_text())
        data["build"]["selection"] = {
            "criterion": "lowest p50 latency, batch 1, interleaved in one run; candidates failing parity excluded",
            "threads": options.threads or 1, "candidates": rows,
            "chosen": {"backend": chosen[0], "precision": chosen[1]}, "notes": notes,
        }  # fmt: skip
        data["notes"].append(f"chosen by measurement: {chosen[0]} {chosen[1]} (see build.selection)")
        write_json(manifest_path, data)
        replace_dir(result.bundle, Path(out_dir))  # the chosen bundle, whole, by renames
    from attnx.deploy.bundle.manifest import load_manifest

    manifest = load_manifest(Path(out_dir))
    return BuildResult(Path(out_dir), manifest, result.parity)


def _fp32_onnx(source: str, work: Path, options: BuildOptions, model_spec: str | None, config: str | None,
               weights: Path | None, backend: str) -> tuple[PreparedModel | None, Path]:  # fmt: skip
    """The fp32 ONNX to build from, and the PyTorch reference when one can be had."""
    from attnx.core.errors import warn
    from attnx.core.onnx_files import copy_model
    from attnx.deploy.apis.pipeline import export_model, full_input_shape, prepare_from_onnx, prepare_model
    from attnx.exporters.export import ExportOptions, read_metadata
    from attnx.exporters.registry import is_zoo_name

    if source.endswith(".onnx") or Path(source).is_file():
        path = Path(source)
        if not path.is_file():
            raise UserError(f"ONNX file not found: {path}")
        meta = read_metadata(path) if _readable_onnx(path) else {}
        named = meta.get("attnx.model")
        if model_spec is None and named and not is_zoo_name(named):
            # A name read from the file selects a zoo model only; the fp32 ONNX is the reference instead.
            named_shown = shown(named, 120)
            warn(f"{path} names model '{named_shown}', which is not a zoo model; attnx never imports code named by a "
                 f"file, so the engine is checked against the fp32 ONNX (pass --model {named_shown} to check it "
                 "against PyTorch)")  # fmt: skip
            named = None
        has_reference = bool(model_spec or named)
        prepared = prepare_from_onnx(path, model_spec, config, weights) if has_reference else None
        local = work / "fp32.onnx"
        copy_model(path, local)  # with its external data read in: the work folder holds one whole model
        return prepared, local
    prepared = prepare_model(source, config=config, weights=weights)
    shape = full_input_shape(prepared, options.input_shape)
    target = "trt10" if backend == "trt" else "ort"
    export_opts = ExportOptions(input_shape=shape, dynamic_batch=True, opset=options.opset)
    result, _ = export_model(prepared, work / "fp32.onnx", export_opts, target=target, plugins=options.plugins)
    return prepared, result.path


def _readable_onnx(path: Path) -> bool:
    """A readable ONNX file whose external data, if any, lies beside it (else one line naming the problem)."""
    from attnx.core.onnx_files import checked_metadata

    checked_metadata(path)
    return True


def io_specs(
    model: onnx.ModelProto, max_batch: int, opt_shape: tuple[int, ...] | None
) -> tuple[list[IOSpec], list[IOSpec]]:
    """Inputs (with min/opt/max profiles over a dynamic batch) and outputs, from the graph."""
    from onnx import helper

    init_names = {i.name for i in model.graph.initializer}

    def spec(vi: Any, with_profile: bool) -> IOSpec:
        t = vi.type.tensor_type
        shape: list[int | str] = [d.dim_param or d.dim_value or "?" for d in t.shape.dim]
        dtype = str(helper.tensor_dtype_to_np_dtype(t.elem_type))
        profile = None
        if with_profile and any(isinstance(d, str) for d in shape):
            if any(isinstance(d, str) for d in shape[1:]) and opt_shape is None:
                raise UserError(f"input '{vi.name}' has dynamic axes beyond the batch: pass --input-shape")
            opt = list(opt_shape) if opt_shape else [1 if isinstance(d, str) else d for d in shape]
            lo = [1 if i == 0 else (d if isinstance(d, int) else opt[i]) for i, d in enumerate(shape)]
            hi = [max_batch if i == 0 else (d if isinstance(d, int) else opt[i]) for i, d in enumerate(shape)]
            profile = {"min": lo, "opt": [min(max(opt[0], 1), max_batch), *opt[1:]], "max": hi}
        return IOSpec(vi.name, dtype, shape, profile)

    inputs = [spec(vi, True) for vi in model.graph.input if vi.name not in init_names]
    outputs = [spec(vi, False) for vi in model.graph.output]
    return inputs, outputs


def _assemble(prepared: PreparedModel | None, fp32_path: Path, writer: BundleWriter, options: BuildOptions,
              backend: str, work: Path) -> Manifest:  # fmt: skip
    """Precision-bake the ONNX, build the backend engine, and describe both in a manifest."""
    import onnx

    from attnx.deploy.bundle.manifest import sha256_file
    from attnx.exporters.export import read_metadata

    fp32 = onnx.load(str(fp32_path))
    meta = read_metadata(fp32_path)
    files = {"onnx": "model.onnx"}
    precision_plan = calibration_info = None
    held_out = False  # checked on held-out calibration samples (recorded below for `attnx parity`)
    notes: list[str] = []
    # OpenVINO INT8 is NNCF's: the engine is OpenVINO's own model (model.xml + model.bin, FakeQuantize inside)
    # and the bundle's ONNX is its fp32 source; measured faster than the ORT-layout Q/DQ graph compiled by
    # OpenVINO on every model tried, and more accurate on ViT (python -m attnx.deploy.tools.nncf_bench).
    openvino_int8 = backend == "openvino" and options.precision == "int8"
    if options.precision in ("fp32", "bf16"):  # bf16 is a runtime setting of the fp32 graph
        baked = fp32
    elif openvino_int8:
        import openvino

        from attnx.calibration.precision import apply_openvino_int8

        ov = apply_openvino_int8(fp32_path, options.calibration)
        baked = fp32
        precision_plan, calibration_info = ov.plan, ov.calibration_info
        notes.extend(ov.notes)
        held_out = ov.held_out
        openvino.save_model(ov.model, str(writer.path("model.xml")), compress_to_fp16=False)
        files.update(weights="model.bin")
    else:
        from attnx.calibration.precision import apply_precision

        style = "trt" if backend == "trt" else "ort"
        result = apply_precision(
            fp32_path, options.precision, style=style, calibration=options.calibration, work_dir=work,
        )  # fmt: skip
        baked = result.model
        precision_plan, calibration_info = result.plan, result.calibration_info
        notes.extend(result.notes)
        held_out = result.check_inputs is not None
        if result.calibration_table is not None:
            shutil.copyfile(result.calibration_table, writer.path("calibration.json"))
            files["calibration"] = "calibration.json"
    onnx.save(baked, str(writer.path("model.onnx")))
    if options.precision in ("fp32", "bf16") or openvino_int8:
        files["reference"] = "model.onnx"
    else:  # keep the fp32 graph: parity and layer-wise search of the bundle need no PyTorch then
        shutil.copyfile(fp32_path, writer.path("reference.onnx"))
        files["reference"] = "reference.onnx"
    inputs, outputs = io_specs(baked, options.max_batch, options.input_shape)
    plugins = sorted({n.op_type for n in baked.graph.node if n.domain == "attnx"})
    device = cpu_device()
    build_info: dict[str, Any] = {
        "max_batch": options.max_batch, "opset": options.opset, "plugins_mode": options.plugins,
    }  # fmt: skip
    if backend == "ort":
        files["engine"] = _build_ort_engine(writer.path("model.onnx"), writer.path("engine.onnx"), plugins, notes)
        build_info["providers"] = ["CPUExecutionProvider"]
    elif backend == "openvino":
        if plugins:
            raise UserError(f"--backend openvino cannot run attnx custom ops ({', '.join(plugins)}): "
                            "build with --plugins none")  # fmt: skip
        # OpenVINO compiles the ONNX itself (the engine is the baked graph: one file, two roles), or NNCF's model.
        files["engine"] = "model.xml" if openvino_int8 else "model.onnx"
        build_info["inference_precision"] = "bf16" if options.precision == "bf16" else "f32"
        if options.precision == "bf16":
            from attnx.deploy.backends.openvino.runner import bf16_supported

            ok, why = bf16_supported()
            if not ok:
                raise UserError(f"no bf16 on this machine: {why}; build fp32 or int8")
        from attnx.deploy.backends.openvino.runner import COMPILED_FILE, write_compiled

        # The compiled model too: loading imports it instead of compiling the ONNX (first result ~1.5x sooner).
        build_info["compiled"] = write_compiled(writer.path(files["engine"]), writer.path(COMPILED_FILE),
                                                build_info["inference_precision"])  # fmt: skip
        files["compiled"] = COMPILED_FILE
    else:
        from attnx.deploy.backends.tensorrt.builder import build_trt_engine

        info = build_trt_engine(writer.path("model.onnx"), writer.path("engine.plan"), inputs, options.trt)
        files["engine"] = "engine.plan"
        device = info.pop("device")
        build_info.update(info)
    source = {
        "model": prepared.spec if prepared else meta.get("attnx.model"),
        "config": prepared.config if prepared else meta.get("attnx.config"),
        "weights_sha256": meta.get("attnx.weights_sha256"),
        "fp32_onnx_sha256": sha256_file(fp32_path),
        "reference": "torch" if prepared else "onnxruntime fp32",
    }
    from attnx.core.cpu import detect

    # INT8: the recipe, the CPU it was verified on and the saturation proof; else the build CPU's features
    cpu = (precision_plan or {}).get("cpu") or {"verified_on": detect().to_dict()}
    # Checked on held-out samples of the calibration data (when it had some): recorded so that `attnx parity`
    # rebuilds the same samples anywhere; else seeded random inputs.
    parity_inputs = record_held_out(options.calibration) if held_out else {"kind": "seeded"}
    return Manifest(
        backend=backend, precision=options.precision, source=source,
        opset=next((o.version for o in baked.opset_import if o.domain in ("", "ai.onnx")), 0),
        inputs=inputs, outputs=outputs, files=files, precision_plan=precision_plan,
        calibration=calibration_info, plugins=plugins, libraries=library_versions(), device=device,
        build=build_info, notes=notes, cpu=cpu, parity_inputs=parity_inputs,
    )  # fmt: skip


def _build_ort_engine(model_path: Path, engine_path: Path, plugins: list[str], notes: list[str]) -> str:
    """ORT's engine is the model after its offline graph optimisations (portable 'extended' level)."""
    from attnx.deploy.backends.onnxrt.session import make_session

    if plugins:
        # attnx nodes run as onnxruntime-extensions Python ops, resolved at session creation:
        # keep the plugin-form graph as the engine.
        shutil.copyfile(model_path, engine_path)
        notes.append(f"ORT engine keeps attnx custom nodes {plugins} (run via onnxruntime-extensions)")
        return engine_path.name
    make_session(model_path, optimize="extended", optimized_path=engine_path, custom_ops=False)
    return engine_path.name


def _engine_parity(prepared: PreparedModel | None, fp32_path: Path, bundle_dir: Path, manifest: Manifest,
                   options: BuildOptions) -> ParityReport:  # fmt: skip
    """The built engine against the fp32 reference (PyTorch when known, else the fp32 ONNX in ORT), on the
    inputs :func:`attnx.deploy.apis.parity.plan_bundle_parity` chooses: the decision `attnx parity BUNDLE`
    makes, so both give the same verdict (held-out calibration samples where the build recorded them)."""
    batches = [b for b in options.parity_batches if b <= options.max_batch] or [1]
    plan = plan_bundle_parity(bundle_dir, manifest, prepared=prepared, reference_onnx=fp32_path, batches=batches,
                              seed=options.seed)  # fmt: skip
    engine = Engine(bundle_dir, manifest, _open(bundle_dir, manifest, options))
    report = ParityReport(
        model=str(manifest.source.get("model") or fp32_path.name), reference=manifest.source["reference"],
        candidate=f"{manifest.backend} {manifest.precision} bundle ({engine.info['kernels']})",
        precision=manifest.precision, tolerance=policy(manifest.precision), input_source=plan.input_source,
    )  # fmt: skip
    try:
        with plan.reference(options.threads) as reference:
            return compare_backends(reference, engine, plan.feeds, report)
    finally:
        engine.close()


def _open(bundle_dir: Path, manifest: Manifest, options: BuildOptions) -> Any:
    from attnx.deploy.bundle.runtime import open_runner

    return open_runner(bundle_dir, manifest, pool_size=1, threads=options.threads, trusted=True)  # built just now
