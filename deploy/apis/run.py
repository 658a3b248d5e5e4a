"""``attnx run`` as a library call: the whole pipeline, read top to bottom.

    export → op report → parity (PyTorch vs ONNX Runtime) → a bundle per precision (each with its own parity)
    → accuracy on real images → benchmark

:func:`run_pipeline` returns a :class:`PipelineResult` with one typed result per stage; it prints nothing. A
caller that wants to show progress passes ``progress`` (a one-line status) and ``on_stage`` (called with each
stage's result as soon as it is ready, so a CLI can print tables while later stages run).

Artefacts, all in ``output_dir``: ``model.onnx``, ``model.report.json``, ``parity.json``, ``bundles/<precision>/``,
``accuracy.json`` (classifiers with weights), ``bench.json`` and ``bench.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attnx.core.errors import UserError
from attnx.core.files import write_json, write_text
from attnx.deploy.accuracy import evaluate_bundle
from attnx.deploy.apis.bench import run_bench
from attnx.deploy.apis.build import BuildOptions, build_bundle
from attnx.deploy.apis.pipeline import (
    PreparedModel,
    export_model,
    full_input_shape,
    prepare_model,
    report_path,
    run_parity,
)
from attnx.deploy.bench.measure import BenchOptions, BenchResult, markdown_summary
from attnx.deploy.parity.compare import policy
from attnx.exporters.export import ExportOptions
from attnx.exporters.trt_support import TARGETS

if TYPE_CHECKING:
    from attnx.deploy.parity.compare import ParityReport
    from attnx.exporters.export import ExportResult
    from attnx.exporters.report import OpReport

PRECISIONS = ("fp32", "fp16", "int8")  # the bundles `attnx run` builds (ONNX Runtime, CPU)


@dataclass
class ExportStage:
    """Stage 1–2: the exported fp32 ONNX and its op report (``<stem>.report.json`` beside it)."""

    result: ExportResult
    report: OpReport
    report_path: Path
    options: ExportOptions


@dataclass
class ParityStage:
    """Stage 3: PyTorch vs ONNX Runtime on the exported graph ``onnx_path``, under the fp32 policy; the report
    is written to ``path`` (``parity.json``)."""

    report: ParityReport
    onnx_path: Path
    path: Path

    @property
    def passed(self) -> bool:
        """True when every case is within the fp32 policy."""
        return self.report.passed


@dataclass
class BundleAccuracy:
    """Top-1 of one bundle on the digits test split: ``top1`` in percent, ``correct`` of ``samples`` images."""

    precision: str
    top1: float
    correct: int
    samples: int

    def to_dict(self) -> dict[str, Any]:
        """The fields as JSON-ready data (``top1`` in percent)."""
        return {"precision": self.precision, "top1": self.top1, "correct": self.correct, "samples": self.samples}


@dataclass
class BundleStage:
    """Stage 4–5, one precision: the bundle folder, its build-time parity report and (classifiers with
    weights) its accuracy on real images."""

    precision: str
    bundle: Path
    parity: ParityReport
    accuracy: BundleAccuracy | None = None

    @property
    def passed(self) -> bool:
        """True when the bundle's build-time parity is within its precision's policy."""
        return self.parity.passed


@dataclass
class PipelineResult:
    """Every stage's result. ``parity`` failing stops the pipeline: ``bundles`` is then empty and ``bench`` None."""

    model: str
    output_dir: Path
    export: ExportStage
    parity: ParityStage
    bundles: list[BundleStage] = field(default_factory=list)
    accuracy_path: Path | None = None  # accuracy.json, when any bundle was scored
    bench: BenchResult | None = None

    @property
    def failed_precisions(self) -> list[str]:
        """Precisions whose bundle fails its parity policy (the bundles are kept for study)."""
        return [b.precision for b in self.bundles if not b.passed]

    @property
    def passed(self) -> bool:
        """True when the export's parity and every bundle's parity pass."""
        return self.parity.passed and not self.failed_precisions


