"""Calibration data: where samples come from, how images become model inputs, and their hash.

Sources (``CalibrationConfig.source``):
  * ``digits``    scikit-learn's handwritten digits (1,797 real 8×8 images shipped inside the package),
                  upsampled to the model's H×W and replicated to its channels, split and normalised as the
                  zoo is trained (calibration: training split; checks: test split; labels kept);
  * ``photos``    seeded random-resized crops of scikit-learn's two sample photographs (real, natural images);
  * ``synthetic`` seeded standard-normal tensors: allowed, and flagged as synthetic in every report;
  * a folder of images (searched recursively; resize → centre crop → [0, 1] → mean/std → layout);
  * a ``.npy`` file (N×… or one sample) or a ``.npz`` file (arrays named as the model inputs).

Calibration and held-out evaluation samples are disjoint where the source has enough of them (the
evaluation set checks the result and drives sensitivity mode); where it has not, the report says so.
"""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from attnx.calibration.config import IMAGENET_MEAN, IMAGENET_STD, CalibrationConfig
from attnx.calibration.graph import InputInfo
from attnx.core.errors import UserError, warn
from attnx.exporters.digits import MEAN, STD, load_digits_split

if TYPE_CHECKING:
    from PIL import Image

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".ppm", ".pgm", ".tif", ".tiff", ".webp")
CROP_FRACTION = 0.875  # resize = crop / 0.875, the usual ImageNet evaluation transform


@dataclass
class ImageInput:
    """The model's image input as calibration sees it: channels, size and layout."""

    name: str
    channels: int
    height: int
    width: int
    layout: str  # nchw | nhwc
    dtype: np.dtype

    def sample_shape(self) -> tuple[int, int, int]:
        """One sample's shape without the batch axis: (C, H, W) for nchw, (H, W, C) for nhwc."""
        if self.layout == "nhwc":
            return self.height, self.width, self.channels
        return self.channels, self.height, self.width


@dataclass
class CalibrationData:
    """Samples for every model input (first axis: samples), and what they are."""

    arrays: dict[str, np.ndarray]
    description: str
    synthetic: bool
    notes: list[str] = field(default_factory=list)
    labels: np.ndarray | None = None  # class labels, where the source has them (digits)

    @property
    def count(self) -> int:
        """Number of samples N (the first axis of every array; the arrays agree on it)."""
        return int(next(iter(self.arrays.values())).shape[0])

    def sha256(self) -> str:
        """Hex SHA-256 of the samples: each input's name, dtype, shape and bytes, inputs in name order.

        Part of the calibration cache key (``attnx.calibration.table``): the same data gives the same
        digest on any machine with the same byte order.
        """
        h = hashlib.sha256()
        for name in sorted(self.arrays):
            arr = np.ascontiguousarray(self.arrays[name])
            h.update(f"{name}|{arr.dtype.str}|{arr.shape};".encode())
            h.update(arr.tobytes())
        return h.hexdigest()

    def batches(self, batch_size: int) -> Iterator[dict[str, np.ndarray]]:
        """Feeds of at most ``batch_size`` samples (views, in order; the last may be shorter)."""
        for start in range(0, self.count, batch_size):
            yield {k: v[start : start + batch_size] for k, v in self.arrays.items()}

    def input_shapes(self) -> dict[str, tuple[int, ...]]:
        """Per input, the shape of one batch-1 feed (batch included: (1, C, H, W) for an image input)."""
        return {k: (1, *v.shape[1:]) for k, v in self.arrays.items()}

    def head(self, n: int) -> CalibrationData:
        """The first ``n`` samples (views) with their labels; same description, synthetic flag and notes."""
        labels = self.labels[:n] if self.labels is not None else None
        return CalibrationData({k: v[:n] for k, v in self.arrays.items()}, self.description, self.synthetic,
                               list(self.notes), labels)  # fmt: skip


