"""The ``attnx`` command line. Heavy libraries (torch, onnx, onnxruntime) load inside commands only,
so ``attnx --help`` is instant.

Exit codes: 0 success, 1 a parity failure, 2 bad input (one line on stderr naming the problem and the fix).
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.console import Console
from typer.core import TyperGroup

from attnx.core.errors import UserError


class _AttnxGroup(TyperGroup):
    """Turns a UserError from any command into one line on stderr and exit code 2; so too an OSError the user
    can fix (disk full, permissions, a file in the way: attnx.core.errors.os_error_message) and ONNX / ONNX Runtime
    refusing a model or its inputs. Anything else is a bug in attnx and keeps its traceback."""

    def invoke(self, ctx: typer.Context):  # type: ignore[no-untyped-def]
        try:
            return super().invoke(ctx)
        except UserError as exc:
            _error_line(str(exc))
        except OSError as exc:  # disk full, permissions, a file where a folder must be: the user's to fix
            from attnx.core.errors import os_error_message

            message = os_error_message(exc)
            if message is None:
                raise
            _error_line(message)
        except Exception as exc:  # ONNX / ONNX Runtime refusing a model or its inputs; attnx bugs stay tracebacks
            from attnx.core.errors import library_error_message

            message = library_error_message(exc)
            if message is None:
                raise
            _error_line(message)


def _error_line(message: str) -> None:
    """One line on stderr and exit code 2."""
    # messages quote names read from files: print them, never style them
    err_console.print(f"[bold red]error:[/] {escape_markup(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(2) from None


err_console = Console(stderr=True)
app = typer.Typer(
    name="attnx",
    cls=_AttnxGroup,
    help="Export attention-augmented vision models to ONNX / ONNX Runtime / TensorRT and prove parity.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(width=None if sys.stdout.isatty() else 150)  # piped tables keep their columns

TARGET_HELP = "deployment target for the op report: ort, trt8.6, trt10, trt11"


def escape_markup(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def _shape(text: str | None) -> tuple[int, ...] | None:
    from attnx.deploy.parity.inputs import parse_shape

    return parse_shape(text) if text else None


def _calibration(calib: list[str] | None, cpu_target: str) -> dict:
    """``--calib KEY=VALUE`` items plus ``--cpu-target`` as one calibration options dict."""
    from attnx.calibration.config import parse_cli_options

    options = parse_cli_options(calib or [])
    options.setdefault("cpu_target", cpu_target)
    return options


def _calibration_shape(calibration: dict, input_shape: str | None) -> None:
    """``--input-shape`` is enough: it is the calibration's input_shape too (a graph with dynamic H/W needs one),
    unless ``--calib input_shape=...`` says otherwise."""
    if input_shape and calibration.get("input_shape") is None:
        shape = _shape(input_shape)
        if shape is not None and len(shape) == 4:
            calibration["input_shape"] = "x".join(map(str, shape[1:]))


def _brief_source(source: str) -> str:
    """A parity report's input source for a table cell: whole words, the split kept (never cut mid-phrase)."""
    if source.startswith("held-out samples recorded by the build: "):
        rest = source.removeprefix("held-out samples recorded by the build: ")
        what = rest.split(" (")[0]  # e.g. "scikit-learn digits, test split"
        count = rest.rsplit(", ", 1)[-1] if rest.rstrip().endswith("samples") else ""
        return f"held-out: {what}" + (f", {count}" if count else "")
    return source


def _batches(text: str) -> list[int]:
    try:
        values = [int(b) for b in text.split(",") if b.strip()]
    except ValueError:
        raise UserError(f"bad --batch '{text}': give batch sizes like 1,3") from None
    if not values or min(values) < 1:
        raise UserError(f"bad --batch '{text}': batch sizes must be positive integers, like 1,3")
    return values


@app.command()
def zoo(
    config: str = typer.Option(None, help="show this config of each model that has it (e.g. resnet50)"),
    cost: bool = typer.Option(True, "--cost/--no-cost", help="count parameters and MACs (builds each model)"),
    json_out: Path = typer.Option(None, "--json", help="also write the listing as JSON"),
    markdown: bool = typer.Option(False, "--markdown", help="print a Markdown table instead"),
    long: bool = typer.Option(False, "--long", help="add the paper and the description"),
) -> None:
    """List the zoo's models, with parameters and multiply-accumulates."""
    from rich.table import Table

    from attnx.exporters.registry import zoo as zoo_entries

    rows = []
    entries = zoo_entries()
    with console.status("counting parameters and MACs...") if cost else _nullcontext():
        for entry in entries.values():
            cfg = config if config in entry.configs else entry.configs[0]
            if config and config not in entry.configs:
                continue
            row = {
                "name": entry.name, "task": entry.task, "family": entry.family, "config": cfg,
                "configs": list(entry.configs), "input": "x".join(map(str, entry.input_shape_for(cfg))),
                "dynamic_hw": entry.dynamic_hw, "paper": entry.paper, "description": entry.description,
            }  # fmt: skip
            if cost:
                from attnx.exporters.flops import count_macs, count_params

                model = entry.build(cfg)
                row["params_m"] = count_params(model) / 1e6
                row["gmacs"] = count_macs(model, (1, *entry.input_shape_for(cfg))) / 1e9
                if cfg in entry.paper_figures:
                    fig = entry.paper_figures[cfg]
                    row["paper_params_m"], row["paper_gmacs"] = fig.params_m, fig.gmacs
            rows.append(row)
    if not rows:
        raise UserError(f"no zoo model has config '{config}'")
    columns = ["name", "task", "family", "config", "input", "params (M)", "GMACs"]
    columns += ["paper", "description"] if long else []
    lines = []
    for r in rows:
        params = f"{r['params_m']:.3f}" if "params_m" in r else "–"
        macs = f"{r['gmacs']:.4f}" if "gmacs" in r else "–"
        if "paper_params_m" in r:
            params += f" (paper {r['paper_params_m']})"
            macs += f" (paper {r['paper_gmacs']})"
        cells = [r["name"], r["task"], r["family"], r["config"], r["input"], params, macs]
        lines.append(cells + ([r["paper"], r["description"]] if long else []))
    if markdown:
        print("| " + " | ".join(columns) + " |")
        print("|" + "---|" * len(columns))
        for cells in lines:
            print("| " + " | ".join(cells) + " |")
    else:
        table = Table(title=f"attnx zoo ({len(rows)} models)")
        for col in columns:
            table.add_column(col, overflow="fold")
        for cells in lines:
            table.add_row(*cells)
        console.print(table)
    if json_out:
        from attnx.core.files import write_json

        write_json(json_out, {"models": rows})


