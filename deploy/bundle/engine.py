"""``Engine``: load a bundle and call it with NumPy arrays (or torch tensors); the same API for every backend.

    with Engine.load("bundles/cbam") as engine:
        out = engine({"input": batch})          # or engine(batch) for single-input models
        logits = out["output"]

Inputs are checked against the manifest (names, dtypes, ranks, fixed dimensions, profile ranges) with
clear errors; the runner the manifest asks for (:func:`attnx.deploy.bundle.runtime.open_runner`) runs them.
Thread-safe: concurrent calls share the runner's pool of sessions / infer requests / execution contexts.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from attnx.core.errors import UserError
from attnx.deploy.backends.base import Runner
from attnx.deploy.bundle.manifest import IOSpec, Manifest, check_recorded_parity, load_manifest
from attnx.deploy.bundle.runtime import open_runner


class Engine:
    """A bundle ready to run: its manifest's input checks in front of an activated, pooled runner.

    ``runner`` (public) is the backend runner; what it can do beyond ``infer`` is in
    ``runner.capabilities`` (bench times runs through ``infer_timed`` where ``timed_runs`` is declared).
    ``close`` deactivates it.
    """

    def __init__(self, bundle: Path, manifest: Manifest, runner: Runner):
        self.bundle = bundle
        self.manifest = manifest
        self.runner = runner
        self._closed = False
        self._lock = threading.Lock()

    @classmethod
    def load(cls, bundle: str | Path, pool_size: int = 1, threads: int | None = None, verify: bool = True,
             allow_failed_parity: bool = False, quiet: bool = False) -> Engine:  # fmt: skip
        """Open a bundle: ``pool_size`` concurrent callers, ``threads`` CPU threads per call (None: the backend's
        default); ``verify`` checks the files' SHA-256. One whose build-time parity check failed is refused
        unless ``allow_failed_parity`` (then a warning on stderr on every load, unless ``quiet``).
        Raises :class:`~attnx.core.errors.UserError` for a corrupt bundle or one this machine cannot run."""
        bundle = Path(bundle)
        manifest = load_manifest(bundle, verify=verify)
        check_recorded_parity(bundle, manifest, allow_failed_parity, quiet)
        return cls(bundle, manifest, open_runner(bundle, manifest, pool_size=pool_size, threads=threads))

    @property
    def info(self) -> dict[str, Any]:
        """What runs: backend, precision, and the kernels used here (INT8: which integer path, see attnx.core.cpu)."""
        return {"backend": self.manifest.backend, "precision": self.manifest.precision,
                "kernels": self.runner.kernels or "?"}  # fmt: skip

    @property
    def inputs(self) -> list[IOSpec]:
        """The inputs as the manifest declares them: name, dtype, shape, profile."""
        return self.manifest.inputs

    @property
    def outputs(self) -> list[IOSpec]:
        """The outputs as the manifest declares them: name, dtype, shape."""
        return self.manifest.outputs

    def __call__(self, inputs: Mapping[str, Any] | Any = None, /, **named: Any) -> dict[str, Any]:
        """Outputs by name: NumPy arrays, or torch CUDA tensors when every input is a CUDA tensor and the
        backend can run on device memory (TensorRT), without host copies."""
        if self._closed:
            raise RuntimeError("Engine is closed")
        given = self._named(inputs, named)
        if given and all(_is_cuda_tensor(v) for v in given.values()) and self.runner.capabilities.device_tensors:
            return self.runner.infer_device(given)  # the runner checks names, dtypes and the profile
        return self.runner.infer(self._feed(given))

    def _named(self, inputs: Mapping[str, Any] | Any, named: dict[str, Any]) -> dict[str, Any]:
        if inputs is not None and not isinstance(inputs, Mapping):
            if len(self.inputs) != 1:
                raise UserError(f"this engine has {len(self.inputs)} inputs: pass a dict by name")
            inputs = {self.inputs[0].name: inputs}
        return {**(dict(inputs) if inputs is not None else {}), **named}

    def _feed(self, given: dict[str, Any]) -> dict[str, np.ndarray]:
        unknown = sorted(set(given) - {s.name for s in self.inputs})
        if unknown:
            raise UserError(f"unknown input(s) {unknown}; the engine takes {[s.name for s in self.inputs]}")
        feed = {}
        for spec in self.inputs:
            if spec.name not in given:
                raise UserError(f"missing input '{spec.name}' ({spec.dtype}, shape {spec.shape})")
            # Profiles bind TensorRT engines only; ONNX Runtime takes any size on a dynamic axis.
            feed[spec.name] = check_input(spec, _to_numpy(given[spec.name]), self.manifest.backend == "trt",
                                          self.manifest.max_hw)  # fmt: skip
        return feed

    def close(self) -> None:
        """Deactivate the runner (release its sessions / contexts); a second call does nothing. Calling the engine
        afterwards raises RuntimeError.
        """
        with self._lock:
            if not self._closed:
                self._closed = True
                self.runner.deactivate()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _is_cuda_tensor(value: Any) -> bool:
    return type(value).__module__.startswith("torch") and getattr(value, "is_cuda", False)


def _to_numpy(value: Any) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value
    if type(value).__module__.startswith("torch"):
        return value.detach().cpu().numpy()  # type: ignore[no-any-return]
    return np.asarray(value)


def check_input(spec: IOSpec, arr: np.ndarray, enforce_profile: bool = True,
                max_hw: tuple[int, int] | None = None) -> np.ndarray:  # fmt: skip
    """Validate one input against its manifest entry; return it C-contiguous.

    ``enforce_profile``: also hold the shape to the spec's min/max profile (TensorRT binds it; ONNX Runtime does not).
    ``max_hw``: the largest (H, W) the bundle's precision plan holds at (:attr:`Manifest.max_hw`), checked on a 4-D
    input with dynamic H/W. Raises UserError naming the input, what it got and what the engine wants.
    """
    if arr.dtype != np.dtype(spec.dtype):
        raise UserError(f"input '{spec.name}' has dtype {arr.dtype}, the engine wants {spec.dtype}")
    if arr.ndim != len(spec.shape):
        raise UserError(f"input '{spec.name}' has rank {arr.ndim} {arr.shape}, the engine wants shape {spec.shape}")
    for axis, (got, want) in enumerate(zip(arr.shape, spec.shape)):
        if isinstance(want, int) and got != want:
            raise UserError(f"input '{spec.name}' has shape {arr.shape}; axis {axis} must be {want} ({spec.shape})")
    if spec.profile and enforce_profile:
        lo, hi = spec.profile["min"], spec.profile["max"]
        if any(g < a or g > b for g, a, b in zip(arr.shape, lo, hi)):
            raise UserError(f"input '{spec.name}' shape {arr.shape} is outside the engine's profile {lo}..{hi}")
    dynamic_hw = len(spec.shape) == 4 and any(not isinstance(d, int) for d in spec.shape[2:])
    if max_hw is not None and dynamic_hw and (arr.shape[2] > max_hw[0] or arr.shape[3] > max_hw[1]):
        raise UserError(
            f"input '{spec.name}' is {arr.shape[2]}x{arr.shape[3]}, larger than the {max_hw[0]}x{max_hw[1]} this "
            "bundle's precision plan holds at (its FP16 overflow decisions are not known to hold beyond it): "
            "resize the input, or rebuild with a larger --calib max_input_shape"
        )
    return np.ascontiguousarray(arr)
