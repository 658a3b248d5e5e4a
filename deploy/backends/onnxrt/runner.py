"""ONNX Runtime: the embedded default backend (CPU execution provider unless told otherwise).

:class:`OnnxrtRunner` runs an ONNX model (a file, serialised bytes or a ModelProto) through a pool of sessions
made by the one session factory (:func:`attnx.deploy.backends.onnxrt.session.make_session`). It knows nothing
of bundles: which INT8 kernels a bundle must run on here is decided by ``attnx.deploy.bundle.runtime`` and
arrives as ``session_config``.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from attnx.core.errors import UserError
from attnx.deploy.backends.base import Capabilities, Runner, RunnerPool, TensorSpec
from attnx.deploy.backends.onnx_graph import expose_intermediates, uses_custom_domain
from attnx.deploy.backends.onnxrt.session import make_session

if TYPE_CHECKING:
    import onnx

# ONNX Runtime's type strings → NumPy dtypes
_ORT_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(int16)": np.int16,
    "tensor(int8)": np.int8,
    "tensor(uint16)": np.uint16,
    "tensor(uint8)": np.uint8,
    "tensor(bool)": np.bool_,
}


def _spec(arg: Any) -> TensorSpec:
    return TensorSpec(arg.name, np.dtype(_ORT_DTYPES.get(arg.type, np.float32)), tuple(arg.shape))


def _first_line(exc: BaseException) -> str:
    from attnx.core.library_errors import shorten

    return shorten((str(exc).strip().splitlines() or [type(exc).__name__])[0])


class OnnxrtRunner(Runner):
    """An ONNX model in ONNX Runtime, thread-safe: concurrent ``infer`` calls each take a pooled session.

    ``model``: an ONNX file path, serialised bytes or a ModelProto. ``providers``: execution providers
    (default CPU). ``threads`` / ``inter_threads``: intra- / inter-op threads per session (None: ORT's default).
    ``pool_size``: sessions made at most (lazily, one per concurrent caller). ``optimize``: ORT's graph
    optimisation (True, False or a level name; False for a graph already optimised offline).
    ``session_config``: session config entries (e.g. the U8U8 INT8 kernel switch). ``kernels``: the kernels
    it runs on, in words (shown by ``Engine.info``). ``fix``: ends the message when the model cannot load.

    Declares ``mark_outputs``: :meth:`infer_with_outputs` runs a copy of the graph with more outputs.
    Raises :class:`~attnx.core.errors.UserError` when the file is missing or ORT cannot load or run it.
    """

    name = "onnxruntime"
    capabilities = Capabilities(mark_outputs=True)

    def __init__(self, model: str | Path | bytes | onnx.ModelProto, providers: list[str] | None = None,
                 threads: int | None = None, pool_size: int = 1, optimize: bool | str = True,
                 session_config: dict[str, str] | None = None, inter_threads: int | None = None,
                 kernels: str = "float kernels", fix: str = ""):  # fmt: skip
        self.model = Path(model) if isinstance(model, str) else model
        self.model_path = self.model if isinstance(self.model, Path) else None
        self.providers = providers or ["CPUExecutionProvider"]
        self.threads, self.inter_threads, self.pool_size = threads, inter_threads, pool_size
        self.optimize, self.session_config = optimize, dict(session_config or {})
        self.kernels, self.fix = kernels, fix
        self._pool: RunnerPool[Any] | None = None
        self._custom_ops: bool | None = None
        self._lock = threading.Lock()

    def _session(self, model: Any, **kw: Any) -> Any:
        return make_session(model, providers=self.providers, threads=self.threads, inter_threads=self.inter_threads,
                            session_config=self.session_config, **{"optimize": self.optimize, "fix": self.fix, **kw})

    def activate(self) -> None:
        if self.model_path is not None and not self.model_path.is_file():
            raise UserError(f"ONNX file not found: {self.model_path}")
        self._custom_ops = uses_custom_domain(self.model)  # read the model once, not once per pooled session

    def _sessions(self) -> RunnerPool[Any]:
        """The pool, made on first use (a runner used only for :meth:`infer_with_outputs` never makes one)."""
        with self._lock:
            if self._pool is None:
                if self._custom_ops is None:
                    raise RuntimeError("OnnxrtRunner used outside its `with` block")
                self._pool = RunnerPool(lambda: self._session(self.model, custom_ops=self._custom_ops),
                                        size=self.pool_size)  # fmt: skip
            return self._pool

    def deactivate(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    def _first(self) -> Any:
        return self._sessions().slots()[0]

    def input_specs(self) -> list[TensorSpec]:
        return [_spec(i) for i in self._first().get_inputs()]

    def output_specs(self) -> list[TensorSpec]:
        """The model's outputs with dtypes and shapes (as :meth:`input_specs`)."""
        return [_spec(o) for o in self._first().get_outputs()]

    def output_names(self) -> list[str]:
        return [o.name for o in self._first().get_outputs()]

    def infer(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        pool = self._sessions()
        names = self.output_names()
        with pool.acquire() as session:
            outs = session.run(names, dict(feed))
        return dict(zip(names, outs))

    def infer_with_outputs(self, feed: Mapping[str, np.ndarray], names: Sequence[str]) -> dict[str, np.ndarray]:
        """The outputs and the graph tensors ``names`` by name, from a session of a copy of the graph with
        ``names`` added as outputs (ORT infers their types). Raises UserError when ORT cannot load that graph
        or rejects ``feed``."""
        import onnx

        model = self.model
        if isinstance(model, Path):
            model = onnx.load(str(model))
        elif isinstance(model, bytes):
            model = onnx.load_from_string(model)
        exposed = expose_intermediates(model, names)
        session = self._session(exposed, custom_ops=self._custom_ops,
                                error="ONNX Runtime cannot run the graph with its intermediates exposed")  # fmt: skip
        out_names = [o.name for o in session.get_outputs()]
        try:
            values = session.run(out_names, dict(feed))
        except Exception as exc:  # shape or type errors in the feed
            raise UserError(f"ONNX Runtime rejects the inputs: {_first_line(exc)}") from None
        return dict(zip(out_names, values))
