"""The runner interface every backend implements, its declared capabilities, and the one pool for threads.

In the manner of Polygraphy's runners (``polygraphy/backend/base/runner.py``): a runner is a context
manager; ``activate`` loads what inference needs, ``infer`` maps input names to host arrays and returns the
outputs by name, ``deactivate`` releases. What a backend can do beyond that is *declared* in
:class:`Capabilities`; asking a runner for a capability it does not declare raises :class:`CapabilityError`
(a one-line user error), never an ``AttributeError`` or an import of a missing function.

Thread safety lives in one place, :class:`RunnerPool`: a backend that serves concurrent callers keeps
N interchangeable slots (ONNX Runtime sessions, OpenVINO infer requests, TensorRT execution contexts)
in a pool and runs each call on one it holds alone.
"""

from __future__ import annotations

import abc
import queue
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Generic, TypeVar

import numpy as np

from attnx.core.errors import UserError


@dataclass(frozen=True)
class TensorSpec:
    """A model input or output: name, NumPy dtype and shape (an ``int`` per fixed axis; a ``str`` or
    ``None`` marks a dynamic axis, as ONNX ``dim_param`` does)."""

    name: str
    dtype: np.dtype
    shape: tuple[int | str | None, ...]

    def is_dynamic(self, axis: int) -> bool:
        """True when ``axis`` has no fixed size."""
        return not isinstance(self.shape[axis], int)


@dataclass(frozen=True)
class Capabilities:
    """What a runner can do beyond :meth:`Runner.infer` (all off unless the backend declares them).

    device_tensors: :meth:`Runner.infer_device` takes and returns torch CUDA tensors without host copies.
    timed_runs: :meth:`Runner.infer_timed` returns per-run device timings in milliseconds.
    mark_outputs: :meth:`Runner.infer_with_outputs` returns any intermediate tensor of the model's ONNX
        graph as an extra output (the layer-wise search marks them, as Polygraphy's ``--onnx-outputs mark all``).
    """

    device_tensors: bool = False
    timed_runs: bool = False
    mark_outputs: bool = False


_CAPABILITY_WORDS = {
    "device_tensors": "run on torch CUDA tensors (device memory)",
    "timed_runs": "time runs on the device",
    "mark_outputs": "expose intermediate tensors as outputs (layer-wise search)",
}


class CapabilityError(UserError):
    """A runner was asked for something its backend does not declare (see :class:`Capabilities`)."""


def check_capability(backend: str, capabilities: Capabilities, capability: str) -> None:
    """Raise :class:`CapabilityError` (naming ``backend`` and what it cannot do) unless ``capabilities``
    declares ``capability``; for callers holding a runner class rather than an instance."""
    if not getattr(capabilities, capability):
        raise CapabilityError(
            f"the {backend} backend cannot {_CAPABILITY_WORDS.get(capability, capability)}; "
            f"use a backend that declares '{capability}'"
        )


class Runner(abc.ABC):
    """Runs a model on one backend. Use as ``with runner: runner.infer(feed)``.

    Subclasses set ``name`` and ``capabilities`` and implement :meth:`input_specs`, :meth:`output_names`
    and :meth:`infer`; the optional ``infer_*`` methods are overridden only by backends that declare them.
    ``kernels`` says in words what the model runs on here (``Engine.info``; INT8: which integer path).
    """

    name: str = "runner"
    capabilities: Capabilities = Capabilities()
    kernels: str = ""

    def __enter__(self) -> Runner:
        self.activate()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.deactivate()

    def activate(self) -> None:  # noqa: B027  (optional hook)
        """Load what inference needs (sessions, engines). Called once by ``__enter__``."""

    def deactivate(self) -> None:  # noqa: B027  (optional hook)
        """Release what ``activate`` loaded. Safe to call twice."""

    @abc.abstractmethod
    def input_specs(self) -> list[TensorSpec]:
        """The model's inputs, in order."""

    @abc.abstractmethod
    def output_names(self) -> list[str]:
        """The model's outputs, in order."""

    @abc.abstractmethod
    def infer(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one inference: ``feed`` maps every input name to a host array of its dtype and rank;
        returns the outputs by name as host NumPy arrays. Raises :class:`~attnx.core.errors.UserError`
        for inputs the backend rejects."""

    def require(self, capability: str) -> None:
        """Raise :class:`CapabilityError` unless this runner declares ``capability`` (a field of
        :class:`Capabilities`)."""
        check_capability(self.name, self.capabilities, capability)

    def infer_timed(self, feed: Mapping[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, float]]:
        """Outputs as :meth:`infer`, and device timings in ms by phase (``timed_runs`` backends only)."""
        self.require("timed_runs")
        raise NotImplementedError  # pragma: no cover - a backend that declares it overrides this

    def infer_device(self, feed: Mapping[str, Any]) -> dict[str, Any]:
        """torch CUDA tensors in, torch CUDA tensors out (``device_tensors`` backends only)."""
        self.require("device_tensors")
        raise NotImplementedError  # pragma: no cover

    def infer_with_outputs(self, feed: Mapping[str, np.ndarray], names: Sequence[str]) -> dict[str, np.ndarray]:
        """The model's outputs and the graph tensors ``names`` (ONNX tensor names), by name
        (``mark_outputs`` backends only). A name the backend cannot expose is missing from the result."""
        self.require("mark_outputs")
        raise NotImplementedError  # pragma: no cover


T = TypeVar("T")


class RunnerPool(Generic[T]):
    """``size`` interchangeable slots made by ``make``, lent to one caller at a time.

    ``with pool.acquire() as slot: ...`` blocks until a slot is free. Slots are made lazily (the first
    ``size`` concurrent callers each make one), so an idle pool costs one slot. ``close`` releases every
    slot with ``release`` and makes later ``acquire`` calls raise ``RuntimeError``.
    """

    def __init__(self, make: Callable[[], T], size: int = 1, release: Callable[[T], None] | None = None):
        if size < 1:
            raise UserError(f"pool size must be at least 1, got {size}")
        self._make, self._release, self.size = make, release, size
        self._free: queue.LifoQueue[T] = queue.LifoQueue()
        self._made: list[T] = []
        self._lock = threading.Lock()
        self._closed = False
        self._free.put(self._new())

    def _new(self) -> T:
        slot = self._make()
        self._made.append(slot)
        return slot

    @contextmanager
    def acquire(self) -> Iterator[T]:
        """A slot for the duration of the ``with`` block."""
        if self._closed:
            raise RuntimeError("the runner pool is closed")
        try:
            slot = self._free.get_nowait()
        except queue.Empty:
            with self._lock:
                made = self._new() if len(self._made) < self.size else None
            slot = made if made is not None else self._free.get()
        try:
            yield slot
        finally:
            self._free.put(slot)

    def slots(self) -> list[T]:
        """Every slot made so far (for backends that must visit each, e.g. to drop cached state)."""
        return list(self._made)

    def close(self) -> None:
        """Release every slot (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            made, self._made = self._made, []
        if self._release is not None:
            for slot in made:
                self._release(slot)
