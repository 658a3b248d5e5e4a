"""ONNX Runtime (CPU by default) behind the Engine: a pool of sessions for concurrent callers."""

from __future__ import annotations

import queue
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from attnx.core.errors import UserError
from attnx.deploy.bundle.manifest import Manifest

if TYPE_CHECKING:
    from attnx.core.cpu import Int8Path


class OrtRuntime:
    def __init__(self, bundle: Path, manifest: Manifest, pool_size: int = 1, threads: int | None = None,
                 providers: list[str] | None = None, int8_path: Int8Path | None = None):  # fmt: skip
        self.path = manifest.path_of(bundle, "engine")
        self.session_config = int8_path.session_config() if int8_path else {}
        self.kernels = int8_path.description if int8_path else "float kernels"
        self.providers = providers or manifest.build.get("providers") or ["CPUExecutionProvider"]
        self._pool: queue.Queue[Any] = queue.Queue()
        from attnx.deploy.backends.onnxrt.runner import uses_custom_domain

        custom_ops = uses_custom_domain(self.path)  # read the model once, not once per pooled session
        self._sessions = [self._session(threads, custom_ops) for _ in range(max(1, pool_size))]
        for s in self._sessions:
            self._pool.put(s)
        self.output_names = [o.name for o in self._sessions[0].get_outputs()]
        check_against_manifest(self._sessions[0], manifest, self.path)

    def _session(self, threads: int | None, custom_ops: bool) -> Any:
        from attnx.deploy.backends.onnxrt.runner import open_session

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


# ONNX Runtime's type strings → NumPy dtype names (as manifests record them)
_ORT_TYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
              "tensor(int64)": "int64", "tensor(int32)": "int32", "tensor(int16)": "int16", "tensor(int8)": "int8",
              "tensor(uint8)": "uint8", "tensor(uint16)": "uint16", "tensor(bool)": "bool",
              "tensor(bfloat16)": "bfloat16"}  # fmt: skip


def check_against_manifest(session: Any, manifest: Manifest, path: Path) -> None:
    """The engine's inputs and outputs are the manifest's (names, dtypes, ranks, fixed sizes): a manifest that
    disagrees with its engine is corrupt, said once here rather than as ONNX Runtime's refusal of each call."""

    def fail(what: str) -> None:
        raise UserError(f"{path.parent / 'manifest.json'} does not match {path.name}: {what}; the manifest is "
                        "corrupt or edited: rebuild the bundle with `attnx build`")  # fmt: skip

    for kind, specs, actual in (("input", manifest.inputs, session.get_inputs()),
                                ("output", manifest.outputs, session.get_outputs())):  # fmt: skip
        want = {s.name: s for s in specs}
        have = {a.name: a for a in actual}
        if set(want) != set(have):
            fail(f"{kind}s {sorted(want)} in the manifest, {sorted(have)} in the engine")
        for name, spec in want.items():
            arg = have[name]
            dtype = _ORT_TYPES.get(arg.type)
            if dtype is not None and dtype != spec.dtype:
                fail(f"{kind} '{name}' is {spec.dtype} in the manifest, {dtype} in the engine")
            shape = list(arg.shape)
            if len(shape) != len(spec.shape) or any(
                isinstance(m, int) and isinstance(e, int) and m != e for m, e in zip(spec.shape, shape)
            ):
                fail(f"{kind} '{name}' has shape {list(spec.shape)} in the manifest, {shape} in the engine")