class _nullcontext:
    def __enter__(self) -> None: ...
    def __exit__(self, *a: object) -> None: ...


def _export_options(
    prepared, input_shape, batch, dynamic_batch, dynamic_hw, opset, exporter, simplify
):  # type: ignore[no-untyped-def]
    from attnx.deploy.apis.pipeline import full_input_shape
    from attnx.exporters.export import ExportOptions

    return ExportOptions(
        input_shape=full_input_shape(prepared, _shape(input_shape), batch=batch),
        dynamic_batch=dynamic_batch, dynamic_hw=dynamic_hw, opset=opset, exporter=exporter, simplify=simplify,
    )  # fmt: skip


# Options shared by export, parity and run.
MODEL_CONFIG = typer.Option(None, "--config", help="zoo model size config (see `attnx zoo`); default: tiny")
WEIGHTS = typer.Option(None, "--weights", help="checkpoint: .safetensors, or a torch.save'd state dict")
NUM_CLASSES = typer.Option(None, "--num-classes", help="override the model's number of classes")
INPUT_SHAPE = typer.Option(None, "--input-shape", help="example input NxCxHxW; default: the zoo model's")
DYNAMIC_BATCH = typer.Option(True, "--dynamic-batch/--static-batch", help="export a dynamic batch axis")
DYNAMIC_HW = typer.Option(False, "--dynamic-hw", help="also make height and width dynamic")
CPU_TARGET = typer.Option(
    "native", "--cpu-target", help="INT8 for which CPU: native (this one), portable (7-bit weights: every CPU), "
    "vnni (full 8-bit weights for VNNI/AMX/ARM CPUs); see `attnx cpu`"
)
OPSET = typer.Option(17, "--opset", help="ONNX opset, 16–23 (23: attention as one Attention node, see --attention)")
EXPORTER = typer.Option(
    "auto", "--exporter", help="auto (torchscript, then dynamo: the first whose graph matches PyTorch at every checked "
    "shape), torchscript or dynamo"
)
SIMPLIFY = typer.Option(True, "--simplify/--no-simplify", help="simplify the graph with onnxslim")
TARGET = typer.Option("ort", "--target", help=TARGET_HELP)
ATTENTION = typer.Option(
    "auto", "--attention", help="attention form: fused (one ONNX Attention node: opset 23, a target that imports "
    "it), decomposed (MatMul/Softmax/MatMul), auto (fused where the opset and the target allow it)"
)
PLUGINS = typer.Option(
    "none", "--plugins", help="attnx custom ops: none (standard ONNX), trt (custom nodes), auto (per op and target)"
)


@app.command()
def export(
    model: str = typer.Argument(..., help="zoo name, package.module:factory, timm:NAME or torchvision:NAME"),
    output: Path = typer.Option(..., "-o", "--output", help="the .onnx file to write"),
    config: str = MODEL_CONFIG,
    weights: Path = WEIGHTS,
    num_classes: int = NUM_CLASSES,
    input_shape: str = INPUT_SHAPE,
    dynamic_batch: bool = DYNAMIC_BATCH,
    dynamic_hw: bool = DYNAMIC_HW,
    opset: int = OPSET,
    exporter: str = EXPORTER,
    simplify: bool = SIMPLIFY,
    target: str = TARGET,
    plugins: str = PLUGINS,
    attention: str = ATTENTION,
) -> None:
    """Export a model to ONNX; check it, simplify it, and report its ops for a target."""
    from attnx.deploy.apis.pipeline import export_model, prepare_model, report_path
    from attnx.deploy.cli.tables import op_table
    from attnx.exporters.trt_support import TARGETS

    if target not in TARGETS:  # checked before the (slow) export
        raise UserError(f"unknown target '{target}': choose one of {', '.join(TARGETS)}")
    with console.status(f"building {model}..."):
        prepared = prepare_model(model, config=config, weights=weights, num_classes=num_classes)
        options = _export_options(prepared, input_shape, 1, dynamic_batch, dynamic_hw, opset, exporter, simplify)
        options.attention = attention
    with console.status(f"exporting {model} with the {exporter} exporter (opset {opset})..."):
        result, report = export_model(prepared, output, options, target=target, plugins=plugins)
    console.print(op_table(report))
    for note in report.notes:
        console.print(f"[yellow]note:[/] {note}")
    console.print(
        f"wrote {result.path} ({result.node_count} nodes, opset {result.opset}) and {report_path(result.path)}"
    )
    if report.blocking:
        console.print(f"[bold red]{target} cannot run:[/] {', '.join(r.op_type for r in report.blocking)}")


