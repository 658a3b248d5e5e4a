"""The ``calibration`` options of ``apply_precision`` (and of ``attnx build --calib``), validated in one place.

Every key is optional. Unknown keys and bad values raise a one-line :class:`UserError`.

=================  ==========================================================================================
key                meaning (default)
=================  ==========================================================================================
source             ``"digits"`` (scikit-learn's 8×8 digits, upsampled and replicated to the model's C×H×W;
                   calibration from the training split, checks from the test split, as exporters/digits.py),
                   ``"photos"`` (seeded crops of scikit-learn's two sample photographs), ``"synthetic"``
                   (seeded standard-normal tensors, flagged as synthetic in every report), a folder of images,
                   or a ``.npy`` / ``.npz`` file. (``"digits"``)
count              calibration samples (64); fewer if the source has fewer
eval_count         held-out samples used to check the result and drive sensitivity mode (32)
batch_size         samples per calibration batch (8)
method             INT8 range method: ``minmax`` | ``entropy`` | ``percentile`` (``percentile``)
percentile         percentile of |x| kept by ``method=percentile`` (99.99)
input_shape        ``"3x224x224"`` / ``[3, 224, 224]`` (a leading batch is ignored): needed when the model's
                   H/W are dynamic; must match its static dimensions otherwise
resize             image sources: shorter side after resizing (crop / 0.875)
crop               image sources: centre-crop size, int or [h, w] (the model's H×W)
mean, std          per-channel normalisation after scaling pixels to [0, 1] (digits: their own 0.3051 / 0.3821,
                   as the zoo is trained; other images: ImageNet's for 3 channels, its channel average otherwise)
layout             ``nchw`` | ``nhwc`` | ``auto`` (auto: NHWC only if the input's last axis is 1/3/4 channels
                   and its second is not)
seed               seed for synthetic data, photo crops and sample order (0)
cache              reuse / store calibration tables on disk (true)
cache_dir          where (``$ATTNX_CACHE/calibration`` if ATTNX_CACHE is set, else ~/.cache/attnx/calibration)
progress           show a progress bar (when stderr is a terminal)
threads            ONNX Runtime intra-op threads for calibration and checks (ORT default)
exclude            node names to keep in float (FP16: kept FP32; INT8: not quantized), besides the plan's own
reduce_extent      reductions over at least this many elements are kept FP32 (1024: the FP16 ulp of a
                   running sum of O(1) terms reaches 1 there)
quantize_gates     INT8: quantize sigmoid gates too (with their calibrated range) instead of leaving them float;
                   faster in ONNX Runtime (QLinearMul), measured accuracy-neutral on the zoo (false)
kernel_timing      INT8, ORT layout: time each grouped or dilated convolution alone in FP32 and int8 and keep
                   float only those whose int8 kernel is not faster (true); false keeps them all float
fp16_range_check   FP16: run the calibration data through the FP32 model and keep FP32 every tensor whose
                   |x| exceeds ``fp16_limit`` (true)
fp16_limit         that bound (16384: FP16's largest finite value is 65504; a 4× margin for unseen inputs)
max_input_shape    FP16 of a graph with dynamic H/W: the largest input the bundle must serve (``"3x1024x1024"``);
                   overflow pins and large reductions are decided there, not only at the calibration size. Without
                   it the bundle accepts any H×W, and every sum whose extent grows with H·W stays FP32
cpu_target         INT8 (ORT layout): the CPU the bundle is for: ``native`` (this one: 7-bit weights where its
                   u8×s8 kernels saturate, i.e. x86 without VNNI), ``portable`` (7-bit weights: right on every
                   CPU), ``vnni`` (full 8-bit weights for VNNI/AMX/ARM CPUs) (native); see attnx.core.cpu
sensitivity        INT8: ``true`` or a budget ``{"min_cosine": 0.99, "max_top1_drop": 1.0, "max_excluded": N}``:
                   measure each quantized node's effect and exclude the worst until the budget holds
                   (top-1 drop in percentage points, measured as disagreement with FP32) (off)
=================  ==========================================================================================
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from attnx.core.cpu import CPU_TARGETS
from attnx.core.errors import UserError

METHODS = ("minmax", "entropy", "percentile")
LAYOUTS = ("auto", "nchw", "nhwc")
NAMED_SOURCES = ("digits", "photos", "synthetic")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
KEYS = (
    "source",
    "count",
    "eval_count",
    "batch_size",
    "method",
    "percentile",
    "input_shape",
    "resize",
    "crop",
    "mean",
    "std",
    "layout",
    "seed",
    "cache",
    "cache_dir",
    "progress",
    "threads",
    "exclude",
    "reduce_extent",
    "fp16_range_check",
    "fp16_limit",
    "max_input_shape",
    "sensitivity",
    "quantize_gates",
    "kernel_timing",
    "cpu_target",
)
# Keys whose field has another name: what users write as input_shape is a sample's (C, H, W), no batch (an
# ``input_shape`` in attnx is a whole input, N×C×H×W), so the fields are named as exporters name it.
FIELD_OF_KEY = {"input_shape": "sample_shape", "max_input_shape": "max_sample_shape"}


@dataclass(frozen=True)
class Budget:
    """Sensitivity mode's accuracy budget, measured against the FP32 model on held-out samples."""

    min_cosine: float = 0.99  # every output's cosine similarity
    max_top1_drop: float = 1.0  # percentage points of top-1 disagreement with FP32 (classifier outputs)
    max_excluded: int | None = None  # give up (and say so) after this many; None: half the quantized nodes


