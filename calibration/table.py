"""Calibration tables: per-tensor ranges of the FP32 model on calibration data, cached on disk.

Ranges are collected with an augmented copy of the graph (every float tensor made an output) run in
ONNX Runtime on the CPU, so attnx custom nodes work too. Methods:

* ``minmax``: the observed [min, max];
* ``percentile``: |x| clipped at the given percentile of a 2048-bin histogram of |x|;
* ``entropy``: |x| clipped where the KL divergence between the 2048-bin histogram and its 128-level
  quantisation is smallest (TensorRT's entropy calibration).

For the histogram methods a first pass finds each tensor's |x| bound and a second fills histograms on
[0, bound]; both passes run over the same samples. A table is keyed by the hash of the graph, the hash of
the data and the method; it is written atomically to the cache folder and reused on the next build.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from attnx.calibration.graph import GraphIndex, session
from attnx.core.errors import UserError
from attnx.core.files import write_bytes
from attnx.core.library_errors import ort_message

if TYPE_CHECKING:
    import onnx

    from attnx.calibration.data import CalibrationData

FORMAT = "attnx-calibration-table"
FORMAT_VERSION = 1
NUM_BINS = 2048
NUM_LEVELS = 128  # positive levels of symmetric int8
ALGORITHM_REVISION = 2  # bump when a method's arithmetic changes: old cached tables then miss


@dataclass
class TensorRange:
    """One tensor's calibration range, in the tensor's own units (float32 values as float).

    ``min`` / ``max``: what the calibration data produced; ``lo`` / ``hi``: the range to quantize over
    (= min / max for ``minmax``; |x| clipped symmetrically by ``percentile`` / ``entropy``).
    """

    min: float  # observed
    max: float
    lo: float  # range to quantise over (clipped by the method)
    hi: float

    @property
    def amax(self) -> float:
        """Symmetric bound (TensorRT-style scale = amax / 127)."""
        return max(abs(self.lo), abs(self.hi))

    def to_dict(self) -> dict[str, float]:
        """JSON form: {"min", "max", "lo", "hi"}."""
        return {"min": self.min, "max": self.max, "lo": self.lo, "hi": self.hi}


@dataclass
class CalibrationTable:
    """Per-tensor ranges of an FP32 model on calibration data, and what they were computed from.

    Attributes:
        method: "minmax" | "entropy" | "percentile".
        percentile: the percentile of |x| kept (``method == "percentile"``), else None.
        ranges: tensor name → ``TensorRange``, for every float activation (graph inputs, node outputs).
        key: the cache key (:func:`cache_key`, hex SHA-256).
        model_sha256: :func:`attnx.calibration.graph.graph_sha256` of the model calibrated.
        data: the data's description, synthetic flag, sample count and SHA-256.
        notes: remarks from collection (e.g. tensors that were never finite).

    Stored as JSON (``FORMAT`` version ``FORMAT_VERSION``): ``calibration.json`` in an INT8 bundle, and in
    the cache folder.
    """

    method: str
    percentile: float | None
    ranges: dict[str, TensorRange]
    key: str
    model_sha256: str
    data: dict[str, Any]  # source description, synthetic flag, count, sha256
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: format, version, key, method, percentile, model hash, data, notes, "tensors"."""
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "key": self.key,
            "method": self.method,
            "percentile": self.percentile,
            "model_sha256": self.model_sha256,
            "data": self.data,
            "notes": self.notes,
            "tensors": {k: v.to_dict() for k, v in self.ranges.items()},
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CalibrationTable:
        """Read the JSON form back.

        Raises:
            ValueError: another format or version, or a range that is not a number.
            KeyError, TypeError: a missing or mistyped field.
        """
        if d.get("format") != FORMAT or d.get("version") != FORMAT_VERSION:
            raise ValueError(f"not an {FORMAT} v{FORMAT_VERSION} file")
        ranges = {
            k: TensorRange(float(v["min"]), float(v["max"]), float(v["lo"]), float(v["hi"]))
            for k, v in d["tensors"].items()
        }
        return cls(
            d["method"], d.get("percentile"), ranges, d["key"], d["model_sha256"], d["data"], list(d.get("notes", []))
        )

    def save(self, path: Path) -> None:
        """Write the JSON form to ``path`` atomically (``attnx.core.files.write_bytes``); raises OSError."""
        write_bytes(path, (json.dumps(self.to_dict(), indent=1) + "\n").encode())

    @classmethod
    def load(cls, path: Path) -> CalibrationTable:
        """Read a table file.

        Raises:
            UserError: the file cannot be read, is not JSON, or is not a table of this format and version.
        """
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise UserError(f"{path} is not a readable attnx calibration table: {exc}") from None