@app.command()
def parity(
    target: str = typer.Argument(..., help="a model spec (exported on the fly), an .onnx file, or a bundle folder"),
    model: str = typer.Option(
        None, "--model", help="the PyTorch reference (the file's own name is used only if it is a zoo model)"
    ),
    config: str = MODEL_CONFIG,
    weights: Path = WEIGHTS,
    batch: str = typer.Option("1,3", "--batch", help="batch sizes to compare, through the dynamic batch axis"),
    input_shape: str = INPUT_SHAPE,
    inputs: Path = typer.Option(None, "--inputs", help=".npy or .npz inputs instead of seeded random ones"),
    seed: int = typer.Option(0, "--seed", help="seed of the random inputs"),
    seeded: bool = typer.Option(
        False, "--seeded", help="bundle: seeded random inputs instead of the held-out samples its build checked on"
    ),
    precision: str = typer.Option(None, "--precision", help="tolerance policy fp32|fp16|int8 (bundle: its own)"),
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
    opset: int = OPSET,
    exporter: str = EXPORTER,
    threads: int = typer.Option(None, "--threads", help="ONNX Runtime intra-op threads (default: all cores)"),
    json_out: Path = typer.Option(None, "--json", help="write the parity report as JSON"),
    junit: Path = typer.Option(None, "--junit", help="write a JUnit XML report for CI systems"),
) -> None:
    """Compare a backend with its reference (PyTorch, or the fp32 ONNX) on the same inputs, output by output.

    A model spec or .onnx file: PyTorch vs ONNX Runtime. A bundle: its engine vs PyTorch when the model can be
    rebuilt here, else vs its fp32 ONNX in ONNX Runtime.
    """
    from attnx.deploy.parity.compare import POLICIES, policy

    if precision is not None:
        policy(precision)
    overrides = {"atol": atol, "rtol": rtol, "min_cosine": min_cosine, "error_stat": error_stat,
                 "error_quantile": error_quantile}  # fmt: skip
    if error_stat is not None:
        from attnx.deploy.parity.metrics import ERROR_STATS

        if error_stat not in ERROR_STATS:
            raise UserError(f"unknown --check-error-stat '{error_stat}': choose one of {', '.join(ERROR_STATS)}")
    batches = _batches(batch)
    shape = _shape(input_shape)
    saved_feeds = None
    if load_io is not None:
        from attnx.deploy.parity.saved_io import load_io as read_io

        saved_feeds = read_io(load_io).feeds()
    io_cases: list = []  # every case's inputs and outputs: for --save-io and the layer-wise search
    path = Path(target)
    layer_args: dict = {}
    if path.is_dir():
        from attnx.deploy.apis.pipeline import run_bundle_parity
        from attnx.deploy.bundle.manifest import load_manifest, parity_failed

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
        import shutil

        from attnx.core.tempdirs import mkdtemp, sweep_build_leftovers
        from attnx.deploy.apis.pipeline import export_model, prepare_model

        if ("/" in target or "\\" in target) and ":" not in target:  # a path, not a model spec
            raise UserError(f"{target} not found: no bundle folder or .onnx file there (make one with `attnx "
                            "build` or `attnx export`), or give a model name (`attnx zoo` lists them)")  # fmt: skip
        tolerance = POLICIES[precision or "fp32"].with_overrides(**overrides)
        with console.status(f"building {target}..."):
            prepared = prepare_model(target, config=config, weights=weights)
            options = _export_options(prepared, input_shape, 1, True, False, opset, exporter, True)
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
            import shutil

            shutil.rmtree(layer_args["cleanup"], ignore_errors=True)
    if save_io:
        from attnx.deploy.parity.saved_io import save_io as write_io

        write_io(save_io, io_cases, {"model": report.model, "reference": report.reference,
                                           "candidate": report.candidate, "precision": report.precision})  # fmt: skip
    if junit:
        from attnx.deploy.cli.junit import write_junit

        write_junit(junit, parity=[report], layerwise=[lw] if lw else [])
    _finish_parity(report, json_out, lw)


def _layerwise(report, layer_args: dict, io_cases, tolerance, threads):  # type: ignore[no-untyped-def]
    """First divergent node, on the first failing case's inputs (or the first case's).

    Against the true reference: where PyTorch is the reference, PyTorch module outputs against the ONNX tensors
    they map to (:mod:`attnx.deploy.parity.layerwise_torch`);
    a bundle's engine against its fp32 ONNX first, and PyTorch against that
    ONNX when the engine agrees with it while parity against PyTorch failed."""
    from attnx.deploy.parity.layerwise import layerwise_bundle, layerwise_compare, layerwise_table
    from attnx.deploy.parity.layerwise_torch import layerwise_torch

    case_index = next((i for i, c in enumerate(report.cases) if not c.passed), 0)
    feed = io_cases[case_index].inputs
    with console.status("layer-wise search..."):
        if "bundle" in layer_args:
            lw = layerwise_bundle(layer_args["bundle"], layer_args["reference_onnx"], feed, tolerance, threads=threads)
            if not report.passed and layer_args.get("torch_reference") and lw.first_divergence is None:
                from attnx.deploy.apis.pipeline import prepare_from_onnx

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


def _parity(prepared, onnx_path, tolerance, precision, batches, shape, inputs, seed, threads, io_cases=None,
            saved_feeds=None):  # type: ignore[no-untyped-def]
    from attnx.deploy.apis.pipeline import run_parity

    with console.status("comparing...") as status:
        return run_parity(
            prepared, onnx_path, tolerance, precision=precision, batches=batches, input_shape=shape,
            inputs_file=inputs, seed=seed, threads=threads,
            progress=lambda label: status.update(f"comparing {label}..."), io_cases=io_cases,
            saved_feeds=saved_feeds,
        )  # fmt: skip


def _finish_parity(report, json_out: Path | None, lw=None) -> None:  # type: ignore[no-untyped-def]
    from attnx.core.files import write_json
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


