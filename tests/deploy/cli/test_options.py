"""The shared option groups: ``export`` and ``run`` read one definition of their export options."""

import dataclasses
import inspect

import pytest
import typer.main

from attnx.core.errors import UserError
from attnx.deploy.cli import options as opt
from attnx.deploy.cli.main import app
from tests.helpers import invoke

GROUP = [f.name for f in dataclasses.fields(opt.ExportChoices)]


def _params(command: str) -> dict:
    """The click parameters of ``attnx COMMAND``, by name."""
    return {p.name: p for p in typer.main.get_command(app).commands[command].params}


def _described(param) -> tuple:
    return (param.opts, param.secondary_opts, param.default, param.help, param.rich_help_panel, param.is_flag)


def test_export_and_run_show_the_same_export_options():
    export, run = _params("export"), _params("run")
    assert set(GROUP) <= export.keys() & run.keys()
    assert "choices" not in export and "choices" not in run  # the group's parameter is replaced by its options
    for name in GROUP:
        assert _described(export[name]) == _described(run[name]), name
    assert export["opset"].default == 17 and export["plugins"].default == "none"


def test_the_group_is_keyword_arguments_of_the_pipeline():
    from attnx.deploy.apis.run import run_pipeline

    choices = opt.ExportChoices(input_shape="1x3x16x16", dynamic_hw=True, opset=18, exporter="auto", target="ort",
                                plugins="none", attention="auto")  # fmt: skip
    kwargs = choices.pipeline_kwargs()
    assert set(kwargs) == set(GROUP) and set(kwargs) <= set(inspect.signature(run_pipeline).parameters)
    assert kwargs["input_shape"] == (1, 3, 16, 16) and kwargs["opset"] == 18


def test_a_command_receives_the_group_as_one_value(monkeypatch):
    import attnx.deploy.apis.pipeline as pipeline
    import attnx.deploy.apis.run as apis_run

    seen = {}

    def stop(target, precisions):
        seen["target"] = target
        raise UserError("stopped before the export")

    monkeypatch.setattr(apis_run, "check_targets", stop)
    monkeypatch.setattr(pipeline, "prepare_model", lambda *a, **k: pytest.fail("exported"))
    result = invoke("export", "se_resnet", "-o", "unused.onnx", "--target", "trt10")
    assert result.exit_code == 2 and seen == {"target": "trt10"}


def test_a_field_named_like_a_parameter_is_refused():
    def command(opset: int = 17, *, choices: opt.ExportChoices) -> None:
        """A command declaring --opset itself."""

    with pytest.raises(TypeError, match="opset also in ExportChoices"):
        opt.with_group(opt.ExportChoices)(command)
