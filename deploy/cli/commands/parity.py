"""``attnx parity``: a backend against its reference (PyTorch, or the fp32 ONNX), on the same inputs."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import typer

from attnx.core.errors import UserError
from attnx.core.files import write_json
from attnx.core.tempdirs import mkdtemp, sweep_build_leftovers
from attnx.deploy.cli import options as opt
from attnx.deploy.cli.console import console, err_console, escape_markup
from attnx.deploy.cli.junit import write_junit


def parity(
    target: str = typer.Argument(..., help="a model spec (exported on the fly), an .onnx file, or a bundle folder"),
    model: str = opt.REFERENCE_MODEL,
    config: str = opt.MODEL_CONFIG,
    weights: Path = opt.WEIGHTS,
    batch: str = opt.batches("1,3", "each one compared, through the dynamic batch axis"),
    input_shape: str = opt.INPUT_SHAPE,
    inputs: Path = typer.Option(None, "--inputs", help=".npy or .npz inputs instead of seeded random ones"),
    seed: int = opt.SEED,
    seeded: bool = typer.Option(
        False, "--seeded", help="bundle: seeded random inputs instead of the held-out samples its build checked on"
    ),
    precision: str = opt.precision(None, "fp32, fp16, int8; unset: a bundle's own, else fp32"),
    atol: float = typer.Option(None, "--atol", help="override the policy's absolute tolerance"),
    rtol: float = typer.Option(None, "--rtol", help="override the policy's relative tolerance"),
    min_cosine: float = typer.Option(None, "--min-cosine", help="override the policy's cosine floor"),
    error_stat: str = typer.Option(
        None, "--check-error-stat", help="apply atol/rtol to a statistic: elemwise, max, mean, median, quantile"
    ),
    error_quantile: float = typer.Option(None, "--error-quantile", help="quantile for --check-error-stat quantile"),
    layerwise: bool = typer.Option(
        None, "--layerwise/--no-layerwise", help="search for the first divergent node (default: on failure)"
    ),
    save_io: Path = typer.Option(None, "--save-io", help="save inputs and both backends' outputs (.npz)"),
    load_io: Path = typer.Option(None, "--load-io", help="replay the inputs of a --save-io file"),
    opset: int = opt.OPSET,
    exporter: str = opt.EXPORTER,
    threads: int = opt.threads(None, "unset: the library's default (all cores)"),
    json_out: Path = opt.json_out("the parity report"),
    junit: Path = opt.JUNIT,
) -> None:
    """Compare a backend with its reference (PyTorch, or the fp32 ONNX) on the same inputs, output by output.

    A model spec or .onnx file: PyTorch vs ONNX Runtime. A bundle: its engine vs PyTorch when the model can be
    rebuilt here, else vs its fp32 ONNX in ONNX Runtime.
    """
    # parity and apis import numpy (torch once a model is built), the manifest its schema: loaded when the
    # command runs, so `attnx --help` stays instant
    from attnx.deploy.bundle.manifest import load_manifest, parity_failed
    from attnx.deploy.parity.compare import POLICIES, policy
    from attnx.deploy.parity.metrics import ERROR_STATS
    from attnx.deploy.parity.saved_io import load_io as read_io
    from attnx.deploy.parity.saved_io import save_io as write_io

    if precision is not None:
        policy(precision)
    overrides = {"atol": atol, "rtol": rtol, "min_cosine": min_cosine, "error_stat": error_stat,
                 "error_quantile": error_quantile}  # fmt: skip
    if error_stat is not None and error_stat not in ERROR_STATS:
        raise UserError(f"unknown --check-error-stat '{error_stat}': choose one of {', '.join(ERROR_STATS)}")
    batches = opt.parse_batches(batch)
    shape = opt.parse_shape(input_shape)
    saved_feeds = read_io(load_io).feeds() if load_io is not None else None
    io_cases: list = []  # every case's inputs and outputs: for --save-io and the layer-wise search
    path = Path(target)
    layer_args: dict[str, Any] = {}
    if path.is_dir():
        from attnx.deploy.apis.parity import run_bundle_parity

        manifest = load_manifest(path)
        if parity_failed(manifest):
            err_console.print(f"[yellow]note:[/] the parity check recorded when {path} was built FAILED; "
                              "checking it again here", highlight=False)  # fmt: skip
        tolerance = POLICIES[precision or manifest.precision].with_overrides(**overrides)
        notes: list[str] = []
        with console.status("comparing the bundle with its reference...") as status:
            report, reference_onnx = run_bundle_parity(
                path, tolerance, batches, shape, inputs, seed, threads,
                progress=lambda label: status.update(f"comparing {label}..."), io_cases=io_cases,
                saved_feeds=saved_feeds, model_spec=model, config=config, weights=weights, notes=notes,
                seeded=seeded,
            )  # fmt: skip
        for note in notes:
            err_console.print(f"[yellow]note:[/] {escape_markup(note)}", highlight=False)
        layer_args = {"bundle": path, "reference_onnx": reference_onnx, "torch_reference": report.reference == "torch",
                      "model_spec": model, "config": config, "weights": weights}  # fmt: skip
    elif target.endswith(".onnx") or path.is_file():
        from attnx.deploy.apis.pipeline import prepare_from_onnx

        tolerance = POLICIES[precision or "fp32"].with_overrides(**overrides)
        with console.status("building the PyTorch reference..."):
            prepared = prepare_from_onnx(path, model, config, weights)
        report = _parity(prepared, path, tolerance, precision or "fp32", batches, shape, inputs, seed, threads,
                         io_cases, saved_feeds)  # fmt: skip
        layer_args = {"onnx": path, "prepared": prepared}
    else:
        from attnx.deploy.apis.pipeline import export_model, prepare_model
        from attnx.deploy.apis.run import export_options

        if ("/" in target or "\\" in target) and ":" not in target:  # a path, not a model spec
            raise UserError(f"{target} not found: no bundle folder or .onnx file there (make one with `attnx "
                            "build` or `attnx export`), or give a model name (`attnx zoo` lists them)")  # fmt: skip
        tolerance = POLICIES[precision or "fp32"].with_overrides(**overrides)
        with console.status(f"building {target}..."):
            prepared = prepare_model(target, config=config, weights=weights)
            options = export_options(prepared, opt.parse_shape(input_shape), opset=opset, exporter=exporter)
        sweep_build_leftovers()
        tmp = mkdtemp("attnx-parity-")
        try:
            with console.status(f"exporting {target}..."):
                result, _ = export_model(prepared, tmp / "model.onnx", options)
            report = _parity(prepared, result.path, tolerance, precision or "fp32", batches, shape, inputs, seed,
                             threads, io_cases, saved_feeds)  # fmt: skip
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        layer_args = {"onnx": result.path, "cleanup": tmp, "prepared": prepared}
    lw = None
    try:
        if layerwise or (layerwise is None and not report.passed):
            lw = _layerwise(report, layer_args, io_cases, tolerance, threads)
    finally:
        if "cleanup" in layer_args:
            shutil.rmtree(layer_args["cleanup"], ignore_errors=True)
    if save_io:
        write_io(save_io, io_cases, {"model": report.model, "reference": report.reference,
                                     "candidate": report.candidate, "precision": report.precision})  # fmt: skip
    if junit:
        write_junit(junit, parity=[report], layerwise=[lw] if lw else [])
    _finish_parity(report, json_out, lw)


def _layerwise(report, layer_args: dict, io_cases, tolerance, threads):  # type: ignore[no-untyped-def]
    """First divergent node, on the first failing case's inputs (or the first case's).

    Against the true reference: where PyTorch is the reference, PyTorch module outputs against the ONNX tensors
    they map to (:mod:`attnx.deploy.parity.layerwise_torch`);
    a bundle's engine against its fp32 ONNX first, and PyTorch against that
    ONNX when the engine agrees with it while parity against PyTorch failed."""
    from attnx.deploy.apis.parity import layerwise_bundle
    from attnx.deploy.apis.pipeline import prepare_from_onnx
    from attnx.deploy.cli.tables import layerwise_table
    from attnx.deploy.parity.layerwise import layerwise_compare
    from attnx.deploy.parity.layerwise_torch import layerwise_torch

    case_index = next((i for i, c in enumerate(report.cases) if not c.passed), 0)
    feed = io_cases[case_index].inputs
    with console.status("layer-wise search..."):
        if "bundle" in layer_args:
            lw = layerwise_bundle(layer_args["bundle"], layer_args["reference_onnx"], feed, tolerance, threads=threads)
            if not report.passed and layer_args.get("torch_reference") and lw.first_divergence is None:
                prepared = prepare_from_onnx(layer_args["reference_onnx"], layer_args.get("model_spec"),
                                             layer_args.get("config"), layer_args.get("weights"))  # fmt: skip
                lw = layerwise_torch(prepared.model, layer_args["reference_onnx"], feed, tolerance,
                                     precision=report.precision, reference_label=f"PyTorch ({prepared.spec})",
                                     candidate_label=f"fp32 ONNX ({Path(layer_args['reference_onnx']).name})",
                                     threads=threads)  # fmt: skip
        elif layer_args.get("prepared") is not None and not report.passed:
            prepared = layer_args["prepared"]
            lw = layerwise_torch(prepared.model, layer_args["onnx"], feed, tolerance, precision=report.precision,
                                 reference_label=f"PyTorch ({prepared.spec})", threads=threads)  # fmt: skip
        else:
            # Parity passed (--layerwise asked for): compare the exported graph as written with the graph
            # ONNX Runtime optimises and runs: divergence there is ORT's rewrite, not the export.
            lw = layerwise_compare(layer_args["onnx"], layer_args["onnx"], feed, tolerance,
                                   candidate_optimize="all", threads=threads)  # fmt: skip
    if not report.passed and lw.passed:  # never "all tensors agree" while the outputs differ
        lw.outputs_agree = False
        lw.outputs_note = lw.outputs_note or f"parity of {report.candidate} against {report.reference} failed"
    console.print(layerwise_table(lw))
    return lw


def _parity(
    prepared, onnx_path, tolerance, precision, batches, shape, inputs, seed, threads, io_cases=None, saved_feeds=None
):  # type: ignore[no-untyped-def]
    from attnx.deploy.apis.pipeline import run_parity

    with console.status("comparing...") as status:
        return run_parity(
            prepared, onnx_path, tolerance, precision=precision, batches=batches, input_shape=shape,
            inputs_file=inputs, seed=seed, threads=threads,
            progress=lambda label: status.update(f"comparing {label}..."), io_cases=io_cases,
            saved_feeds=saved_feeds,
        )  # fmt: skip


def _finish_parity(report, json_out: Path | None, lw=None) -> None:  # type: ignore[no-untyped-def]
    """The parity table, the JSON report (with the layer-wise search), and exit 1 on failure."""
    from attnx.deploy.cli.tables import parity_table

    console.print(parity_table(report))
    if json_out:
        data = report.to_dict()
        if lw is not None:
            data["layerwise"] = lw.to_dict()
        write_json(json_out, data)
    if not report.passed:
        err_console.print(f"[bold red]parity FAILED[/] for {report.model} under the {report.precision} policy")
        raise typer.Exit(1)
    console.print(f"[green]parity passed[/] for {report.model} under the {report.precision} policy")