@app.command()
def run(
    model: str = typer.Argument(..., help="zoo name, package.module:factory, timm:NAME or torchvision:NAME"),
    output_dir: Path = typer.Option(Path("attnx_out"), "-o", "--output-dir", help="folder for every artefact"),
    config: str = MODEL_CONFIG,
    weights: Path = WEIGHTS,
    input_shape: str = INPUT_SHAPE,
    dynamic_hw: bool = DYNAMIC_HW,
    opset: int = OPSET,
    exporter: str = EXPORTER,
    target: str = TARGET,
    plugins: str = PLUGINS,
    attention: str = ATTENTION,
    batch: str = typer.Option("1,3", "--batch", help="batch sizes for the parity check"),
    seed: int = typer.Option(0, "--seed", help="seed of the random parity inputs"),
    precisions: str = typer.Option(
        "fp32,int8", "--precisions", help="bundles to build, e.g. fp32,fp16,int8 ('' to stop after parity)"
    ),
    calib: list[str] = typer.Option(None, "--calib", help="calibration option KEY=VALUE for int8 (repeatable)"),
    cpu_target: str = CPU_TARGET,
    iterations: int = typer.Option(50, "--iterations", help="timed iterations per backend in the benchmark"),
) -> None:
    """The whole pipeline: export → op report → parity → bundles per precision → accuracy → benchmark.

    Every artefact lands in one folder: model.onnx, its op report, parity.json, bundles/<precision>/,
    accuracy.json (classifiers with --weights: top-1 on real digits images) and bench.json / bench.md.
    """
    from attnx.core.files import write_json
    from attnx.deploy.apis.pipeline import export_model, prepare_model, report_path, run_parity
    from attnx.deploy.cli.tables import op_table, parity_table
    from attnx.deploy.parity.compare import policy
    from attnx.exporters.trt_support import TARGETS

    if target not in TARGETS:
        raise UserError(f"unknown target '{target}': choose one of {', '.join(TARGETS)}")
    batches = _batches(batch)
    onnx_path = output_dir / "model.onnx"
    wanted = [p for p in precisions.split(",") if p]
    for p in wanted:
        if p not in ("fp32", "fp16", "int8"):
            raise UserError(f"unknown precision '{p}' in --precisions: choose from fp32, fp16, int8")
    calibration = _calibration(calib, cpu_target)
    _calibration_shape(calibration, input_shape)
    with console.status(f"[1/3] building {model}..."):
        prepared = prepare_model(model, config=config, weights=weights)
        options = _export_options(prepared, input_shape, 1, True, dynamic_hw, opset, exporter, True)
        options.attention = attention
    with console.status(f"[2/3] exporting {model} (opset {opset}, {exporter})..."):
        result, report = export_model(prepared, onnx_path, options, target=target, plugins=plugins)
    console.print(op_table(report))
    for note in report.notes:
        console.print(f"[yellow]note:[/] {note}")
    with console.status("[3/3] parity: PyTorch vs ONNX Runtime..."):
        parity_report = run_parity(prepared, onnx_path, policy("fp32"), batches=batches, seed=seed,
                                   input_shape=options.input_shape if input_shape else None)  # fmt: skip
    console.print(parity_table(parity_report))
    write_json(output_dir / "parity.json", parity_report.to_dict())
    console.print(f"artefacts: {onnx_path}, {report_path(onnx_path)}, {output_dir / 'parity.json'}")
    if not parity_report.passed:
        err_console.print(f"[bold red]parity FAILED[/] for {model}")
        raise typer.Exit(1)
    console.print(f"[green]{model}: exported and ONNX Runtime matches PyTorch[/] (fp32 policy)")
    if wanted:
        _run_bundles(model, prepared, onnx_path, output_dir, wanted, calibration, weights, iterations, seed,
                     options.input_shape)  # fmt: skip


def _run_bundles(model, prepared, onnx_path, output_dir, precisions, calibration, weights, iterations, seed,  # type: ignore[no-untyped-def]
                 input_shape=None):
    """The pipeline's second half: a bundle per precision, accuracy on real images, a side-by-side benchmark."""
    from rich.table import Table

    from attnx.core.files import write_json, write_text
    from attnx.deploy.apis.build import BuildOptions, build_bundle
    from attnx.deploy.bench.measure import BenchOptions, bench_table, markdown_summary, run_bench

    bundles, failed = [], []
    summary = Table(title=f"{model}: bundles (ONNX Runtime, CPU)")
    for col in ("precision", "parity", "inputs", "min cosine", "top-1 on digits"):
        summary.add_column(col)
    accuracy_rows = []
    for precision in precisions:
        with console.status(f"[4/5] building the {precision} bundle..."):
            options = BuildOptions(backend="ort", precision=precision, calibration=calibration, seed=seed,
                                   input_shape=input_shape)  # fmt: skip
            result = build_bundle(str(onnx_path), output_dir / "bundles" / precision, options, model_spec=model,
                                  config=prepared.config, weights=weights)  # fmt: skip
        bundles.append(result.bundle)
        outs = [o for c in result.parity.cases for o in c.outputs]
        top1 = "–"
        if weights is not None and prepared.entry is not None and prepared.entry.task == "classification":
            from attnx.deploy.accuracy import evaluate_bundle

            acc = evaluate_bundle(result.bundle, allow_failed_parity=True)  # a failure is reported below
            accuracy_rows.append({"precision": precision, "top1": acc.top1, "correct": acc.correct,
                                  "samples": acc.samples})  # fmt: skip
            top1 = f"{acc.top1:.2f}% ({acc.correct}/{acc.samples})"
        if not result.parity.passed:
            failed.append(precision)
        summary.add_row(precision, "[green]pass[/]" if result.parity.passed else "[bold red]FAIL[/]",
                        escape_markup(_brief_source(result.parity.input_source)), f"{min(o.cosine for o in outs):.6f}",
                        top1)  # fmt: skip
    console.print(summary)
    if accuracy_rows:
        write_json(output_dir / "accuracy.json", {"dataset": "digits test split", "results": accuracy_rows})
    with console.status("[5/5] benchmark: PyTorch eager vs the bundles, interleaved..."):
        bench = run_bench(bundles, model, BenchOptions(batches=(1,), iterations=iterations, threads=1,
                                                       input_shape=input_shape),
                          config=prepared.config, weights=weights, allow_failed_parity=True)  # fmt: skip
    console.print(bench_table(bench))
    write_json(output_dir / "bench.json", bench.to_dict())
    write_text(output_dir / "bench.md", markdown_summary([bench]))
    if failed:
        err_console.print(f"[bold red]bundles outside their parity policy:[/] {', '.join(failed)}")
        raise typer.Exit(1)


