"""ONNX Runtime: the embedded default backend (CPU execution provider unless told otherwise)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from deploy.backends.base import Runner, TensorSpec
from deploy.errors import UserError

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


class OnnxrtRunner(Runner):
    name = "onnxruntime"

    def __init__(self, model_path: str | Path, providers: list[str] | None = None, threads: int | None = None):
        self.model_path = Path(model_path)
        self.providers = providers or ["CPUExecutionProvider"]
        self.threads = threads
        self.session: Any = None

    def activate(self) -> None:
        import onnxruntime as ort

        if not self.model_path.is_file():
            raise UserError(f"ONNX file not found: {self.model_path}")
        options = ort.SessionOptions()
        if self.threads:
            options.intra_op_num_threads = self.threads
        options.log_severity_level = 3  # errors only: shape-mismatch warnings on dynamic outputs are noise
        try:
            if uses_custom_domain(self.model_path):
                # attnx custom ops run through the plugins package's ORT implementation.
                from plugins.ort import create_session

                self.session = create_session(self.model_path, providers=self.providers, sess_options=options)
            else:
                self.session = ort.InferenceSession(str(self.model_path), options, providers=self.providers)
        except UserError:
            raise
        except Exception as exc:  # ORT raises its own Fail/InvalidGraph types; name the file and the cause
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UserError(f"ONNX Runtime cannot load {self.model_path}: {first}") from None

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
