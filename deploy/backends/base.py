"""The runner interface every backend implements."""

from __future__ import annotations

import abc
from dataclasses import dataclass
from types import TracebackType

import numpy as np


@dataclass(frozen=True)
class TensorSpec:
    """A model input or output: name, dtype and shape (a str or None marks a dynamic axis)."""

    name: str
    dtype: np.dtype
    shape: tuple[int | str | None, ...]

    def is_dynamic(self, axis: int) -> bool:
        return not isinstance(self.shape[axis], int)


class Runner(abc.ABC):
    """Runs a model on one backend. Use as ``with runner: runner.infer(feed)``."""

    name: str = "runner"

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
        """Release what ``activate`` loaded."""

    @abc.abstractmethod
    def input_specs(self) -> list[TensorSpec]: ...

    @abc.abstractmethod
    def infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one inference; outputs by name, as float/int NumPy arrays on the host."""