@app.command()
def build(
    model_or_onnx: str = typer.Argument(..., help="a model spec or an .onnx file (fp32)"),
    output: Path = typer.Option(..., "-o", "--output", help="the bundle folder to write"),
    backend: str = typer.Option(
        "auto", "--backend", help="auto (TensorRT if a GPU is usable, else ORT), ort, trt, openvino"
    ),
    precision: str = typer.Option(
        "fp32", "--precision", help="fp32, fp16, bf16 (OpenVINO), int8, or best (the fastest that passes parity)"
    ),
    model: str = typer.Option(
        None, "--model", help="the PyTorch reference (the file's own name is used only if it is a zoo model)"
    ),
    config: str = MODEL_CONFIG,
    weights: Path = WEIGHTS,
    input_shape: str = INPUT_SHAPE,
    max_batch: int = typer.Option(8, "--max-batch", help="largest batch the bundle accepts (TensorRT profile max)"),
    opset: int = OPSET,
    plugins: str = typer.Option("auto", "--plugins", help="attnx custom ops: none, trt, auto (per op and backend)"),
    seed: int = typer.Option(0, "--seed", help="seed of the parity inputs"),
    workspace_mib: int = typer.Option(None, "--workspace-mib", help="TensorRT: workspace memory-pool limit"),
    timing_cache: Path = typer.Option(None, "--timing-cache", help="TensorRT: timing cache to reuse and update"),
    opt_level: int = typer.Option(None, "--opt-level", help="TensorRT: builder optimization level 0–5"),
    version_compatible: bool = typer.Option(False, "--version-compatible", help="TensorRT: plan runs on later TRT"),
    hardware_compat: str = typer.Option(
        None, "--hardware-compat", help="TensorRT: none, ampere+ or same_compute_capability"
    ),
    plugin_library: list[Path] = typer.Option(None, "--plugin-library", help="TensorRT: plugin .so to load"),
    calib: list[str] = typer.Option(
        None, "--calib", help="calibration option KEY=VALUE (repeatable): source=digits|photos|synthetic|DIR|FILE, "
        "count, method=minmax|entropy|percentile, sensitivity=true, ... (see calibration/config.py)"
    ),
    cpu_target: str = CPU_TARGET,
) -> None:
    """Build a bundle: precision-baked ONNX → engine → parity against the fp32 reference → manifest."""
    from attnx.deploy.apis.build import BuildOptions, build_bundle
    from attnx.deploy.backends.tensorrt.builder import TrtBuildOptions
    from attnx.deploy.cli.tables import parity_table

    trt_options = {
        k: v
        for k, v in {
            "workspace_mib": workspace_mib, "timing_cache": timing_cache, "optimization_level": opt_level,
            "version_compatible": version_compatible or None, "hardware_compatibility": hardware_compat,
            "plugin_libraries": [str(p) for p in plugin_library] if plugin_library else None,
        }.items()
        if v is not None
    }  # fmt: skip
    TrtBuildOptions.from_dict(trt_options)  # bad values fail here, before any work
    calibration = _calibration(calib, cpu_target)
    _calibration_shape(calibration, input_shape)
    options = BuildOptions(
        backend=backend, precision=precision, input_shape=_shape(input_shape), max_batch=max_batch,
        opset=opset, plugins=plugins, seed=seed, trt=trt_options, calibration=calibration,
    )  # fmt: skip
    options.validate()
    with console.status(f"building a {precision} bundle of {model_or_onnx}..."):
        result = build_bundle(model_or_onnx, output, options, model_spec=model, config=config, weights=weights)
    for note in result.manifest.notes:
        console.print(f"[yellow]note:[/] {note}")
    if result.manifest.precision_plan:
        from attnx.calibration.precision import format_plan

        console.print(format_plan(result.manifest.precision_plan), highlight=False)
    console.print(parity_table(result.parity))
    selection = result.manifest.build.get("selection")
    if selection:
        from rich.table import Table

        table = Table(title="candidates, timed side by side (batch 1)", caption=selection["criterion"])
        for col in ("backend", "precision", "parity", "p50 ms", "mean ms", ""):
            table.add_column(col)
        for c in selection["candidates"]:
            chosen = (c["backend"], c["precision"]) == tuple(selection["chosen"].values())
            verdict = "build failed" if c.get("build_error") else "pass" if c["parity_passed"] else "FAIL"
            table.add_row(c["backend"], c["precision"], verdict,
                          f"{c['p50_ms']:.3f}" if c["p50_ms"] else "–", f"{c['mean_ms']:.3f}" if c["mean_ms"] else "–",
                          "[green]chosen[/]" if chosen else "")  # fmt: skip
        console.print(table)
        for note in selection["notes"]:
            console.print(f"[yellow]note:[/] {note}")
    console.print(f"wrote bundle {result.bundle} ({result.manifest.backend}, {result.manifest.precision})")
    if not result.parity.passed:
        err_console.print(f"[bold red]the built engine fails the {precision} parity policy[/] (bundle kept for study)")
        raise typer.Exit(1)


