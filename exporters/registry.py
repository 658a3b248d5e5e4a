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
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from attnx.core.errors import UserError, shown

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
    """One zoo model: its builder and what it takes.

    ``name`` is the primary name (as the paper or timm spells it); ``aliases`` are older attnx names that
    resolve to the same builder (ONNX metadata and bundle manifests written by older versions name them).
    Shapes are per sample, without the batch: ``sample_shape`` is (C, H, W) of the default configuration.
    """

    name: str
    builder: Callable[..., nn.Module]
    task: str  # "classification" | "segmentation" | "detection"
    family: str  # attention family, e.g. "channel", "spatial", "self-attention"
    paper: str  # short citation
    sample_shape: tuple[int, int, int]  # (C, H, W) of the default (small) configuration, no batch
    dynamic_hw: bool = True  # True if H and W may differ from sample_shape at run time
    configs: tuple[str, ...] = ("tiny",)  # first is the default
    config_sample_shapes: dict[str, tuple[int, int, int]] = field(default_factory=dict)  # (C, H, W) by config
    paper_figures: dict[str, PaperFigures] = field(default_factory=dict)
    description: str = ""
    aliases: tuple[str, ...] = ()

    def sample_shape_for(self, config: str | None) -> tuple[int, int, int]:
        """(C, H, W) of one input sample for ``config`` (None: the default config); no batch axis."""
        return self.config_sample_shapes.get(config or self.configs[0], self.sample_shape)

    def input_shape_for(self, config: str | None, batch: int = 1) -> tuple[int, int, int, int]:
        """The full input shape (N, C, H, W) for ``config`` (None: the default config) at batch ``batch``."""
        return (batch, *self.sample_shape_for(config))

    def build(self, config: str | None = None, **kwargs: Any) -> nn.Module:
        """A new model in the given config (None: the default), with fresh (unseeded) weights.

        ``kwargs`` go to the builder (e.g. ``num_classes``). Raises UserError for a config the model lacks.
        """
        config = config or self.configs[0]
        if config not in self.configs:
            raise UserError(
                f"model '{self.name}' has no config '{config}'; choose one of: {', '.join(self.configs)}"
            )
        return self.builder(config=config, **kwargs)


_ZOO: dict[str, ZooEntry] = {}
_ALIASES: dict[str, str] = {}  # old name -> primary name


def register_model(
    name: str,
    *,
    task: str,
    family: str,
    paper: str,
    sample_shape: tuple[int, int, int],
    dynamic_hw: bool = True,
    configs: tuple[str, ...] = ("tiny",),
    config_sample_shapes: dict[str, tuple[int, int, int]] | None = None,
    paper_figures: dict[str, PaperFigures] | None = None,
    aliases: tuple[str, ...] = (),
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: register ``builder(config=..., **kwargs) -> nn.Module`` under ``name`` (and its ``aliases``).

    ``sample_shape`` and ``config_sample_shapes`` are (C, H, W), without the batch. The builder's docstring's
    first line becomes the zoo description. Raises ValueError when a name or alias is already taken.
    """

    def wrap(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        for n in (name, *aliases):
            if n in _ZOO or n in _ALIASES:
                raise ValueError(f"zoo name '{n}' registered twice")
        doc = (builder.__doc__ or "").strip().splitlines()
        _ZOO[name] = ZooEntry(
            name=name,
            builder=builder,
            task=task,
            family=family,
            paper=paper,
            sample_shape=sample_shape,
            dynamic_hw=dynamic_hw,
            configs=configs,
            config_sample_shapes=dict(config_sample_shapes or {}),
            paper_figures=dict(paper_figures or {}),
            description=doc[0] if doc else "",
            aliases=tuple(aliases),
        )
        _ALIASES.update({a: name for a in aliases})
        return builder

    return wrap


class Zoo(Mapping[str, ZooEntry]):
    """The zoo's entries: iterates the primary names (sorted); looking up accepts an alias too."""

    def __init__(self, entries: dict[str, ZooEntry], aliases: dict[str, str]) -> None:
        self._entries = dict(sorted(entries.items()))
        self._aliases = dict(aliases)

    def __getitem__(self, name: str) -> ZooEntry:
        return self._entries[self._aliases.get(name, name)]

    def __contains__(self, name: object) -> bool:
        return name in self._entries or name in self._aliases

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def aliases(self) -> dict[str, str]:
        """Old name -> primary name."""
        return dict(self._aliases)


def zoo() -> Zoo:
    """All registered models, by primary name (importing the model modules registers them); aliases resolve."""
    importlib.import_module("attnx.exporters.models")
    return Zoo(_ZOO, _ALIASES)


def canonical_name(name: str) -> str:
    """The primary zoo name for ``name`` (a primary name or an alias). Raises UserError for an unknown name."""
    return get_entry(name).name


def get_entry(name: str) -> ZooEntry:
    """The zoo entry ``name`` (a primary name or an alias) names.

    Raises:
        UserError: no entry has that name or alias (the message suggests close names).
    """
    entries = zoo()
    if name in entries:
        return entries[name]
    close = difflib.get_close_matches(name, [*entries, *entries.aliases], n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(repr(c) for c in close)}?" if close else "run 'attnx zoo' to list them"
    raise UserError(f"unknown model '{name}': {hint}")


@dataclass
class ResolvedModel:
    """A built model (eval mode) and what is known about its input."""

    model: nn.Module
    spec: str  # as given (a zoo alias stays an alias: it is what ONNX metadata records)
    entry: ZooEntry | None  # None for models from outside the zoo
    sample_shape: tuple[int, int, int] | None  # (C, H, W) of one sample, no batch; None when unknown


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
    return ResolvedModel(model.eval(), spec, entry, entry.sample_shape_for(config))


def is_zoo_name(spec: str) -> bool:
    """True if ``spec`` names a zoo entry: the only kind of model name attnx takes from a file."""
    return spec in zoo()


def check_name_from_file(spec: str, where: str) -> None:
    """A model name read from a file (ONNX metadata, a bundle manifest) may select a zoo model, nothing else.

    Importable factories (``module:callable``, ``timm:``, ``torchvision:``) run only when the user names
    them on the command line (``--model``): a file is data, and what it names is never imported.
    """
    if not is_zoo_name(spec):
        named = shown(spec, 120)
        raise UserError(
            f"{where} names model '{named}', which is not a zoo model; attnx never imports code named by a "
            f"file: if you trust it, pass --model {named}"
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
