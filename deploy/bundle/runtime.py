"""The runner a bundle's manifest asks for: what only the bundle layer knows, before a backend runner runs it.

:func:`open_runner` reads the manifest (backend, engine file, build options, recorded input and output specs),
applies the CPU INT8 guard (:func:`int8_path`: which integer kernels run here, with a warning where the
weights could saturate), turns a TensorRT-layout INT8 graph into its CPU form (calibration.int8_numerics), and
decides whether native code a TensorRT bundle names may load (``trusted``). The runners themselves
(``attnx.deploy.backends.<name>``) take files and options only. Backends are imported by name, lazily, so the
CPU path never imports tensorrt.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attnx.core.errors import UserError
from attnx.deploy.backends.base import Runner, TensorSpec

if TYPE_CHECKING:
    from attnx.core.cpu import Int8Path
    from attnx.deploy.bundle.manifest import IOSpec, Manifest

log = logging.getLogger("attnx.cpu")

# backend name → what opens it here (a function of this module, or the TensorRT runner class, imported lazily)
_RUNNERS = {"ort": "_open_ort", "openvino": "_open_openvino", "trt": "attnx.deploy.backends.tensorrt.runner:TrtRunner"}


def open_runner(bundle: Path, manifest: Manifest, pool_size: int = 1, threads: int | None = None,
                u8u8: str | None = None, trusted: bool = False) -> Runner:  # fmt: skip
    """The activated, pooled runner for ``manifest.backend`` (``pool_size`` concurrent callers, ``threads`` CPU
    threads per call); the caller deactivates it. CPU INT8 bundles first get the guard of :func:`int8_path`.

    ``u8u8``: ``auto`` (default), ``on`` or ``off`` (ONNX Runtime's U8U8 kernels; see :mod:`attnx.core.cpu`).
    ``trusted``: the caller just built this bundle (TensorRT native code it names may load; see
    ``attnx.deploy.backends.tensorrt.util.trusted_native_code`` for everyone else).
    Raises :class:`~attnx.core.errors.UserError` for a backend this attnx cannot run, an engine file that
    does not match the manifest, and what the backend raises.
    """
    target = _RUNNERS.get(manifest.backend)
    if target is None:
        raise UserError(f"bundle {bundle} has backend '{manifest.backend}', which this attnx cannot run")
    if manifest.backend == "trt":
        module_name, _, cls_name = target.partition(":")
        trt_runner = importlib.import_module(module_name)
        info = trt_runner.TrtPlanInfo.from_record(manifest.to_dict(), bundle)  # the manifest as plain data
        onnx_path = manifest.path_of(bundle, "onnx") if "onnx" in manifest.files else None  # layer-wise search
        made = getattr(trt_runner, cls_name).from_bundle_files(manifest.path_of(bundle, "engine"), info,
                                                               onnx_path=onnx_path, pool_size=pool_size,
                                                               threads=threads, trusted=trusted)  # fmt: skip
        return made  # type: ignore[no-any-return]
    opener = globals()[target]
    runner: Runner = opener(bundle, manifest, pool_size, threads, int8_path(bundle, manifest, u8u8))
    try:
        runner.activate()
        if manifest.backend == "ort":
            check_against_manifest(runner, manifest, manifest.path_of(bundle, "engine"))
    except BaseException:
        runner.deactivate()
        raise
    return runner


def onnx_file_runner(path: str | Path, threads: int | None = None, pool_size: int = 1) -> Runner:
    """An :class:`~attnx.deploy.backends.onnxrt.runner.OnnxrtRunner` (not activated) for an ONNX file outside a
    bundle, computing what the file computes on its target: an INT8 graph runs as
    :func:`attnx.calibration.int8_numerics.cpu_form` decides for this CPU (TensorRT layout as exact fake-quant
    bytes; U8U8 kernels where full 8-bit weights could saturate); other graphs run as they are."""
    from attnx.deploy.backends.onnxrt.runner import OnnxrtRunner

    source, config = _cpu_form(Path(path))
    return OnnxrtRunner(source, threads=threads, pool_size=pool_size, session_config=config)


def _cpu_form(path: Path) -> tuple[Any, dict[str, str]]:
    """An INT8 file as this CPU must run it (TensorRT layout as fake-quant bytes; U8U8 settings), else the path."""
    import onnx

    from attnx.calibration.int8_numerics import cpu_form, has_integer_ops

    try:
        model = onnx.load(str(path), load_external_data=False)  # the graph first: most models are float
        if not has_integer_ops(model):
            return path, {}
        model = onnx.load(str(path))  # weights too: the saturation proof reads them
    except Exception:  # unreadable or missing: let the runner name the problem when it loads it
        return path, {}
    form = cpu_form(model)
    return (form.model.SerializeToString() if form.model is not model else path), form.session_config


def _open_ort(bundle: Path, manifest: Manifest, pool_size: int, threads: int | None,
              path: Int8Path | None) -> Runner:  # fmt: skip
    from attnx.deploy.backends.onnxrt.runner import OnnxrtRunner

    # The engine file is already optimised at build time; don't redo (or undo) that work (the session factory
    # keeps optimisation on for the U8U8 path, where ONNX Runtime switches INT8 kernels while optimising).
    return OnnxrtRunner(manifest.path_of(bundle, "engine"), providers=manifest.build.get("providers") or None,
                        threads=threads, pool_size=pool_size, optimize=False,
                        session_config=path.session_config() if path else {},
                        kernels=path.description if path else "float kernels", fix="; rebuild the bundle")  # fmt: skip


def _open_openvino(bundle: Path, manifest: Manifest, pool_size: int, threads: int | None,
                   path: Int8Path | None) -> Runner:  # fmt: skip
    from attnx.deploy.backends.openvino.runner import INFERENCE_PRECISIONS, OpenVinoRunner, bf16_supported

    engine = manifest.path_of(bundle, "engine")
    if engine.suffix not in (".onnx", ".xml"):  # .xml: NNCF's INT8 model (its weights in the .bin beside)
        raise UserError(f"OpenVINO bundle {bundle} has engine file {engine.name}, not an .onnx or .xml: rebuild it")
    requested = str(manifest.build.get("inference_precision", "fp32"))
    if requested not in INFERENCE_PRECISIONS:
        raise UserError(f"bundle {bundle} asks for inference precision '{requested}': choose fp32 or bf16")
    if INFERENCE_PRECISIONS[requested] == "bf16":
        ok, why = bf16_supported()
        if not ok:
            raise UserError(f"bundle {bundle} is a bf16 OpenVINO bundle but {why}")
    compiled = manifest.path_of(bundle, "compiled") if "compiled" in manifest.files else None
    # OpenVINO has no U8U8 switch: an unsafe INT8 bundle on a non-VNNI CPU is only warned about (int8_path)
    return OpenVinoRunner(engine, requested, threads=threads, pool_size=pool_size, compiled_blob=compiled,
                          blob_key=manifest.build.get("compiled") or {},
                          output_names=[o.name for o in manifest.outputs] or None,
                          kernels=f"OpenVINO CPU, {path.description}" if path else "OpenVINO CPU",
                          label=f"bundle {bundle}")  # fmt: skip


def check_against_manifest(runner: Any, manifest: Manifest, path: Path) -> None:
    """The engine's inputs and outputs (``runner.input_specs()`` / ``runner.output_specs()``) are the
    manifest's: names, dtypes, ranks, fixed sizes. A manifest that disagrees with its engine is corrupt, said
    once here (a UserError) rather than as the backend's refusal of each call."""

    def fail(what: str) -> None:
        raise UserError(f"{path.parent / 'manifest.json'} does not match {path.name}: {what}; the manifest is "
                        "corrupt or edited: rebuild the bundle with `attnx build`")  # fmt: skip

    pairs: tuple[tuple[str, list[IOSpec], list[TensorSpec]], ...] = (
        ("input", manifest.inputs, runner.input_specs()), ("output", manifest.outputs, runner.output_specs()))
    for kind, specs, actual in pairs:
        want = {s.name: s for s in specs}
        have = {a.name: a for a in actual}
        if set(want) != set(have):
            fail(f"{kind}s {sorted(want)} in the manifest, {sorted(have)} in the engine")
        for name, spec in want.items():
            arg = have[name]
            if arg.dtype.name != spec.dtype:
                fail(f"{kind} '{name}' is {spec.dtype} in the manifest, {arg.dtype.name} in the engine")
            shape = list(arg.shape)
            if len(shape) != len(spec.shape) or any(
                isinstance(m, int) and isinstance(e, int) and m != e for m, e in zip(spec.shape, shape)
            ):
                fail(f"{kind} '{name}' has shape {list(spec.shape)} in the manifest, {shape} in the engine")


def int8_path(bundle: Path, manifest: Manifest, u8u8: str | None = None) -> Int8Path | None:
    """The integer kernels a CPU INT8 bundle runs on here; warns (one line) when the bundle's weights could
    saturate this CPU's u8×s8 kernels. None for float bundles.

    The bundle records its saturation proof and the CPU it was verified on (``manifest.cpu``); bundles from
    before that record are treated as full 8-bit weights verified on an unknown CPU.
    """
    from attnx.core.cpu import CpuFeatures, int8_runtime_path

    if manifest.precision != "int8":
        return None
    record = manifest.cpu or {}
    safe = bool((record.get("saturation") or {}).get("safe"))
    verified_on = CpuFeatures.from_dict(record.get("verified_on"))
    path = int8_runtime_path(safe, verified_on, manifest.backend, u8u8=u8u8, name=f"bundle {bundle}")
    if path.warning:
        log.warning("attnx: warning: %s", path.warning)
    return path