@app.command()
def bench(
    bundles: list[Path] = typer.Argument(None, help="bundle folders to time side by side"),
    model: str = typer.Option(None, "--model", help="the PyTorch reference (default: the bundles' model)"),
    config: str = MODEL_CONFIG,
    weights: Path = WEIGHTS,
    batch: str = typer.Option("1", "--batch", help="batch-size sweep, e.g. 1,4,8"),
    threads: int = typer.Option(1, "--threads", help="intra-op threads for every backend (0: library default)"),
    warmup: int = typer.Option(10, "--warmup", help="warm-up iterations per target and batch"),
    iterations: int = typer.Option(100, "--iterations", help="timed iterations per target and batch"),
    duration: float = typer.Option(None, "--duration", help="time each configuration for this many seconds"),
    no_torch: bool = typer.Option(False, "--no-torch", help="leave PyTorch eager out"),
    cuda_graph: bool = typer.Option(True, "--cuda-graph/--no-cuda-graph", help="TensorRT: replay CUDA graphs"),
    peak_gflops: float = typer.Option(None, "--peak-gflops", help="override the device's peak for the roofline"),
    input_shape: str = INPUT_SHAPE,
    json_out: Path = typer.Option(None, "--json", help="write the results as JSON"),
    markdown: Path = typer.Option(None, "--markdown", help="write a Markdown summary"),
    plot: Path = typer.Option(None, "--plot", help="write a PNG: latency distributions and speed-ups"),
    allow_failed_parity: bool = typer.Option(
        False, "--allow-failed-parity", help="run bundles whose build-time parity check failed (warns on each load)"
    ),
) -> None:
    """Time PyTorch eager and bundles side by side, interleaved, with percentiles and roofline context."""
    from attnx.core.files import write_json, write_text
    from attnx.deploy.bench.measure import BenchOptions, bench_table, markdown_summary, run_bench

    if not bundles and not model:
        raise UserError("give bundle folders to time (attnx build makes them), or --model for PyTorch alone")
    if iterations < 1 or warmup < 0:
        raise UserError("--iterations must be ≥ 1 and --warmup ≥ 0")
    options = BenchOptions(
        batches=tuple(_batches(batch)), warmup=warmup, iterations=iterations, duration_s=duration,
        threads=threads or None, cuda_graph=cuda_graph, input_shape=_shape(input_shape), peak_gflops=peak_gflops,
    )  # fmt: skip
    with console.status("benchmarking...") as status:
        result = run_bench(bundles or (), model, options, config=config, weights=weights,
                           torch_reference=not no_torch, progress=lambda s: status.update(s),
                           allow_failed_parity=allow_failed_parity)  # fmt: skip
    skipped = [n for n in result.notes if " skipped " in n]  # a batch a bundle cannot take
    if bundles and not [c for c in result.configs if c.target != result.reference]:
        raise UserError(f"no bundle was timed: {'; '.join(skipped) or 'no configuration ran'}")
    console.print(bench_table(result))
    for note in skipped:
        err_console.print(f"[yellow]note:[/] {escape_markup(note)}", highlight=False, soft_wrap=True)
    if json_out:
        write_json(json_out, result.to_dict())
    if markdown:
        write_text(markdown, markdown_summary([result]))
    if plot:
        from attnx.deploy.bench.plots import plot_bench

        plot_bench(result, plot)


@app.command()
def check(
    baseline: Path = typer.Option(..., "--baseline", help="the committed baseline JSON"),
    parity_files: list[Path] = typer.Option(None, "--parity", help="fresh `attnx parity --json` result(s)"),
    bench_file: Path = typer.Option(None, "--bench", help="fresh `attnx bench --json` result"),
    max_slowdown: float = typer.Option(0.15, "--max-slowdown", help="allowed latency growth vs the baseline"),
    stat: str = typer.Option("paired", "--stat", help="latency statistic: paired, p50, mean, p90, p95, p99, min"),
    update_baseline: bool = typer.Option(False, "--update-baseline", help="rewrite the baseline from this run"),
    junit: Path = typer.Option(None, "--junit", help="write a JUnit XML report"),
) -> None:
    """The CI gate: fail (exit 1) when accuracy leaves its policy or latency regresses against a baseline.

    Latency is judged as a ratio to the PyTorch reference measured in the same run, so a slower CI machine
    does not raise false alarms.
    """
    from attnx.deploy.apis.check import check_table, run_check

    if not parity_files and bench_file is None:
        raise UserError("give fresh results to check: --parity FILE (from attnx parity --json) and/or --bench FILE")
    result = run_check(baseline, parity_files or (), bench_file, max_slowdown=max_slowdown, stat=stat,
                       update=update_baseline)  # fmt: skip
    console.print(check_table(result))
    if junit:
        from attnx.deploy.cli.junit import write_junit

        write_junit(junit, check=result)
    if update_baseline:
        console.print(f"[green]baseline updated[/]: {baseline}")
        return
    if not result.passed:
        err_console.print("[bold red]check FAILED[/]: see the changes above")
        raise typer.Exit(1)
    console.print("[green]check passed[/]")