def export_options(prepared: PreparedModel, input_shape: tuple[int, ...] | None, *, batch: int = 1,
                   dynamic_batch: bool = True, dynamic_hw: bool = False, opset: int = 17, exporter: str = "auto",
                   simplify: bool = True, attention: str = "auto") -> ExportOptions:  # fmt: skip
    """The :class:`ExportOptions` for ``prepared``: the user's NCHW ``input_shape``, else the zoo default with
    ``batch``. Raises UserError for a shape a fixed-size model cannot take or an unknown default shape."""
    return ExportOptions(
        input_shape=full_input_shape(prepared, input_shape, batch=batch), dynamic_batch=dynamic_batch,
        dynamic_hw=dynamic_hw, opset=opset, exporter=exporter, simplify=simplify, attention=attention,
    )  # fmt: skip


def check_targets(target: str, precisions: Sequence[str]) -> None:
    """Raise UserError for an unknown op-report ``target`` or a precision :func:`run_pipeline` cannot build."""
    if target not in TARGETS:
        raise UserError(f"unknown target '{target}': choose one of {', '.join(TARGETS)}")
    for p in precisions:
        if p not in PRECISIONS:
            raise UserError(f"unknown precision '{p}' in --precisions: choose from {', '.join(PRECISIONS)}")


def run_pipeline(
    model: str,
    output_dir: Path,
    *,
    config: str | None = None,
    weights: Path | None = None,
    input_shape: tuple[int, ...] | None = None,
    dynamic_hw: bool = False,
    opset: int = 17,
    exporter: str = "auto",
    target: str = "ort",
    plugins: str = "none",
    attention: str = "auto",
    batches: Sequence[int] = (1, 3),
    seed: int = 0,
    precisions: Sequence[str] = ("fp32", "int8"),
    calibration: dict[str, Any] | None = None,
    iterations: int = 50,
    progress: Callable[[str], None] | None = None,
    on_stage: Callable[[ExportStage | ParityStage | BundleStage | list[BundleStage] | BenchResult], None]
    | None = None,
) -> PipelineResult:
    """Export ``model`` (a zoo name or model spec), check it, build a bundle per precision, score and time them.

    ``input_shape`` is the full NCHW example shape (None: the zoo model's, batch 1); ``batches`` the batch sizes
    of the fp32 parity check; ``precisions`` the ONNX Runtime bundles to build (empty: stop after parity);
    ``calibration`` the int8 calibration options (``attnx.calibration.config``); ``iterations`` the timed runs
    per backend at batch 1, one thread. ``on_stage`` receives the :class:`ExportStage`, the :class:`ParityStage`,
    each :class:`BundleStage`, the list of all of them, and the :class:`BenchResult`, in that order.

    Raises UserError for bad input (unknown target, precision or model; a shape the model rejects). A failed
    parity check is not an error: it is in the result (``passed``), and the stages after it do not run.
    """
    check_targets(target, precisions)
    emit = on_stage or (lambda _stage: None)
    say = progress or (lambda _message: None)

    say(f"[1/3] building {model}...")
    prepared = prepare_model(model, config=config, weights=weights)
    options = export_options(prepared, input_shape, dynamic_hw=dynamic_hw, opset=opset, exporter=exporter,
                             attention=attention)  # fmt: skip
    onnx_path = output_dir / "model.onnx"
    export = _export(prepared, onnx_path, options, target, plugins, say)
    emit(export)

    say("[3/3] parity: PyTorch vs ONNX Runtime...")
    # the user's shape (with batch 1 where it was given) is checked as given; else the parity default shapes
    parity = _parity(prepared, onnx_path, output_dir, batches, seed, options.input_shape if input_shape else None)
    emit(parity)
    result = PipelineResult(model=model, output_dir=output_dir, export=export, parity=parity)
    if not parity.passed or not precisions:
        return result

    for precision in precisions:
        say(f"[4/5] building the {precision} bundle...")
        stage = _bundle(prepared, onnx_path, output_dir, precision, calibration or {}, weights, seed,
                        options.input_shape, model)  # fmt: skip
        result.bundles.append(stage)
        emit(stage)
    emit(result.bundles)
    scored = [b.accuracy.to_dict() for b in result.bundles if b.accuracy is not None]
    if scored:
        result.accuracy_path = output_dir / "accuracy.json"
        write_json(result.accuracy_path, {"dataset": "digits test split", "results": scored})

    say("[5/5] benchmark: PyTorch eager vs the bundles, interleaved...")
    result.bench = _bench(prepared, [b.bundle for b in result.bundles], model, weights, iterations,
                          options.input_shape, output_dir)  # fmt: skip
    emit(result.bench)
    return result