def image_input(inputs: list[InputInfo], cfg: CalibrationConfig) -> ImageInput:
    """The single 4-D float input that image sources feed, with its concrete C, H, W.

    Layout ``auto`` reads NHWC only when the last axis is 1, 3 or 4 and the second is not. Dynamic axes
    take ``cfg.sample_shape`` (C, H, W; the ``input_shape`` key), else ``cfg.crop`` (H, W).

    Raises:
        UserError: the model has more than one input, its input is not rank 4 or not float, a given
            ``input_shape`` / ``crop`` contradicts a fixed axis, or H/W stay dynamic with no shape given.
    """
    if len(inputs) != 1:
        names = ", ".join(i.name for i in inputs)
        raise UserError(
            f"source '{cfg.source}' feeds one image input, but the model has {len(inputs)} ({names}): "
            "give a .npz with one array per input, or source synthetic"
        )
    spec = inputs[0]
    if len(spec.shape) != 4:
        raise UserError(
            f"source '{cfg.source}' makes images, but input '{spec.name}' has rank {len(spec.shape)} {spec.shape}: "
            "give a .npy/.npz file, or source synthetic"
        )
    if spec.dtype.kind != "f":
        raise UserError(f"input '{spec.name}' is {spec.dtype}, not float: give a .npy/.npz file of that type")
    d1, d2, d3 = spec.shape[1:]
    layout = cfg.layout
    if layout == "auto":
        layout = "nhwc" if d3 in (1, 3, 4) and d1 not in (1, 3, 4) else "nchw"
    c, h, w = (d3, d1, d2) if layout == "nhwc" else (d1, d2, d3)
    want = cfg.sample_shape
    if want is None and cfg.crop is not None and isinstance(c, int):
        want = (c, *cfg.crop)
    if want is not None:
        for axis, got, fixed in zip(("C", "H", "W"), want, (c, h, w)):
            if isinstance(fixed, int) and fixed != got:
                raise UserError(
                    f"calibration shape {'x'.join(map(str, want))} does not match input '{spec.name}' "
                    f"({axis} is fixed at {fixed} in {spec.shape}): drop input_shape/crop or match the model"
                )
        c, h, w = want
    if not all(isinstance(v, int) for v in (c, h, w)):
        raise UserError(
            f"input '{spec.name}' has dynamic dimensions {spec.shape}: pass a calibration input_shape, e.g. 3x224x224"
        )
    if cfg.crop is not None and tuple(cfg.crop) != (h, w):
        raise UserError(
            f"calibration crop {cfg.crop[0]}x{cfg.crop[1]} does not match the model's input {h}x{w} "
            f"('{spec.name}' {spec.shape}): drop crop or set it to {h}x{w}"
        )
    return ImageInput(spec.name, int(c), int(h), int(w), layout, spec.dtype)


def load_split(inputs: list[InputInfo], cfg: CalibrationConfig) -> tuple[CalibrationData, CalibrationData]:
    """Calibration samples and held-out evaluation samples from ``cfg.source``.

    Args:
        inputs: the model's inputs (:func:`attnx.calibration.graph.graph_inputs`).
        cfg: the options; ``count`` calibration and ``eval_count`` held-out samples are asked for.

    Returns:
        (calibration, held-out): arrays keyed by input name, samples on axis 0, in the input's dtype
        (images: float, normalised by ``mean`` / ``std``). The held-out set may be empty or smaller when the
        source has too few samples (its notes say so).

    Raises:
        UserError: an unknown or missing source; a file that cannot be read, lacks an input, has the wrong
            rank, fixed-axis size or dtype, holds NaN/inf or no samples; an image source for a model that
            is not a single 4-D float input (:func:`image_input`); a folder without readable images.
    """
    src = cfg.source
    total = cfg.count + cfg.eval_count
    if src == "synthetic":
        return _synthetic(inputs, cfg)
    if src == "digits":
        spec = image_input(inputs, cfg)
        return _digits(spec, cfg, "train", cfg.count), _digits(spec, cfg, "test", cfg.eval_count)
    if src == "photos":
        spec = image_input(inputs, cfg)
        data = _photos(spec, cfg, total)
        return _split(data, cfg)
    path = Path(src).expanduser()
    if path.is_dir():
        spec = image_input(inputs, cfg)
        return _split(_folder(path, spec, cfg, total), cfg)
    if path.suffix.lower() in (".npy", ".npz"):
        if not path.is_file():
            raise UserError(f"calibration file not found: {path}")
        return _split(_arrays(path, inputs, cfg), cfg)
    if not path.exists():
        raise UserError(
            f"calibration source '{src}' not found: give digits, photos, synthetic, an image folder or a .npy/.npz file"
        )
    raise UserError(f"unsupported calibration source '{src}': give an image folder or a .npy/.npz file")


