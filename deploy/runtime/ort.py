"""ONNX Runtime (CPU by default) behind the Engine: a pool of sessions for concurrent callers."""

from __future__ import annotations

import queue
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from deploy.bundle import Manifest

if TYPE_CHECKING:
    from deploy.cpu import Int8Path


class OrtRuntime:
    def __init__(self, bundle: Path, manifest: Manifest, pool_size: int = 1, threads: int | None = None,
                 providers: list[str] | None = None, int8_path: Int8Path | None = None):  # fmt: skip
        self.path = manifest.path_of(bundle, "engine")
        self.session_config = int8_path.session_config() if int8_path else {}
        self.kernels = int8_path.description if int8_path else "float kernels"
        self.providers = providers or manifest.build.get("providers") or ["CPUExecutionProvider"]
        self._pool: queue.Queue[Any] = queue.Queue()
        from deploy.backends.onnxrt import uses_custom_domain

        custom_ops = uses_custom_domain(self.path)  # read the model once, not once per pooled session
        self._sessions = [self._session(threads, custom_ops) for _ in range(max(1, pool_size))]
        for s in self._sessions:
            self._pool.put(s)
        self.output_names = [o.name for o in self._sessions[0].get_outputs()]

    def _session(self, threads: int | None, custom_ops: bool) -> Any:
        from deploy.backends.onnxrt import open_session

        # The engine file is already optimised at build time; don't redo (or undo) that work, except on the U8U8
        # path: ONNX Runtime switches INT8 kernels to it while optimising the graph (measured: skipped otherwise).
        return open_session(self.path, self.providers, threads, optimize=bool(self.session_config),
                            custom_ops=custom_ops,
                            fix="; rebuild the bundle", session_config=self.session_config)  # fmt: skip

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