@app.command()
def precision(
    onnx_path: Path = typer.Argument(..., help="the fp32 .onnx model"),
    output: Path = typer.Option(..., "-o", "--output", help="the precision-baked .onnx to write"),
    precision: str = typer.Option(..., "--precision", help="fp16 or int8"),
    style: str = typer.Option("ort", "--style", help="Q/DQ layout: ort (u8/s8, fused by ORT) or trt (symmetric)"),
    calib: list[str] = typer.Option(None, "--calib", help="calibration option KEY=VALUE (repeatable)"),
    cpu_target: str = CPU_TARGET,
    input_shape: str = INPUT_SHAPE,
) -> None:
    """Bake a precision into an ONNX graph with attnx's attention-aware plan (printed, and saved beside it)."""
    import tempfile

    from attnx.calibration.precision import apply_precision, format_plan

    if precision not in ("fp16", "int8"):
        raise UserError(f"unknown --precision '{precision}': choose fp16 or int8")
    if style not in ("ort", "trt"):
        raise UserError(f"unknown --style '{style}': choose ort or trt")
    if not onnx_path.is_file():
        raise UserError(f"ONNX file not found: {onnx_path}")
    options = _calibration(calib, cpu_target)
    _calibration_shape(options, input_shape)
    with tempfile.TemporaryDirectory(prefix="attnx-precision-") as tmp, console.status(f"{precision}..."):
        result = apply_precision(onnx_path, precision, style=style, calibration=options, work_dir=Path(tmp))
        written = result.save(output)
    console.print(format_plan(result.plan), highlight=False)
    for note in result.notes:
        console.print(f"[yellow]note:[/] {note}")
    for role, path in written.items():
        console.print(f"wrote {role}: {path}")