def _split(data: CalibrationData, cfg: CalibrationConfig) -> tuple[CalibrationData, CalibrationData]:
    n = data.count
    calib_n = min(cfg.count, n)
    labels = data.labels
    calib = CalibrationData(
        {k: v[:calib_n] for k, v in data.arrays.items()},
        data.description,
        data.synthetic,
        list(data.notes),
        labels[:calib_n] if labels is not None else None,
    )
    if calib_n < cfg.count:
        calib.notes.append(f"the source has {n} samples, fewer than the {cfg.count} asked for: calibrating on {n}")
    rest = {k: v[calib_n : calib_n + cfg.eval_count] for k, v in data.arrays.items()}
    if cfg.eval_count and next(iter(rest.values())).shape[0] == 0:
        held = CalibrationData(
            {k: v[: cfg.eval_count] for k, v in data.arrays.items()},
            data.description,
            data.synthetic,
            ["no held-out samples left: checked on calibration samples"],
        )
    else:
        held = CalibrationData(rest, data.description, data.synthetic)
    return calib, held


def _normalise(pixels: np.ndarray, spec: ImageInput, cfg: CalibrationConfig) -> np.ndarray:
    """[0, 1] pixels (N, H, W, C) → normalised model input in its layout and dtype."""
    c = spec.channels
    mean = cfg.mean or (IMAGENET_MEAN if c == 3 else (float(np.mean(IMAGENET_MEAN)),) * c)
    std = cfg.std or (IMAGENET_STD if c == 3 else (float(np.mean(IMAGENET_STD)),) * c)
    for key, values in (("mean", mean), ("std", std)):
        if len(values) not in (1, c):
            raise UserError(f"calibration {key} has {len(values)} values, the model input has {c} channels")
    out = (pixels - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)  # 1 value: every channel
    if spec.layout == "nchw":
        out = out.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(out, dtype=spec.dtype)


# The digits split and normalisation attnx trains its zoo classifiers with: calibration draws from the
# training split, checks use the test split, and inputs are normalised as in training.
DIGITS_MEAN, DIGITS_STD = MEAN, STD


def digits_split(split: str) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits ``split`` ("train" | "test", stratified 75/25): images (N, 8, 8) in [0, 1], labels."""
    return load_digits_split(split)


def upsample_bilinear(images: np.ndarray, height: int, width: int) -> np.ndarray:
    """(N, h, w) → (N, height, width): bilinear with half-pixel centres (torch's ``align_corners=False``)."""

    def axis(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        src = np.maximum((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0.0)
        lo = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
        hi = np.minimum(lo + 1, n_in - 1)
        return lo, hi, (src - lo).astype(np.float32)

    y0, y1, wy = axis(images.shape[1], height)
    x0, x1, wx = axis(images.shape[2], width)
    rows = images[:, y0, :] * (1 - wy)[None, :, None] + images[:, y1, :] * wy[None, :, None]
    return rows[:, :, x0] * (1 - wx)[None, None, :] + rows[:, :, x1] * wx[None, None, :]


def _digits(spec: ImageInput, cfg: CalibrationConfig, split: str, n: int) -> CalibrationData:
    images, labels = digits_split(split)
    order = np.random.default_rng(cfg.seed).permutation(len(images))[:n]
    pixels = upsample_bilinear(images[order], spec.height, spec.width)[..., None].repeat(spec.channels, axis=3)
    if cfg.mean is None and cfg.std is None:  # grey digits: their own statistics, as in training
        cfg = replace(cfg, mean=(DIGITS_MEAN,), std=(DIGITS_STD,))
    desc = (f"scikit-learn digits, {split} split (real 8x8 images upsampled to {spec.height}x{spec.width}, "
            f"order seed {cfg.seed})")  # fmt: skip
    data = CalibrationData({spec.name: _normalise(pixels, spec, cfg)}, desc, synthetic=False, labels=labels[order])
    if len(order) < n:
        data.notes.append(f"the digits {split} split has {len(order)} images, fewer than the {n} asked for")
    return data


def _photos(spec: ImageInput, cfg: CalibrationConfig, total: int) -> CalibrationData:
    try:
        from sklearn.datasets import load_sample_images  # type: ignore[import-untyped]
    except ImportError:
        raise UserError("source photos needs scikit-learn: pip install scikit-learn") from None
    from PIL import Image

    photos = [Image.fromarray(img) for img in load_sample_images().images]
    rng = np.random.default_rng(cfg.seed)
    images = np.empty((total, spec.height, spec.width, spec.channels), np.float32)
    for k in range(total):
        img = photos[int(rng.integers(len(photos)))]
        # random-resized crop: 8–100 % of the area, aspect 3:4–4:3, random flip (torchvision's defaults)
        area = img.width * img.height * rng.uniform(0.08, 1.0)
        aspect = float(np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3))))
        w = int(min(img.width, round(np.sqrt(area * aspect))))
        h = int(min(img.height, round(np.sqrt(area / aspect))))
        x0 = int(rng.integers(0, img.width - w + 1))
        y0 = int(rng.integers(0, img.height - h + 1))
        crop = img.crop((x0, y0, x0 + w, y0 + h)).resize((spec.width, spec.height), Image.Resampling.BILINEAR)
        if rng.random() < 0.5:
            crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        images[k] = _pixels(crop, spec.channels)
    desc = f"scikit-learn sample photos (random-resized crops of 2 real photographs, seed {cfg.seed})"
    return CalibrationData({spec.name: _normalise(images, spec, cfg)}, desc, synthetic=False)