def _export(prepared: PreparedModel, onnx_path: Path, options: ExportOptions, target: str, plugins: str,
            say: Callable[[str], None]) -> ExportStage:  # fmt: skip
    """Stages 1–2: the fp32 ONNX and its op report for ``target``."""
    say(f"[2/3] exporting {prepared.spec} (opset {options.opset}, {options.exporter})...")
    result, report = export_model(prepared, onnx_path, options, target=target, plugins=plugins)
    return ExportStage(result=result, report=report, report_path=report_path(onnx_path), options=options)


def _parity(prepared: PreparedModel, onnx_path: Path, output_dir: Path, batches: Sequence[int], seed: int,
            input_shape: tuple[int, ...] | None) -> ParityStage:  # fmt: skip
    """Stage 3: PyTorch vs ONNX Runtime under the fp32 policy, written to ``parity.json``."""
    report = run_parity(prepared, onnx_path, policy("fp32"), batches=list(batches), seed=seed,
                        input_shape=input_shape)  # fmt: skip
    path = output_dir / "parity.json"
    write_json(path, report.to_dict())
    return ParityStage(report=report, onnx_path=onnx_path, path=path)


def _bundle(prepared: PreparedModel, onnx_path: Path, output_dir: Path, precision: str, calibration: dict[str, Any],
            weights: Path | None, seed: int, input_shape: tuple[int, ...], model: str) -> BundleStage:  # fmt: skip
    """Stage 4 (and 5 for a classifier with trained weights): an ONNX Runtime bundle of ``precision`` in
    ``bundles/<precision>/``, its parity, and its top-1 on the digits test split."""
    options = BuildOptions(backend="ort", precision=precision, calibration=calibration, seed=seed,
                           input_shape=input_shape)  # fmt: skip
    built = build_bundle(str(onnx_path), output_dir / "bundles" / precision, options, model_spec=model,
                         config=prepared.config, weights=weights)  # fmt: skip
    stage = BundleStage(precision=precision, bundle=built.bundle, parity=built.parity)
    if weights is not None and prepared.entry is not None and prepared.entry.task == "classification":
        acc = evaluate_bundle(built.bundle, allow_failed_parity=True)  # a failed parity is in the stage's result
        stage.accuracy = BundleAccuracy(precision=precision, top1=acc.top1, correct=acc.correct, samples=acc.samples)
    return stage


def _bench(prepared: PreparedModel, bundles: list[Path], model: str, weights: Path | None, iterations: int,
           input_shape: tuple[int, ...], output_dir: Path) -> BenchResult:  # fmt: skip
    """Stage 6: PyTorch eager and every bundle at batch 1, one thread, interleaved; ``bench.json`` and ``bench.md``."""
    bench = run_bench(bundles, model, BenchOptions(batches=(1,), iterations=iterations, threads=1,
                                                   input_shape=input_shape),
                      config=prepared.config, weights=weights, allow_failed_parity=True)  # fmt: skip
    write_json(output_dir / "bench.json", bench.to_dict())
    write_text(output_dir / "bench.md", markdown_summary([bench]))
    return bench
