"""The model zoo: a name → builder registry, and resolution of user model specs.

A model spec is one of:
  * ``NAME``                      a zoo entry (``attnx zoo`` lists them),
  * ``package.module:function``   any importable factory returning an ``nn.Module``,
  * ``timm:NAME`` / ``torchvision:NAME``  when those optional packages are installed.
"""

from __future__ import annotations

import difflib
import importlib
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from attnx.core.errors import UserError

if TYPE_CHECKING:  # torch is heavy: import it only where a model is built
    from torch import nn


@dataclass(frozen=True)
class PaperFigures:
    """Parameter count and cost of a paper's standard configuration, from the paper's table."""

    params_m: float  # millions of parameters
    gmacs: float  # multiply-accumulates, in billions (what most CV papers call "GFLOPs")
    input_size: int = 224
    source: str = ""  # table and paper the figures come from


@dataclass(frozen=True)
class ZooEntry:
    name: str
    builder: Callable[..., nn.Module]
    task: str  # "classification" | "segmentation" | "detection"
    family: str  # attention family, e.g. "channel", "spatial", "self-attention"
    paper: str  # short citation
    input_shape: tuple[int, int, int]  # (C, H, W) of the default (small) configuration
    dynamic_hw: bool = True  # True if H and W may differ from input_shape at run time
    configs: tuple[str, ...] = ("tiny",)  # first is the default
    config_input_shapes: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    paper_figures: dict[str, PaperFigures] = field(default_factory=dict)
    description: str = ""

    def input_shape_for(self, config: str | None) -> tuple[int, int, int]:
        return self.config_input_shapes.get(config or self.configs[0], self.input_shape)

    def build(self, config: str | None = None, **kwargs: Any) -> nn.Module:
        config = config or self.configs[0]
        if config not in self.configs:
            raise UserError(
                f"model '{self.name}' has no config '{config}'; choose one of: {', '.join(self.configs)}"
            )
        return self.builder(config=config, **kwargs)


_ZOO: dict[str, ZooEntry] = {}


def register_model(
    name: str,
    *,
    task: str,
    family: str,
    paper: str,
    input_shape: tuple[int, int, int],
    dynamic_hw: bool = True,
    configs: tuple[str, ...] = ("tiny",),
    config_input_shapes: dict[str, tuple[int, int, int]] | None = None,
    paper_figures: dict[str, PaperFigures] | None = None,
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: register ``builder(config=..., **kwargs) -> nn.Module`` under ``name``."""

    def wrap(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _ZOO:
            raise ValueError(f"zoo name '{name}' registered twice")
        doc = (builder.__doc__ or "").strip().splitlines()
        _ZOO[name] = ZooEntry(
            name=name,
            builder=builder,
            task=task,
            family=family,
            paper=paper,
            input_shape=input_shape,
            dynamic_hw=dynamic_hw,
            configs=configs,
            config_input_shapes=dict(config_input_shapes or {}),
            paper_figures=dict(paper_figures or {}),
            description=doc[0] if doc else "",
        )
        return builder

    return wrap


def zoo() -> dict[str, ZooEntry]:
    """All registered models, by name (importing the model modules registers them)."""
    importlib.import_module("attnx.exporters.models")
    return dict(sorted(_ZOO.items()))


def get_entry(name: str) -> ZooEntry:
    entries = zoo()
    if name in entries:
        return entries[name]
    close = difflib.get_close_matches(name, entries, n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(repr(c) for c in close)}?" if close else "run 'attnx zoo' to list them"
    raise UserError(f"unknown model '{name}': {hint}")


@dataclass
class ResolvedModel:
    model: nn.Module
    spec: str
    entry: ZooEntry | None  # None for models from outside the zoo
    input_shape: tuple[int, int, int] | None  # (C, H, W) default, if known


INIT_SEED = 0


def resolve_model(spec: str, config: str | None = None, **kwargs: Any) -> ResolvedModel:
    """Build the model a spec names, in eval mode.

    Initialisation is seeded (``INIT_SEED``) without disturbing the caller's RNG, so the same spec
    always builds the same weights: an ONNX file exported from a zoo name without a checkpoint can
    be checked against a model rebuilt later from its metadata.
    """
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(INIT_SEED)
        return _resolve(spec, config, **kwargs)


def _resolve(spec: str, config: str | None = None, **kwargs: Any) -> ResolvedModel:
    if spec.startswith(("timm:", "torchvision:")):
        hub, _, name = spec.partition(":")
        model = _from_hub(hub, name, **kwargs)
        return ResolvedModel(model.eval(), spec, None, (3, 224, 224))
    if ":" in spec:
        module_name, _, attr = spec.partition(":")
        # Like `python -m`, the user's own modules import from the current folder, but only while the
        # factory the user named on the command line is imported and called: later imports are not shadowed.
        cwd = os.getcwd()
        cwd_added = "" not in sys.path and cwd not in sys.path
        if cwd_added:
            sys.path.insert(0, cwd)
        try:
            try:
                module = importlib.import_module(module_name)
            except ImportError as exc:
                raise UserError(f"cannot import '{module_name}' for model '{spec}': {exc}") from None
            factory = getattr(module, attr, None)
            if not callable(factory):
                raise UserError(f"'{module_name}' has no callable '{attr}' (model spec '{spec}')")
            model = factory(**kwargs)
        finally:
            if cwd_added and cwd in sys.path:
                sys.path.remove(cwd)
        from torch import nn

        if not isinstance(model, nn.Module):
            raise UserError(f"'{spec}' returned {type(model).__name__}, not a torch.nn.Module")
        return ResolvedModel(model.eval(), spec, None, None)
    entry = get_entry(spec)
    model = entry.build(config, **kwargs)
    return ResolvedModel(model.eval(), spec, entry, entry.input_shape_for(config))


def is_zoo_name(spec: str) -> bool:
    """True if ``spec`` names a zoo entry: the only kind of model name attnx takes from a file."""
    return spec in zoo()


def check_name_from_file(spec: str, where: str) -> None:
    """A model name read from a file (ONNX metadata, a bundle manifest) may select a zoo model, nothing else.

    Importable factories (``module:callable``, ``timm:``, ``torchvision:``) run only when the user names
    them on the command line (``--model``): a file is data, and what it names is never imported.
    """
    if not is_zoo_name(spec):
        shown = spec if spec.isprintable() and len(spec) <= 120 else ascii(spec[:120])
        raise UserError(
            f"{where} names model '{shown}', which is not a zoo model; attnx never imports code named by a "
            f"file: if you trust it, pass --model {shown}"
        )


def _from_hub(hub: str, name: str, **kwargs: Any) -> nn.Module:
    try:
        lib = importlib.import_module(hub)
    except ImportError:
        raise UserError(f"'{hub}:{name}' needs the optional package '{hub}': pip install {hub}") from None
    if hub == "timm":
        if name not in lib.list_models():
            raise UserError(f"timm has no model '{name}'; see timm.list_models()")
        return lib.create_model(name, pretrained=False, **kwargs)
    builder = getattr(lib.models, name, None)
    if builder is None:
        raise UserError(f"torchvision.models has no model '{name}'")
    return builder(weights=None, **kwargs)
