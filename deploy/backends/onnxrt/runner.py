"""ONNX Runtime: the embedded default backend (CPU execution provider unless told otherwise)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from attnx.core.errors import UserError
from attnx.deploy.backends.base import Runner, TensorSpec

_ORT_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(bool)": np.bool_,
}


def uses_custom_domain(model_path: Path, domain: str = "attnx") -> bool:
    import onnx

    model = onnx.load(str(model_path), load_external_data=False)
    return any(node.domain == domain for node in model.graph.node)


def _cpu_form(path: Path) -> tuple[Any, dict[str, str]]:
    """An INT8 file as this CPU must run it (TensorRT layout as fake-quant bytes; U8U8 settings), else the path."""
    import onnx

    from attnx.calibration.int8_numerics import cpu_form, has_integer_ops

    try:
        model = onnx.load(str(path), load_external_data=False)  # the graph first: most models are float
        if not has_integer_ops(model):
            return str(path), {}
        model = onnx.load(str(path))  # weights too: the saturation proof reads them
    except Exception:  # unreadable: let ONNX Runtime name the problem below
        return str(path), {}
    form = cpu_form(model)
    return (form.model.SerializeToString() if form.model is not model else str(path)), form.session_config


def open_session(path: Path, providers: list[str], threads: int | None = None, optimize: bool = True,
                 custom_ops: bool | None = None, fix: str = "",
                 session_config: dict[str, str] | None = None) -> Any:  # fmt: skip
    """An ONNX Runtime session for ``path``; attnx custom ops go through the plugins package.

    ``optimize=False`` skips ORT's graph optimisations (for graphs already optimised offline);
    ``custom_ops`` saves re-reading the model when the caller already knows; ``fix`` ends the error message.
    ``session_config``: ORT session config entries (a bundle's INT8 kernel path, decided from its manifest);
    when None, an INT8 graph is read and run as :func:`attnx.calibration.int8_numerics.cpu_form` decides.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 4  # a failure is raised and reported as one line; ORT's own log would repeat it
    ort.set_default_logger_severity(4)
    if threads:
        options.intra_op_num_threads = threads
    if not optimize:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    source: Any = str(path)
    if session_config is None:
        source, session_config = _cpu_form(path)
    for key, value in session_config.items():
        options.add_session_config_entry(key, value)
    try:
        if uses_custom_domain(path) if custom_ops is None else custom_ops:
            from attnx.plugins.ort import create_session

            return create_session(path, providers=providers, sess_options=options)
        return ort.InferenceSession(source, options, providers=providers)
    except UserError:
        raise
    except Exception as exc:  # ORT raises its own Fail/InvalidGraph types; name the file and the cause
        from attnx.core.library_errors import ort_message

        raise UserError(f"cannot load {path}: {ort_message(exc, fix=fix.lstrip(':;, ') or '')}") from None


class OnnxrtRunner(Runner):
    name = "onnxruntime"

    def __init__(self, model_path: str | Path, providers: list[str] | None = None, threads: int | None = None):
        self.model_path = Path(model_path)
        self.providers = providers or ["CPUExecutionProvider"]
        self.threads = threads
        self.session: Any = None

    def activate(self) -> None:
        if not self.model_path.is_file():
            raise UserError(f"ONNX file not found: {self.model_path}")
        self.session = open_session(self.model_path, self.providers, self.threads)

    def deactivate(self) -> None:
        self.session = None

    def input_specs(self) -> list[TensorSpec]:
        if self.session is None:
            raise RuntimeError("OnnxrtRunner used outside its `with` block")
        return [
            TensorSpec(i.name, np.dtype(_ORT_DTYPES.get(i.type, np.float32)), tuple(i.shape))
            for i in self.session.get_inputs()
        ]

    def output_names(self) -> list[str]:
        return [o.name for o in self.session.get_outputs()]

    def infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = self.output_names()
        outs = self.session.run(names, feed)
        return dict(zip(names, outs))
