"""PyTorch eager: the reference every other backend is compared with."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from attnx.deploy.backends.base import Runner, TensorSpec

if TYPE_CHECKING:
    from torch import nn


def flatten_outputs(out: object) -> list:
    """A model's outputs as a flat list of tensors (tuples, lists and dicts are flattened in order)."""
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in flatten_outputs(o)]
    if isinstance(out, dict):
        return [t for o in out.values() for t in flatten_outputs(o)]
    return [out]


class TorchRunner(Runner):
    """A PyTorch module in eval mode on the CPU, called under ``torch.inference_mode``: NumPy in, NumPy out.

    ``input_specs``: the module's positional inputs, in order (names key the feed). ``output_names``: names for
    its flattened outputs (see :func:`flatten_outputs`), in order; None names them ``output_0``, ``output_1``, …
    ``infer`` raises RuntimeError when the module returns another number of outputs than ``output_names``.
    Declares no capability beyond ``infer``.
    """

    name = "torch"
    kernels = "PyTorch eager (CPU)"

    def __init__(self, model: nn.Module, input_specs: Sequence[TensorSpec], output_names: Sequence[str] | None = None):
        self.model = model.eval()
        self._input_specs = list(input_specs)
        self._output_names = list(output_names) if output_names is not None else None

    def input_specs(self) -> list[TensorSpec]:
        return list(self._input_specs)

    def output_names(self) -> list[str]:
        return list(self._output_names or [])

    def infer(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        args = [torch.from_numpy(np.ascontiguousarray(feed[s.name])) for s in self._input_specs]
        with torch.inference_mode():
            outs = flatten_outputs(self.model(*args))
        names = self._output_names or [f"output_{i}" for i in range(len(outs))]
        if len(outs) != len(names):
            raise RuntimeError(f"model returned {len(outs)} outputs, expected {len(names)}")
        return {n: o.detach().cpu().numpy() for n, o in zip(names, outs)}
