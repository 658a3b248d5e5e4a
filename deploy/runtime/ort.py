"""ONNX Runtime (CPU by default) behind the Engine: a pool of sessions for concurrent callers."""

from __future__ import annotations

import queue
from pathlib import Path
from typing import Any

import numpy as np

from deploy.bundle import Manifest
from deploy.errors import UserError


class OrtRuntime:
    def __init__(self, bundle: Path, manifest: Manifest, pool_size: int = 1, threads: int | None = None,
                 providers: list[str] | None = None):  # fmt: skip
        self.path = manifest.path_of(bundle, "engine")
        self.providers = providers or manifest.build.get("providers") or ["CPUExecutionProvider"]
        self._pool: queue.Queue[Any] = queue.Queue()
        self._sessions = [self._session(threads) for _ in range(max(1, pool_size))]
        for s in self._sessions:
            self._pool.put(s)
        self.output_names = [o.name for o in self._sessions[0].get_outputs()]

    def _session(self, threads: int | None) -> Any:
        import onnxruntime as ort

        from deploy.backends.onnxrt import uses_custom_domain

        options = ort.SessionOptions()
        options.log_severity_level = 3
        if threads:
            options.intra_op_num_threads = threads
        # The engine file is already optimised at build time; don't redo (or undo) that work.
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        try:
            if uses_custom_domain(self.path):
                from plugins.ort import create_session

                return create_session(self.path, providers=self.providers, sess_options=options)
            return ort.InferenceSession(str(self.path), options, providers=self.providers)
        except Exception as exc:  # ORT's own error types; name the bundle file
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise UserError(f"ONNX Runtime cannot load {self.path}: {first[:200]}; rebuild the bundle") from None

    def run(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        session = self._pool.get()
        try:
            outs = session.run(self.output_names, feed)
        finally:
            self._pool.put(session)
        return dict(zip(self.output_names, outs))

    def close(self) -> None:
        self._sessions.clear()
        while not self._pool.empty():
            self._pool.get_nowait()