def _pixels(img: Image.Image, channels: int) -> np.ndarray:
    """A PIL image → float32 H×W×C in [0, 1]."""
    if channels == 3:
        arr = np.asarray(img.convert("RGB"), np.float32)
    elif channels == 1:
        arr = np.asarray(img.convert("L"), np.float32)[:, :, None]
    else:
        raise UserError(f"image sources make 1- or 3-channel inputs; the model wants {channels}: give a .npy/.npz")
    return arr / 255.0


def list_images(folder: Path) -> list[Path]:
    """The image files under ``folder`` (recursive; suffixes in ``IMAGE_SUFFIXES``, any case), sorted by path."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


_CONVERSIONS_SAID: set[tuple[str, int, int]] = set()


def _folder(folder: Path, spec: ImageInput, cfg: CalibrationConfig, total: int) -> CalibrationData:
    from PIL import Image, UnidentifiedImageError

    files = list_images(folder)
    if not files:
        raise UserError(
            f"calibration folder {folder} has no images ({', '.join(IMAGE_SUFFIXES[:5])}, ...): add images or "
            "choose another source"
        )
    order = np.random.default_rng(cfg.seed).permutation(len(files))[:total]  # mix class sub-folders
    crop_h, crop_w = spec.height, spec.width
    resize = cfg.resize or int(round(max(crop_h, crop_w) / CROP_FRACTION))
    if resize < max(crop_h, crop_w) and cfg.resize is not None:
        raise UserError(f"calibration resize {resize} is smaller than the crop {crop_h}x{crop_w}: raise resize")
    images = np.empty((len(order), crop_h, crop_w, spec.channels), np.float32)
    converted = 0  # grayscale images given to a colour model (or colour to a grayscale one)
    for k, idx in enumerate(order):
        path = files[idx]
        try:
            with Image.open(path) as img:
                img.load()
                converted += (img.mode in ("1", "L", "LA", "I", "I;16", "F")) == (spec.channels == 3)
                images[k] = _pixels(_resize_crop(img, resize, crop_h, crop_w), spec.channels)
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise UserError(f"cannot read calibration image {path}: {first[:160]}; remove or replace it") from None
    desc = (
        f"image folder {folder} ({len(files)} images found, resize {resize}, centre crop {crop_h}x{crop_w}, "
        f"order seed {cfg.seed})"
    )
    if converted:
        to = "RGB (gray repeated in 3 channels)" if spec.channels == 3 else "grayscale"
        desc += f"; {converted} of {len(order)} images converted to {to}"
        key = (str(Path(folder).resolve()), converted, len(order))
        if key not in _CONVERSIONS_SAID:  # a build reads its calibration folder more than once: say it once
            _CONVERSIONS_SAID.add(key)
            warn(f"calibration: {converted} of {len(order)} images in {folder} are "
                 f"{'grayscale' if spec.channels == 3 else 'colour'}; converted to {to} for the model's "
                 f"{spec.channels}-channel input")  # fmt: skip
    return CalibrationData({spec.name: _normalise(images, spec, cfg)}, desc, synthetic=False)


def _resize_crop(img: Image.Image, resize: int, crop_h: int, crop_w: int) -> Image.Image:
    from PIL import Image

    w, h = img.size
    scale = resize / min(w, h)
    nw, nh = max(crop_w, int(round(w * scale))), max(crop_h, int(round(h * scale)))
    img = img.convert("RGB") if img.mode not in ("RGB", "L") else img
    img = img.resize((nw, nh), Image.Resampling.BILINEAR)
    left, top = (nw - crop_w) // 2, (nh - crop_h) // 2
    return img.crop((left, top, left + crop_w, top + crop_h))


def _arrays(path: Path, inputs: list[InputInfo], cfg: CalibrationConfig) -> CalibrationData:
    try:
        if path.suffix.lower() == ".npz":
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
            if len(inputs) == 1 and len(arrays) == 1:
                arrays = {inputs[0].name: next(iter(arrays.values()))}
        else:
            if len(inputs) != 1:
                names = ", ".join(i.name for i in inputs)
                raise UserError(f"{path} holds one array but the model has {len(inputs)} inputs ({names}): use .npz")
            arrays = {inputs[0].name: np.load(path, allow_pickle=False)}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise UserError(f"cannot read calibration data {path}: {str(exc)[:160]}") from None
    missing = [i.name for i in inputs if i.name not in arrays]
    if missing:
        raise UserError(f"{path} lacks the model input(s) {missing}; it holds {sorted(arrays)}")
    out: dict[str, np.ndarray] = {}
    for spec in inputs:
        arr = arrays[spec.name]
        if arr.ndim == len(spec.shape) - 1:
            arr = arr[None]  # one sample without its batch axis
        _check_array(path, spec, arr)
        if arr.dtype.kind not in "fiub" or (spec.dtype.kind == "f" and arr.dtype.kind not in "fiu"):
            raise UserError(f"{path}: array '{spec.name}' is {arr.dtype}, the model input is {spec.dtype}")
        out[spec.name] = np.ascontiguousarray(arr.astype(spec.dtype, copy=False))
        if out[spec.name].dtype.kind == "f":
            bad = int(np.size(out[spec.name]) - np.count_nonzero(np.isfinite(out[spec.name])))
            if bad:
                raise UserError(f"{path}: array '{spec.name}' holds {bad} NaN or infinite value(s) (as "
                                f"{spec.dtype}); calibration needs finite data: clean it")  # fmt: skip
    counts = {k: v.shape[0] for k, v in out.items()}
    if len(set(counts.values())) != 1:
        raise UserError(f"{path}: arrays hold different sample counts {counts}; give equal counts")
    n = next(iter(counts.values()))
    if n == 0:
        raise UserError(f"{path} holds no samples: give at least one")
    return CalibrationData(out, f"{path} ({n} samples)", synthetic=False)


def _check_array(path: Path, spec: InputInfo, arr: np.ndarray) -> None:
    if arr.ndim != len(spec.shape):
        raise UserError(
            f"{path}: array '{spec.name}' has shape {arr.shape}, the model input has rank {len(spec.shape)} "
            f"{spec.shape}; reshape the data"
        )
    for axis, (got, want) in enumerate(zip(arr.shape[1:], spec.shape[1:]), start=1):
        if isinstance(want, int) and got != want:
            raise UserError(
                f"{path}: array '{spec.name}' has shape {arr.shape}, but axis {axis} of the model input is fixed at "
                f"{want} {spec.shape}; give data of that shape"
            )


def _synthetic(inputs: list[InputInfo], cfg: CalibrationConfig) -> tuple[CalibrationData, CalibrationData]:
    shapes: dict[str, tuple[int, ...]] = {}
    for spec in inputs:
        dims = list(spec.shape[1:])
        if any(not isinstance(d, int) for d in dims):
            if len(spec.shape) == 4 and len(inputs) == 1:
                img = image_input(inputs, cfg)
                dims = list(img.sample_shape())
            else:
                raise UserError(f"input '{spec.name}' has dynamic dimensions {spec.shape}: give a .npz of real data")
        elif len(spec.shape) == 4 and len(inputs) == 1 and (cfg.sample_shape or cfg.crop):
            image_input(inputs, cfg)  # a conflicting input_shape is an error here too
        shapes[spec.name] = tuple(int(d) for d in dims)

    def make(seed: int, n: int) -> CalibrationData:
        rng = np.random.default_rng(seed)
        arrays = {}
        for spec in inputs:
            shape = (n, *shapes[spec.name])
            if spec.dtype.kind == "f":
                arrays[spec.name] = rng.standard_normal(shape).astype(spec.dtype)
            else:
                arrays[spec.name] = rng.integers(0, 2, size=shape).astype(spec.dtype)
        desc = f"SYNTHETIC seeded standard-normal data (seed {seed}): not real images"
        return CalibrationData(arrays, desc, synthetic=True)

    # evaluation samples come from another seed, so they are held out too
    return make(cfg.seed, cfg.count), make(cfg.seed + 1_000_003, max(cfg.eval_count, 1))


def describe(data: CalibrationData) -> dict[str, Any]:
    """JSON-ready summary for reports: source description, synthetic flag, sample count, and per input
    the shape of one sample (no batch axis)."""
    shapes = {k: list(v.shape[1:]) for k, v in data.arrays.items()}
    return {"source": data.description, "synthetic": data.synthetic, "count": data.count, "sample_shapes": shapes}
