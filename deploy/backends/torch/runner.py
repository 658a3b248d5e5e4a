"""PyTorch eager: the reference every other backend is compared with."""

from __future__ import annotations

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
    name = "torch"

    def __init__(self, model: nn.Module, input_specs: list[TensorSpec], output_names: list[str]):
        self.model = model.eval()
        self._input_specs = input_specs
        self._output_names = list(output_names)

    def input_specs(self) -> list[TensorSpec]:
        return self._input_specs

    def output_names(self) -> list[str]:
        return list(self._output_names)

    def infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        args = [torch.from_numpy(np.ascontiguousarray(feed[s.name])) for s in self._input_specs]
        with torch.inference_mode():
            outs = flatten_outputs(self.model(*args))
        if len(outs) != len(self._output_names):
            raise RuntimeError(f"model returned {len(outs)} outputs, expected {len(self._output_names)}")
        return {n: o.detach().cpu().numpy() for n, o in zip(self._output_names, outs)}