def cache_key(model_sha256: str, data_sha256: str, method: str, percentile: float | None) -> str:
    """What a table depends on: the graph, the data, the method (and its parameter), the table format."""
    spec = {
        "format": FORMAT_VERSION,
        "revision": ALGORITHM_REVISION,
        "model": model_sha256,
        "data": data_sha256,
        "method": method,
        "percentile": percentile if method == "percentile" else None,
        "bins": NUM_BINS,
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


def cache_path(cache_dir: Path, key: str) -> Path:
    """The cache file of a table: ``cache_dir / <first 32 hex digits of key>.json`` (not created)."""
    return Path(cache_dir) / f"{key[:32]}.json"


def cached_or_collect(
    model: onnx.ModelProto,
    index: GraphIndex,
    data: CalibrationData,
    method: str,
    percentile: float | None,
    model_sha256: str,
    cache_dir: Path | None,
    batch_size: int,
    threads: int | None = None,
    progress: bool = False,
) -> tuple[CalibrationTable, bool, list[str]]:
    """The table from the cache when its key matches, else collected (and cached). Returns (table, hit, notes).

    A cached file that is unreadable or does not cover every activation tensor is recollected (and said in
    the notes); a cache that cannot be written is a note too, never an error. ``cache_dir`` None: no
    cache. ``batch_size`` samples per ONNX Runtime run; ``threads`` its intra-op threads.

    Raises:
        UserError: ONNX Runtime refuses the calibration data (shape or type), see :func:`collect_ranges`.
    """
    data_sha = data.sha256()
    pct = percentile if method == "percentile" else None
    key = cache_key(model_sha256, data_sha, method, pct)
    notes: list[str] = []
    path = cache_path(cache_dir, key) if cache_dir is not None else None
    if path is not None and path.is_file():
        try:
            table = CalibrationTable.from_dict(json.loads(path.read_text()))
            if table.key == key and set(index.activation_tensors()) <= set(table.ranges):
                return table, True, notes
            notes.append(f"cached table {path} does not match this model: recollected")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            notes.append(f"cached table {path} unreadable ({type(exc).__name__}): recollected")
    ranges, collect_notes = collect_ranges(model, index, data, method, pct, batch_size, threads, progress)
    notes.extend(collect_notes)
    data_info = {"source": data.description, "synthetic": data.synthetic, "count": data.count, "sha256": data_sha}
    table = CalibrationTable(method, pct, ranges, key, model_sha256, data_info, notes=list(collect_notes))
    if path is not None:
        try:
            table.save(path)
        except OSError as exc:  # a read-only cache must not fail the build; say so instead
            notes.append(f"could not write the calibration cache {path}: {exc.strerror}")
    return table, False, notes


def collect_ranges(
    model: onnx.ModelProto,
    index: GraphIndex,
    data: CalibrationData,
    method: str,
    percentile: float | None,
    batch_size: int,
    threads: int | None = None,
    progress: bool = False,
) -> tuple[dict[str, TensorRange], list[str]]:
    """Run the data through an augmented FP32 graph and reduce every float tensor to a range.

    Returns (tensor name → ``TensorRange``, notes). Non-finite values are left out of the ranges (and
    named in the notes). ``minmax`` takes one pass over the data, the histogram methods two.

    Raises:
        UserError: ONNX Runtime fails on a batch (the message names the feed shapes and the fix).
    """
    tensors = index.activation_tensors()
    sess = session(_augmented(model, tensors, index), threads=threads, optimize=False)
    n_batches = math.ceil(data.count / batch_size)
    passes = 1 if method == "minmax" else 2
    lo = {t: math.inf for t in tensors}
    hi = {t: -math.inf for t in tensors}
    nonfinite: set[str] = set()
    with _progress(progress, n_batches * passes, f"calibrating ({method})") as advance:
        for feed in data.batches(batch_size):
            for t, arr in _run(sess, tensors, feed):
                if arr.size == 0:
                    continue
                finite = np.isfinite(arr)
                if not finite.all():
                    nonfinite.add(t)
                    arr = arr[finite]
                    if arr.size == 0:
                        continue
                lo[t] = min(lo[t], float(arr.min()))
                hi[t] = max(hi[t], float(arr.max()))
            advance()
        seen = [t for t in tensors if lo[t] <= hi[t]]
        if method == "minmax":
            ranges = {t: TensorRange(lo[t], hi[t], lo[t], hi[t]) for t in seen}
        else:
            bound = {t: max(abs(lo[t]), abs(hi[t])) for t in seen}
            hist = {t: np.zeros(NUM_BINS, np.int64) for t in seen}
            for feed in data.batches(batch_size):
                for t, arr in _run(sess, seen, feed):
                    if bound[t] > 0 and arr.size:
                        a = np.abs(arr[np.isfinite(arr)]).ravel()
                        idx = np.minimum((a * (NUM_BINS / bound[t])).astype(np.int64), NUM_BINS - 1)
                        hist[t] += np.bincount(idx, minlength=NUM_BINS)
                advance()
            ranges = {}
            for t in seen:
                if bound[t] == 0:
                    thr = 0.0
                elif method == "percentile":
                    thr = percentile_threshold(hist[t], bound[t], float(percentile or 99.99))
                else:
                    thr = entropy_threshold(hist[t], bound[t])
                ranges[t] = TensorRange(lo[t], hi[t], max(lo[t], -thr), min(hi[t], thr))
    notes = []
    if nonfinite:
        first = sorted(nonfinite)[:3]
        notes.append(
            f"{len(nonfinite)} tensor(s) held NaN/Inf on calibration data (e.g. {first}): ranges use finite values"
        )
    missing = [t for t in tensors if t not in ranges]
    if missing:
        notes.append(f"{len(missing)} tensor(s) were empty on calibration data and have no range: {missing[:3]}")
    return ranges, notes


def _augmented(model: onnx.ModelProto, tensors: list[str], index: GraphIndex) -> onnx.ModelProto:
    import onnx
    from onnx import helper

    m = onnx.ModelProto()
    m.CopyFrom(model)
    present = {o.name for o in m.graph.output}
    for t in tensors:
        if t not in present:
            m.graph.output.append(
                helper.make_tensor_value_info(t, index.elem_types.get(t, onnx.TensorProto.FLOAT), None)
            )
    return m


def _run(sess: Any, tensors: list[str], feed: dict[str, np.ndarray]) -> Iterable[tuple[str, np.ndarray]]:
    try:
        outs = sess.run(tensors, feed)
    except Exception as exc:  # ORT raises its own types; a bad feed is the user's data
        shapes = ", ".join(f"{k} {'x'.join(map(str, v.shape))}" for k, v in feed.items())
        fix = "pass the shape it was exported at (--input-shape / --calib input_shape=CxHxW), or re-export it"
        raise UserError(f"the model rejects calibration data ({shapes}): {ort_message(exc, fix=fix)}") from None
    return zip(tensors, (np.asarray(o, np.float32) for o in outs))


def percentile_threshold(hist: np.ndarray, bound: float, percentile: float) -> float:
    """|x| below which ``percentile`` % of the histogram's mass lies (upper edge of that bin)."""
    total = hist.sum()
    if total == 0:
        return bound
    cdf = np.cumsum(hist) / total
    k = int(np.searchsorted(cdf, percentile / 100.0))
    return float(min(k + 1, len(hist)) * bound / len(hist))


def entropy_threshold(hist: np.ndarray, bound: float, levels: int = NUM_LEVELS, stride: int = 16) -> float:
    """TensorRT's entropy calibration on a histogram of |x|: the clip point minimising KL(P‖Q).

    For each candidate clip bin i, P is the histogram up to i with the clipped tail folded into its last
    bin, Q is P merged into ``levels`` levels and spread back over each level's non-empty bins.
    """
    hist = hist.astype(np.float64)
    bins = len(hist)
    if hist.sum() == 0:
        return bound
    best_i, best_kl = bins, math.inf
    for i in range(levels, bins + 1, stride):
        sliced = hist[:i]
        p = sliced.copy()
        p[-1] += hist[i:].sum()  # the clipped tail lands in the last bin
        nonzero = sliced > 0
        # Q: the sliced histogram (without the tail) merged into `levels` groups, each group's mass
        # spread evenly over its non-empty bins; clipping too early leaves the tail mass unexplained in Q
        gid = (np.arange(i) * levels) // i
        sums = np.bincount(gid, weights=sliced, minlength=levels)
        counts = np.bincount(gid, weights=nonzero, minlength=levels)
        q = np.where(nonzero, sums[gid] / np.maximum(counts[gid], 1), 0.0)
        mask = p > 0
        ps = p[mask] / p.sum()
        qs = np.maximum(q[mask] / max(q.sum(), 1e-30), 1e-12)  # Q may miss a bin P has (smoothing)
        kl = float(np.sum(ps * np.log(ps / qs)))
        if kl < best_kl:
            best_i, best_kl = i, kl
    return float(best_i * bound / bins)


class _progress:
    """A rich progress bar on stderr when asked for; a no-op otherwise."""

    def __init__(self, enabled: bool, total: int, label: str) -> None:
        self.enabled, self.total, self.label = enabled, total, label
        self._bar: Any = None

    def __enter__(self) -> Callable[[], None]:
        if not self.enabled:
            return lambda: None
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._bar.start()
        task = self._bar.add_task(self.label, total=self.total)
        return lambda: self._bar.advance(task)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()