@app.command()
def cpu(json_out: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """What this CPU's INT8 kernels can do (VNNI or saturating u8×s8 pair sums) and the recipe each target picks.

    ATTNX_CPU_FEATURES overrides the detection (e.g. ``avx2`` for AVX2 without VNNI); see deploy/cpu.py.
    """
    import json

    from attnx.core.cpu import CPU_TARGETS, detect, int8_recipe

    features = detect()
    recipes = {t: int8_recipe(t, features).to_dict() for t in CPU_TARGETS}
    if json_out:
        console.print_json(json.dumps({"cpu": features.to_dict(), "recipes": recipes}))
        return
    console.print(f"CPU: {features.describe()} (read from {features.source})", highlight=False)
    console.print(f"INT8 u8×s8 kernels: {features.int8_kernel}", highlight=False)
    for target, r in recipes.items():
        console.print(f"  --cpu-target {target}: {r['weight_bits']}-bit weights — {r['reason']}", highlight=False)


@app.command()
def accuracy(
    bundles: list[Path] = typer.Argument(..., help="classifier bundle folders"),
    dataset: str = typer.Option("digits", "--dataset", help="real test images: digits (scikit-learn)"),
    json_out: Path = typer.Option(None, "--json", help="write the results as JSON"),
    allow_failed_parity: bool = typer.Option(
        False, "--allow-failed-parity", help="run bundles whose build-time parity check failed (warns on each load)"
    ),
) -> None:
    """Top-1 accuracy of classifier bundles on real images (scikit-learn's digits test split)."""
    from rich.table import Table

    from attnx.deploy.accuracy import evaluate_bundle

    table = Table(title=f"top-1 on {dataset} (test split)")
    for col in ("bundle", "backend", "precision", "top-1 %", "correct"):
        table.add_column(col)
    rows = []
    for bundle in bundles:
        from attnx.deploy.bundle.manifest import load_manifest

        manifest = load_manifest(bundle)
        acc = evaluate_bundle(bundle, dataset, allow_failed_parity=allow_failed_parity)
        rows.append({"bundle": str(bundle), "backend": manifest.backend, "precision": manifest.precision,
                     "top1": acc.top1, "correct": acc.correct, "samples": acc.samples})  # fmt: skip
        table.add_row(str(bundle), manifest.backend, manifest.precision, f"{acc.top1:.2f}",
                      f"{acc.correct}/{acc.samples}")  # fmt: skip
    console.print(table)
    if json_out:
        from attnx.core.files import write_json

        write_json(json_out, {"dataset": dataset, "results": rows})


@app.command()
def serve(
    bundles: list[str] = typer.Argument(..., help="bundle folders, as PATH or NAME=PATH"),
    host: str = typer.Option("127.0.0.1", "--host", help="address to bind (loopback by default)"),
    port: int = typer.Option(8000, "--port", help="TCP port"),
    grpc_port: int = typer.Option(
        None, "--grpc-port", help="also serve KServe v2 over gRPC on this port (Triton's default: 8001; 0: any)"
    ),
    max_batch: int = typer.Option(8, "--max-batch", help="dynamic batching: most rows per engine run (1: off)"),
    max_delay_ms: float = typer.Option(1.0, "--max-delay-ms", help="dynamic batching: longest wait to fill a batch"),
    max_body_mb: float = typer.Option(64.0, "--max-body-mb", help="largest request body accepted"),
    pool_size: int = typer.Option(1, "--pool-size", help="engine sessions / contexts per model"),
    threads: int = typer.Option(None, "--threads", help="ONNX Runtime intra-op threads per session"),
    max_queue: int = typer.Option(1024, "--max-queue", help="queued requests per model before 503"),
    drain_timeout: float = typer.Option(30.0, "--drain-timeout", help="seconds to finish requests on shutdown"),
    max_header_kb: float = typer.Option(64.0, "--max-header-kb", help="largest request line + headers (else 431)"),
    max_json_values: int = typer.Option(
        1 << 21, "--max-json-values", help="most JSON values in one request (else 413; send big tensors as binary)"
    ),
    header_timeout: float = typer.Option(10.0, "--header-timeout", help="seconds to send a request's headers"),
    body_timeout: float = typer.Option(30.0, "--body-timeout", help="longest pause inside a request body (else 408)"),
    keep_alive_timeout: float = typer.Option(5.0, "--keep-alive-timeout", help="idle seconds between requests"),
    allow_failed_parity: bool = typer.Option(
        False, "--allow-failed-parity", help="run bundles whose build-time parity check failed (warns on each load)"
    ),
) -> None:
    """Serve bundles over HTTP (and gRPC) with the KServe v2 / Open Inference Protocol (JSON and binary tensors)."""
    from attnx.deploy.serving.cli import serve as run_server

    run_server(bundles, host=host, port=port, max_batch=max_batch, max_delay_ms=max_delay_ms,
               max_body_mb=max_body_mb, pool_size=pool_size, threads=threads, max_queue=max_queue,
               drain_timeout_s=drain_timeout, allow_failed_parity=allow_failed_parity,
               max_header_kb=max_header_kb, max_json_values=max_json_values, header_timeout_s=header_timeout,
               body_timeout_s=body_timeout, keep_alive_s=keep_alive_timeout, grpc_port=grpc_port)  # fmt: skip


@app.command("triton-repo")
def triton_repo(
    bundles: list[str] = typer.Argument(..., help="bundle folders, as PATH or NAME=PATH"),
    output: Path = typer.Option(..., "-o", "--output", help="the model repository folder"),
    max_batch: int = typer.Option(None, "--max-batch", help="max_batch_size (default: the bundle's)"),
    max_delay_us: int = typer.Option(100, "--max-delay-us", help="dynamic_batching max_queue_delay_microseconds"),
    instances: int = typer.Option(1, "--instances", help="instance_group count"),
    instance_kind: str = typer.Option("auto", "--instance-kind", help="auto, cpu or gpu"),
    force: bool = typer.Option(False, "--force", help="replace models already in the repository"),
    check_configs: bool = typer.Option(True, "--check/--no-check", help="parse configs with Triton's schema"),
    allow_failed_parity: bool = typer.Option(
        False, "--allow-failed-parity", help="run bundles whose build-time parity check failed (warns on each load)"
    ),
) -> None:
    """Write a Triton Inference Server model repository (config.pbtxt + versioned model file) from bundles."""
    from attnx.deploy.serving.cli import triton_repo as write_repo

    written = write_repo(bundles, output, max_batch=max_batch, max_delay_us=max_delay_us, instances=instances,
                         instance_kind=instance_kind, force=force, check=check_configs,
                         allow_failed_parity=allow_failed_parity)  # fmt: skip
    for path in written:
        console.print(f"wrote {path}")


@app.command("k8s")
def k8s(
    bundles: list[str] = typer.Argument(..., help="bundle folders, as PATH or NAME=PATH"),
    output: Path = typer.Option(..., "-o", "--output", help="the folder for the manifests"),
    storage_uri: str = typer.Option(
        "pvc://attnx-models", "--storage-uri", help="where DIR/triton and DIR/bundles are uploaded (s3://, gs://...)"
    ),
    triton_version: str = typer.Option("24.08", "--triton-version", help="Triton container release (YY.MM)"),
    triton_tensorrt: str = typer.Option(
        None, "--triton-tensorrt", help="that release's TensorRT, when attnx's table does not know it"
    ),
    image: str = typer.Option(None, "--image", help="the attnx runtime image (default attnx-serve:VERSION)"),
    namespace: str = typer.Option(None, "--namespace", help="Kubernetes namespace"),
    min_replicas: int = typer.Option(1, "--min-replicas", help="fewest replicas (0: scale to zero)"),
    max_replicas: int = typer.Option(4, "--max-replicas", help="most replicas"),
    target_concurrency: int = typer.Option(
        None, "--target-concurrency", help="in-flight requests per replica to scale at (default max-batch × pool)"
    ),
    max_batch: int = typer.Option(8, "--max-batch", help="attnx runtime: dynamic batching, most rows per run"),
    max_delay_ms: float = typer.Option(1.0, "--max-delay-ms", help="attnx runtime: longest wait to fill a batch"),
    pool_size: int = typer.Option(1, "--pool-size", help="attnx runtime: engine sessions per replica"),
    threads: int = typer.Option(1, "--threads", help="attnx runtime: intra-op threads per session"),
    measure: bool = typer.Option(True, "--measure/--no-measure", help="load each bundle to measure its memory"),
    force: bool = typer.Option(False, "--force", help="write into a folder that is not empty"),
    allow_failed_parity: bool = typer.Option(
        False, "--allow-failed-parity", help="deploy bundles whose build-time parity check failed"
    ),
) -> None:
    """KServe manifests: an InferenceService per bundle on Triton, and on `attnx serve` as a custom CPU runtime."""
    from attnx.deploy.serving.k8s import write_manifests

    written = write_manifests(
        bundles, output, storage_uri=storage_uri, triton_version=triton_version, triton_tensorrt=triton_tensorrt,
        image=image, namespace=namespace, min_replicas=min_replicas, max_replicas=max_replicas,
        target_concurrency=target_concurrency, max_batch=max_batch, max_delay_ms=max_delay_ms, pool_size=pool_size,
        threads=threads, measure=measure, force=force, allow_failed_parity=allow_failed_parity,
    )  # fmt: skip
    for w in written:
        m = w.memory
        console.print(f"{w.name} ({w.backend}): memory {m.method}, process peak "
                      f"{m.process_peak_bytes / 2**20:.0f} MiB, "
                      f"bundle {m.bundle_bytes / 2**20:.0f} MiB", highlight=False)  # fmt: skip
        for f in w.files:
            console.print(f"  wrote {f}", highlight=False)
    console.print(f"{output / 'README.md'}: what to upload and apply", highlight=False)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
