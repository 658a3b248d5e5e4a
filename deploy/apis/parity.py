"""A bundle's parity: the one decision of its reference and its inputs, the check, and the layer-wise search.

``attnx build`` (the check recorded in the manifest) and ``attnx parity BUNDLE`` both call
:func:`plan_bundle_parity`, so they compare the engine with the same reference on the same inputs:

* reference: PyTorch when the model is known (the build's own model, the user's ``--model``, or a zoo model
  named by the bundle's metadata and buildable here), else the bundle's fp32 ONNX in ONNX Runtime;
* inputs: the user's (``--inputs``, ``--load-io``, ``--seeded``), else the held-out calibration samples the
  build recorded in ``manifest.parity_inputs`` (rebuilt from the recipe, on any machine), else seeded random
  inputs at the bundle's optimisation shape.

The CI gate (:mod:`attnx.deploy.apis.check`) chooses no inputs: it reads the reports these runs write.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from attnx.calibration.config import CalibrationConfig
from attnx.calibration.data import load_split
from attnx.calibration.graph import InputInfo
from attnx.core.errors import UserError
from attnx.deploy.apis.pipeline import (
    Feed,
    Infer,
    PreparedModel,
    _torch_infer,
    compare_backends,
    parity_feeds,
    prepare_from_onnx,
)
from attnx.deploy.backends.base import TensorSpec
from attnx.deploy.backends.onnxrt.runner import OnnxrtRunner
from attnx.deploy.backends.torch.runner import TorchRunner
from attnx.deploy.bundle.engine import Engine
from attnx.deploy.bundle.manifest import Manifest, load_manifest
from attnx.deploy.parity.compare import Tolerance, policy
from attnx.deploy.parity.layerwise import engine_candidate_runner, layerwise_compare, trt_candidate_runner
from attnx.deploy.parity.report import LayerwiseReport, ParityReport

if TYPE_CHECKING:
    from attnx.deploy.parity.saved_io import IOCase

# The calibration options that decide which held-out samples a build checked on (recorded in the manifest).
HELD_OUT_KEYS = ("source", "count", "eval_count", "seed", "input_shape", "resize", "crop", "mean", "std", "layout")


def record_held_out(calibration: dict[str, Any] | None) -> dict[str, Any]:
    """``manifest.parity_inputs`` for a build checked on held-out calibration data: enough to rebuild the
    same samples on any machine (a folder or file source is recorded as an absolute path).

    ``calibration`` is the build's calibration options (``attnx.calibration.config.CalibrationConfig`` as a
    dict). Returns ``{"kind": "held_out", "calibration": {...}}``.
    """
    cfg = CalibrationConfig.from_dict(calibration).to_dict()
    rec = {k: cfg[k] for k in HELD_OUT_KEYS if cfg.get(k) is not None}
    if rec["source"] not in ("digits", "photos", "synthetic"):
        rec["source"] = str(Path(rec["source"]).expanduser().resolve())
    return {"kind": "held_out", "calibration": rec}


def held_out_feeds(manifest: Manifest) -> tuple[list[tuple[str, Feed]], str]:
    """The held-out samples a bundle's build was checked on, rebuilt from ``manifest.parity_inputs`` for the
    manifest's inputs; with a description of them.

    One case over every sample (top-1 agreement over 8 would move in steps of 12.5 %), except where a
    TensorRT profile bounds the batch. Raises :class:`UserError` when the recorded source is not here.
    """
    from onnx import helper

    rec = manifest.parity_inputs.get("calibration") or {}
    inputs = [InputInfo(s.name, helper.np_dtype_to_tensor_dtype(np.dtype(s.dtype)), list(s.shape))
              for s in manifest.inputs]  # fmt: skip
    try:
        _, held = load_split(inputs, CalibrationConfig.from_dict(rec))
    except UserError as exc:
        raise UserError(f"the bundle's recorded held-out inputs cannot be rebuilt here ({exc}): pass --inputs FILE "
                        "or --seeded") from None  # fmt: skip
    feed = {k: np.ascontiguousarray(v) for k, v in held.arrays.items()}
    n = held.count
    source = f"held-out samples recorded by the build: {held.description}, {n} samples"
    if manifest.backend == "trt":
        size = int((manifest.inputs[0].profile or {}).get("max", [n])[0]) or n
        return [(f"held-out {i}–{min(i + size, n) - 1}", {k: v[i : i + size] for k, v in feed.items()})
                for i in range(0, n, size)], source  # fmt: skip
    return [(f"held-out ({n} samples)", feed)], source


@dataclass
class BundleParityPlan:
    """What a bundle's engine is compared with, and on what.

    ``prepared``: the PyTorch reference, or None: ``reference_onnx`` (the bundle's fp32 ONNX) run in ONNX
    Runtime is the reference. ``feeds``: (case label, input name → array) in the manifest's input dtypes;
    ``input_source`` says where they came from. ``notes``: why the plan differs from the build's check.
    """

    manifest: Manifest
    reference_onnx: Path
    prepared: PreparedModel | None
    specs: list[TensorSpec]
    feeds: list[tuple[str, Feed]]
    input_source: str
    notes: list[str] = field(default_factory=list)

    @property
    def reference_is_torch(self) -> bool:
        """True when the reference is PyTorch (``prepared``); False when it is the fp32 ONNX in ONNX Runtime."""
        return self.prepared is not None

    @contextmanager
    def reference(self, threads: int | None = None) -> Iterator[Infer]:
        """The reference as a function feed → outputs (name → array), open for the ``with`` block."""
        if self.prepared is not None:
            prepared = self.prepared
            runner = TorchRunner(prepared.model, self.specs, [o.name for o in self.manifest.outputs])
            yield lambda feed: _torch_infer(runner, feed, prepared.spec)
            return
        with OnnxrtRunner(self.reference_onnx, threads=threads) as fp32:
            yield fp32.infer


def plan_bundle_parity(
    bundle: Path, manifest: Manifest | None = None, *, prepared: PreparedModel | None = None,
    reference_onnx: Path | None = None, batches: list[int] | None = None,
    input_shape: tuple[int, ...] | None = None, inputs_file: Path | None = None, seed: int = 0,
    saved_feeds: list[tuple[str, Feed]] | None = None, seeded: bool = False, model_spec: str | None = None,
    config: str | None = None, weights: Path | None = None,
) -> BundleParityPlan:  # fmt: skip
    """The one decision of a bundle's parity reference and inputs (``attnx build`` and ``attnx parity``).

    ``bundle``: the bundle folder (the build passes its unfinished folder and ``manifest``).
    Reference: ``prepared`` (the build's PyTorch model) if given; else PyTorch rebuilt from ``model_spec``
    (the user's ``--model``; it must build), else from the bundle's metadata when the manifest says the build
    used PyTorch and it is a zoo model buildable here (if not, a note says why the fp32 ONNX stands in); else
    ``reference_onnx`` (default: the bundle's reference file) in ONNX Runtime.
    Inputs: ``saved_feeds`` (checked against the manifest's inputs), ``inputs_file`` (.npy/.npz), or seeded
    random inputs when ``seeded``; else the held-out samples the build recorded; else seeded random inputs of
    ``batches`` (default 1 and 3) at ``input_shape`` (default the profile's opt shape), from ``seed``.
    Raises :class:`UserError` for inputs that do not fit, or a held-out source that is not here.
    """
    bundle = Path(bundle)
    manifest = manifest if manifest is not None else load_manifest(bundle)
    if reference_onnx is None:
        reference_onnx = manifest.path_of(bundle, "reference" if "reference" in manifest.files else "onnx")
    specs = [TensorSpec(s.name, np.dtype(s.dtype), tuple(s.shape)) for s in manifest.inputs]
    notes: list[str] = []
    if prepared is None and model_spec is not None:  # the user named the reference: it must build
        prepared = prepare_from_onnx(reference_onnx, model_spec, config, weights)
    elif prepared is None and manifest.source.get("reference") == "torch":
        try:
            prepared = prepare_from_onnx(reference_onnx, None, None, None)
        except UserError as exc:  # not a zoo model, or not buildable here: the fp32 ONNX is the reference
            notes.append(f"reference: the bundle's fp32 ONNX, not PyTorch ({exc})")
    if input_shape is None and manifest.inputs[0].profile:
        input_shape = tuple(manifest.inputs[0].profile["opt"])
    # A reduced-precision engine calibrated on real data is judged on held-out samples of that data (random
    # noise lies outside the calibrated ranges), unless the user gives other inputs.
    recorded = manifest.parity_inputs.get("kind") == "held_out"
    if recorded and not seeded and inputs_file is None and saved_feeds is None:
        feeds, source = held_out_feeds(manifest)
    else:
        feeds, source = parity_feeds(specs, prepared, batches, input_shape, inputs_file, seed, saved_feeds)
        if recorded:
            notes.append("inputs differ from the build's check (held-out samples): verdicts are not comparable")
    return BundleParityPlan(manifest, Path(reference_onnx), prepared, specs, feeds, source, notes)


def run_bundle_parity(
    bundle: Path,
    tolerance: Tolerance | None = None,
    batches: list[int] | None = None,
    input_shape: tuple[int, ...] | None = None,
    inputs_file: Path | None = None,
    seed: int = 0,
    threads: int | None = None,
    progress: Callable[[str], None] | None = None,
    io_cases: list[IOCase] | None = None,
    saved_feeds: list[tuple[str, Feed]] | None = None,
    model_spec: str | None = None,
    config: str | None = None,
    weights: Path | None = None,
    notes: list[str] | None = None,
    seeded: bool = False,
) -> tuple[ParityReport, Path]:
    """A bundle's engine against its fp32 reference (``attnx parity BUNDLE``), chosen by
    :func:`plan_bundle_parity`. Returns the report and the reference ONNX path (for layer-wise).

    ``notes`` (a list) gets the plan's notes (why the fp32 ONNX stood in for PyTorch; inputs other than the
    build's). A bundle whose recorded build parity failed is still checked here: this is how it is diagnosed.
    """
    plan = plan_bundle_parity(
        bundle, batches=batches, input_shape=input_shape, inputs_file=inputs_file, seed=seed,
        saved_feeds=saved_feeds, seeded=seeded, model_spec=model_spec, config=config, weights=weights,
    )  # fmt: skip
    manifest = plan.manifest
    if notes is not None:
        notes.extend(plan.notes)
    with Engine.load(bundle, threads=threads, allow_failed_parity=True, quiet=True) as engine, \
            plan.reference(threads) as reference:  # fmt: skip
        report = ParityReport(
            model=str(plan.prepared.spec if plan.prepared else (manifest.source.get("model") or bundle.name)),
            reference="torch" if plan.prepared else f"onnxruntime fp32 ({plan.reference_onnx.name})",
            candidate=f"{manifest.backend} {manifest.precision} bundle ({bundle.name}; {engine.info['kernels']})",
            precision=manifest.precision, tolerance=tolerance or policy(manifest.precision),
            input_source=plan.input_source,
        )  # fmt: skip
        compare_backends(reference, engine, plan.feeds, report, io_cases, progress)
    return report, plan.reference_onnx


def layerwise_bundle(
    bundle: str | Path, reference_onnx: str | Path, feed: dict[str, np.ndarray],
    tolerance: Tolerance | None = None, graph: str = "engine", threads: int | None = None,
) -> LayerwiseReport:  # fmt: skip
    """Layer-wise search of a bundle against its fp32 ONNX, on one ``feed`` (input name → array).

    ``graph``: ``engine`` compares the graph that ships where it ships (an ORT bundle's optimised ``engine.onnx``
    in ORT; an OpenVINO bundle's baked ``model.onnx`` in OpenVINO at the bundle's inference precision);
    ``model`` compares the precision-baked ``model.onnx`` as ORT would optimise it; ``model-raw`` runs
    ``model.onnx`` unoptimised — Q/DQ then compute in float (simulated quantization), so more names
    survive than in an engine with fused QLinear kernels, and the search shows where the quantization
    plan lets error in. A TensorRT bundle is searched through its ``model.onnx`` with the TensorRT runner
    (needs a GPU). ``tolerance`` defaults to the bundle precision's policy.
    Raises :class:`UserError` for an unknown ``graph``, an NNCF OpenVINO IR bundle, or a missing runner.
    """
    bundle = Path(bundle)
    manifest = load_manifest(bundle)
    tol = tolerance or policy(manifest.precision)
    if graph not in ("engine", "model", "model-raw"):
        raise UserError(f"unknown graph '{graph}' for the layer-wise search: choose engine, model or model-raw")
    label = f"{manifest.backend} {manifest.precision} bundle {bundle.name}"
    if manifest.backend == "trt":
        runner = trt_candidate_runner(manifest)
        return layerwise_compare(
            reference_onnx, manifest.path_of(bundle, "onnx"), feed, tol, precision=manifest.precision,
            candidate_runner=runner, reference_label="fp32 ONNX (ORT, unoptimised)", candidate_label=label,
        )  # fmt: skip
    if manifest.files.get("engine", "").endswith(".xml"):  # NNCF's OpenVINO IR: no ONNX tensors to compare
        raise UserError(f"{bundle} is an OpenVINO INT8 bundle quantized by NNCF (OpenVINO IR), which the layer-wise "
                        "search cannot read: search an ORT int8 bundle of the same model (--backend ort)")  # fmt: skip
    if graph == "engine":
        engine_runner, where = engine_candidate_runner(manifest, threads)
        return layerwise_compare(
            reference_onnx, manifest.path_of(bundle, "engine"), feed, tol, precision=manifest.precision,
            candidate_runner=engine_runner, reference_label="fp32 ONNX (ORT, unoptimised)",
            candidate_label=f"{label} ({manifest.files['engine']}{where})", threads=threads,
        )  # fmt: skip
    return layerwise_compare(
        reference_onnx, manifest.path_of(bundle, "onnx"), feed, tol, precision=manifest.precision,
        candidate_optimize="extended" if graph == "model" else None, reference_label="fp32 ONNX (ORT, unoptimised)",
        candidate_label=f"{label} (model.onnx{', unoptimised' if graph == 'model-raw' else ''})", threads=threads,
    )  # fmt: skip