@dataclass(frozen=True)
class CalibrationConfig:
    """The validated calibration options: one field per key of the table in this module's docstring.

    Build it with :meth:`from_dict` (the user's dict, or :func:`parse_cli_options` of ``--calib``); the
    defaults are the table's; the keys ``input_shape`` / ``max_input_shape`` fill ``sample_shape`` /
    ``max_sample_shape`` (``FIELD_OF_KEY``). Shapes are (C, H, W) without the batch axis; ``crop`` is (H, W) in pixels;
    ``mean`` / ``std`` are per channel, applied to pixels scaled to [0, 1]; ``percentile`` is in (50, 100];
    ``fp16_limit`` is an absolute value in (0, 65504]; ``reduce_extent`` counts elements.
    """

    source: str = "digits"
    count: int = 64
    eval_count: int = 32
    batch_size: int = 8
    method: str = "percentile"
    percentile: float = 99.99
    sample_shape: tuple[int, ...] | None = None  # C, H, W (key input_shape)
    max_sample_shape: tuple[int, ...] | None = None  # C, H, W (key max_input_shape): the largest an FP16 plan holds at
    resize: int | None = None
    crop: tuple[int, int] | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    layout: str = "auto"
    seed: int = 0
    cache: bool = True
    cache_dir: Path = field(default_factory=lambda: default_cache_dir())
    progress: bool = field(default_factory=lambda: sys.stderr.isatty())
    threads: int | None = None
    exclude: tuple[str, ...] = ()
    reduce_extent: int = 1024
    quantize_gates: bool = False
    kernel_timing: bool = True
    fp16_range_check: bool = True
    fp16_limit: float = 16384.0
    sensitivity: Budget | None = None
    cpu_target: str = "native"

    @classmethod
    def from_dict(cls, options: dict[str, Any] | None) -> CalibrationConfig:
        """Parse and check the user's options; every problem is a one-line UserError naming the key."""
        options = dict(options or {})
        unknown = sorted(set(options) - set(KEYS))
        if unknown:
            raise UserError(f"unknown calibration option(s) {', '.join(unknown)}: valid keys are {', '.join(KEYS)}")
        kw: dict[str, Any] = {}
        if "source" in options:
            kw["source"] = _source(options["source"])
        for key in ("count", "eval_count", "batch_size", "seed", "reduce_extent"):
            if key in options:
                kw[key] = _int(key, options[key], minimum=0 if key in ("seed", "eval_count") else 1)
        if options.get("threads") is not None:
            kw["threads"] = _int("threads", options["threads"], minimum=1)
        if "method" in options:
            method = str(options["method"]).lower()
            if method not in METHODS:
                raise UserError(f"unknown calibration method '{options['method']}': choose {', '.join(METHODS)}")
            kw["method"] = method
        if "percentile" in options:
            p = _float("percentile", options["percentile"])
            if not 50.0 < p <= 100.0:
                raise UserError(f"calibration percentile must be in (50, 100], got {p}")
            kw["percentile"] = p
        if "fp16_limit" in options:
            limit = _float("fp16_limit", options["fp16_limit"])
            if not 0 < limit <= 65504:
                raise UserError(f"fp16_limit must be in (0, 65504], got {limit}")
            kw["fp16_limit"] = limit
        if options.get("input_shape") is not None:
            kw["sample_shape"] = _shape(options["input_shape"])
        if options.get("max_input_shape") is not None:
            kw["max_sample_shape"] = _shape(options["max_input_shape"])
        if options.get("resize") is not None:
            kw["resize"] = _int("resize", options["resize"], minimum=1)
        if options.get("crop") is not None:
            kw["crop"] = _hw(options["crop"])
        for key in ("mean", "std"):
            if options.get(key) is not None:
                kw[key] = _floats(key, options[key])
        if kw.get("std") and any(s <= 0 for s in kw["std"]):
            raise UserError(f"calibration std must be positive, got {list(kw['std'])}")
        if "layout" in options:
            layout = str(options["layout"]).lower()
            if layout not in LAYOUTS:
                raise UserError(f"unknown layout '{options['layout']}': choose {', '.join(LAYOUTS)}")
            kw["layout"] = layout
        for key in ("cache", "progress", "fp16_range_check", "quantize_gates", "kernel_timing"):
            if key in options:
                kw[key] = _bool(key, options[key])
        if options.get("cache_dir") is not None:
            kw["cache_dir"] = Path(options["cache_dir"]).expanduser()
        if options.get("exclude"):
            names = options["exclude"]
            kw["exclude"] = tuple(names.split(",") if isinstance(names, str) else (str(n) for n in names))
        if options.get("cpu_target") is not None:
            target = str(options["cpu_target"]).lower()
            if target not in CPU_TARGETS:
                raise UserError(f"unknown cpu_target '{options['cpu_target']}': choose {', '.join(CPU_TARGETS)}")
            kw["cpu_target"] = target
        if options.get("sensitivity") not in (None, False):
            kw["sensitivity"] = _budget(options["sensitivity"])
        return cls(**kw)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able echo of the options in force (for reports), by the keys users write."""
        out: dict[str, Any] = {}
        for key in KEYS:
            value = getattr(self, FIELD_OF_KEY.get(key, key))
            if isinstance(value, Path):
                value = str(value)
            elif isinstance(value, Budget):
                value = vars(value).copy()
            elif isinstance(value, tuple):
                value = list(value)
            out[key] = value
        return out


def parse_cli_options(items: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """``["source=digits", "count=128", 'sensitivity={"min_cosine": 0.995}']`` → an options dict.

    For the CLI's repeatable ``--calib KEY=VALUE``: values stay strings (``from_dict`` parses them) except
    JSON objects and lists. Unknown keys are reported here, with the valid ones.

    Raises:
        UserError: an item without "=" or a key, an unknown key, or a value starting with "{" / "[" that is
            not valid JSON.
    """
    import json

    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UserError(f"bad --calib '{item}': write KEY=VALUE, e.g. --calib source=digits")
        if key not in KEYS:
            raise UserError(f"unknown calibration option '{key}' in --calib: valid keys are {', '.join(KEYS)}")
        value = value.strip()
        if value[:1] in ("{", "["):
            try:
                out[key] = json.loads(value)
            except json.JSONDecodeError as exc:
                raise UserError(f"bad JSON in --calib {key}=...: {exc.msg} at column {exc.colno}") from None
        else:
            out[key] = value
    return out


def default_cache_dir() -> Path:
    """Where calibration tables are cached: ``$ATTNX_CACHE/calibration``, else ``~/.cache/attnx/calibration``
    (not created here)."""
    root = os.environ.get("ATTNX_CACHE")
    return (Path(root).expanduser() if root else Path.home() / ".cache" / "attnx") / "calibration"


def _source(value: Any) -> str:
    text = str(value).strip()
    if not text:
        raise UserError(f"empty calibration source: give {', '.join(NAMED_SOURCES)}, an image folder or a .npy/.npz")
    return text


def _int(key: str, value: Any, minimum: int) -> int:
    try:
        number = int(value)
        if isinstance(value, float) and number != value:
            raise ValueError
    except (TypeError, ValueError):
        raise UserError(f"calibration option {key} must be an integer, got {value!r}") from None
    if number < minimum:
        raise UserError(f"calibration option {key} must be ≥ {minimum}, got {number}")
    return number


def _float(key: str, value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise UserError(f"calibration option {key} must be a number, got {value!r}") from None


def _floats(key: str, value: Any) -> tuple[float, ...]:
    items = value.split(",") if isinstance(value, str) else value if isinstance(value, (list, tuple)) else [value]
    return tuple(_float(key, v) for v in items)


def _bool(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise UserError(f"calibration option {key} must be true or false, got {value!r}")


def _shape(value: Any) -> tuple[int, ...]:
    parts = value.lower().replace(",", "x").split("x") if isinstance(value, str) else list(value)
    try:
        dims = tuple(int(p) for p in parts if str(p).strip())
    except (TypeError, ValueError):
        raise UserError(f"bad calibration input_shape {value!r}: write it as CxHxW, e.g. 3x224x224") from None
    if len(dims) == 4:
        dims = dims[1:]  # a leading batch is ignored: calibration batches by batch_size
    if len(dims) != 3 or any(d <= 0 for d in dims):
        raise UserError(f"bad calibration input_shape {value!r}: write it as CxHxW, e.g. 3x224x224")
    return dims


def _hw(value: Any) -> tuple[int, int]:
    if isinstance(value, (int, str)) and "x" not in str(value):
        size = _int("crop", value, minimum=1)
        return size, size
    parts = value.lower().split("x") if isinstance(value, str) else list(value)
    if len(parts) != 2:
        raise UserError(f"bad calibration crop {value!r}: give one size or HxW, e.g. 224 or 224x256")
    return _int("crop", parts[0], minimum=1), _int("crop", parts[1], minimum=1)


def _budget(value: Any) -> Budget:
    if value is True or (isinstance(value, str) and value.lower() in ("1", "true", "yes", "on")):
        return Budget()
    if not isinstance(value, dict):
        raise UserError(f"calibration sensitivity must be true or a budget dict, got {value!r}")
    unknown = sorted(set(value) - {"min_cosine", "max_top1_drop", "max_excluded"})
    if unknown:
        raise UserError(f"unknown sensitivity key(s) {', '.join(unknown)}: use min_cosine, max_top1_drop, max_excluded")
    budget = Budget(
        min_cosine=_float("sensitivity.min_cosine", value.get("min_cosine", Budget.min_cosine)),
        max_top1_drop=_float("sensitivity.max_top1_drop", value.get("max_top1_drop", Budget.max_top1_drop)),
        max_excluded=(
            _int("sensitivity.max_excluded", value["max_excluded"], minimum=1)
            if value.get("max_excluded") is not None
            else None
        ),
    )
    if not 0 < budget.min_cosine <= 1:
        raise UserError(f"sensitivity min_cosine must be in (0, 1], got {budget.min_cosine}")
    if budget.max_top1_drop < 0:
        raise UserError(f"sensitivity max_top1_drop must be ≥ 0 points, got {budget.max_top1_drop}")
    return budget
