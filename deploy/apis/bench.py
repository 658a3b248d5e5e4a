"""``attnx bench``: the model and bundles to time, resolved; the timing itself is ``attnx.deploy.bench.measure``.

:func:`run_bench` checks the bundles (their manifests and recorded parity), decides which model they come
from, prepares PyTorch eager as the reference (``attnx.deploy.apis.pipeline.prepare_model``) and hands both to
:func:`~attnx.deploy.bench.measure.bench_side_by_side`, with a fresh fp32 export to count FLOPs on when no
bundle gives a graph.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from attnx.core.errors import UserError, shown
from attnx.deploy.apis.pipeline import PreparedModel, export_model, prepare_model
from attnx.deploy.bench.measure import BenchOptions, BenchResult, TorchReference, bench_side_by_side
from attnx.deploy.bundle.manifest import Manifest, check_recorded_parity, load_manifest


def run_bench(
    bundles: Sequence[str | Path] = (),
    model: str | None = None,
    options: BenchOptions | None = None,
    *,
    config: str | None = None,
    weights: Path | None = None,
    torch_reference: bool = True,
    progress: Callable[[str], None] | None = None,
    allow_failed_parity: bool = False,
) -> BenchResult:
    """Benchmark PyTorch eager (unless ``torch_reference`` is False) and each bundle, side by side.

    ``model`` defaults to the model the bundles were built from, when that is a zoo model (a name read
    from a manifest never imports code: pass ``model`` for any other). All bundles must come from one model.
    Bundles whose build-time parity failed are refused unless ``allow_failed_parity``.
    """
    options = options or BenchOptions()
    options.validate()
    if not bundles and model is None:
        raise UserError("nothing to benchmark: give a model, bundles, or both")
    if not bundles and not torch_reference:
        raise UserError("nothing to benchmark: --no-torch leaves no backend when no bundle is given")
    manifests = [load_manifest(Path(b)) for b in bundles]
    for b, m in zip(bundles, manifests):  # before any engine or model is built
        check_recorded_parity(Path(b), m, allow_failed_parity, quiet=True)  # Engine.load warns
    spec = model or _bundle_model(bundles, manifests)
    if spec is None and torch_reference:
        raise UserError("the bundles do not name their model: pass --model, or --no-torch to time the engines only")
    if model is None and spec is not None and torch_reference:
        from attnx.exporters.registry import is_zoo_name

        if not is_zoo_name(spec):
            named = shown(spec, 120)
            raise UserError(f"the bundles name model '{named}', which is not a zoo model; attnx never imports code "
                            f"named by a file: pass --model {named} if you trust it, or --no-torch to time the "
                            "engines only")  # fmt: skip
    reference = None
    if torch_reference or not manifests:
        if spec is None:
            raise UserError("nothing to benchmark: give a model or a bundle")
        reference = torch_reference_of(prepare_model(spec, config=config, weights=weights))
    return bench_side_by_side(bundles, manifests, options, model=spec or "?", reference=reference,
                              progress=progress, allow_failed_parity=allow_failed_parity)  # fmt: skip


def torch_reference_of(prepared: PreparedModel) -> TorchReference:
    """``prepared`` as a benchmark's PyTorch reference; exported afresh (fp32, dynamic batch) when FLOPs need a
    graph and no bundle gives one."""

    def export_onnx(path: Path, sample_shape: tuple[int, ...]) -> Path:
        from attnx.exporters.export import ExportOptions

        result, _ = export_model(prepared, path, ExportOptions(input_shape=(1, *sample_shape), dynamic_batch=True))
        return result.path

    return TorchReference(prepared.model, prepared.spec, prepared.sample_shape, export_onnx)


def _bundle_model(bundles: Sequence[str | Path], manifests: list[Manifest]) -> str | None:
    """The model the bundles name (None: none does). Raises UserError when they come from different models."""
    models = {str(m.source.get("model")) for m in manifests if m.source.get("model")}
    if len(models) > 1:
        listing = ", ".join(f"{Path(b).name}: {m.source.get('model')}" for b, m in zip(bundles, manifests))
        raise UserError(f"the bundles come from different models ({listing}): benchmark one model at a time")
    hashes = {m.source.get("fp32_onnx_sha256") for m in manifests if m.source.get("fp32_onnx_sha256")}
    if len(hashes) > 1 and not models:
        raise UserError("the bundles were built from different ONNX files: benchmark one model at a time")
    return next(iter(models), None)
