"""Benchmarks: backends side by side in one run, interleaved, with roofline context.

    targets   PyTorch eager (the reference) and bundle engines of any backend and precision
    schedule  per batch size: warm-up for every target, then rounds in which every target runs a block
              of iterations, the order rotating each round — machine drift (thermal, other tenants)
              then hits every backend alike, and a speed-up is a ratio of numbers measured together
    timing    CPU: each iteration timed with ``perf_counter_ns`` around the call (inputs in, NumPy
              outputs back), garbage collection paused while timing. GPU: a target may carry a timing
              hook (``timed``) that returns per-iteration CUDA-event times — latency plus the H2D /
              compute / D2H split and enqueue time, as trtexec reports them — with CUDA graphs on by
              default; runners that declare ``timed_runs`` (TensorRT) provide it through ``infer_timed(feed)``
    stats     mean, p50, p90, p95, p99, min, max, standard deviation, coefficient of variation, IQR,
              throughput (items/s = batch / mean latency)
    speed-up  paired: per round, median(reference block) / median(this block), then the median over
              rounds. Load that hits a round hits both backends in it, so this ratio is far steadier on a
              busy machine than a ratio of overall medians (measured here under load 4 on 2 cores: 0.36–0.39
              paired against 0.31–0.54 unpaired over repeated runs)
    roofline  FLOPs per inference counted from the graph (``attnx.deploy.bench.roofline``), achieved GFLOP/s
              (FLOPs / mean latency) against the device's peak for the cores in use

Threads: ``BenchOptions.threads`` sets ONNX Runtime's intra-op threads and ``torch.set_num_threads``
for the run (restored afterwards); None leaves both at their default (all cores) and says so.
Speed targets belong here and in ``make bench`` (JSON out), never in timed unit tests.
"""

from __future__ import annotations

import gc
import math
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from attnx.core.errors import UserError
from attnx.deploy.backends.base import TensorSpec

if TYPE_CHECKING:
    from rich.table import Table

    from attnx.deploy.bench.roofline import PeakInfo
    from attnx.deploy.bundle.manifest import Manifest

FORMAT = "attnx-bench"
FORMAT_VERSION = 1
GPU_PHASES = ("h2d_ms", "compute_ms", "d2h_ms", "enqueue_ms")


# ---------------------------------------------------------------------------------------------------
# Statistics


@dataclass(frozen=True)
class TimingStats:
    """Summary of one configuration's per-iteration latencies (milliseconds)."""

    n: int
    mean_ms: float
    std_ms: float  # sample standard deviation (ddof=1)
    min_ms: float
    max_ms: float
    p50_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    iqr_ms: float  # p75 − p25: the spread, robust to outliers
    cv: float  # std / mean
    throughput: float  # items per second at this batch size (batch / mean latency)

    def to_dict(self) -> dict[str, Any]:
        """The fields as a dict (latencies in ms, ``throughput`` in items/s)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TimingStats:
        """Rebuild from :meth:`to_dict`'s dict (extra keys ignored); KeyError for a missing field."""
        return cls(**{k: d[k] for k in cls.__dataclass_fields__})


def summarize(samples_ms: Sequence[float], batch: int = 1) -> TimingStats:
    """Statistics of latency samples; percentiles by NumPy's linear interpolation."""
    a = np.asarray(samples_ms, dtype=np.float64)
    if a.size == 0:
        raise ValueError("no timing samples")
    if batch < 1:
        raise ValueError(f"batch must be ≥ 1, got {batch}")
    p25, p50, p75, p90, p95, p99 = np.percentile(a, [25, 50, 75, 90, 95, 99])
    mean = float(a.mean())
    std = float(a.std(ddof=1)) if a.size > 1 else 0.0
    return TimingStats(
        n=int(a.size), mean_ms=mean, std_ms=std, min_ms=float(a.min()), max_ms=float(a.max()),
        p50_ms=float(p50), p90_ms=float(p90), p95_ms=float(p95), p99_ms=float(p99), iqr_ms=float(p75 - p25),
        cv=std / mean if mean > 0 else 0.0, throughput=batch * 1000.0 / mean if mean > 0 else math.inf,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------------
# Targets and the interleaved scheduler

Feed = dict[str, np.ndarray]
TimedHook = Callable[[Feed, int], list[dict[str, float]]]


@dataclass
class BenchTarget:
    """One thing to time. ``infer(feed)`` runs one inference; ``timed(feed, n)``, when given, runs ``n``
    and returns per-iteration times measured on the device (keys ``latency_ms`` and any of GPU_PHASES)."""

    name: str
    backend: str  # torch | ort | trt
    precision: str
    infer: Callable[[Feed], object]
    device: str = "cpu"  # cpu | gpu
    timed: TimedHook | None = None
    max_batch: int | None = None
    close: Callable[[], None] | None = None
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class BenchOptions:
    """Options of a benchmark run (``attnx bench``), checked by :meth:`validate`.

    ``batches``: the batch sizes swept. Per target and batch: ``warmup`` untimed iterations, then ``iterations``
    timed ones, or rounds for ``duration_s`` seconds instead; ``block``: iterations per target per interleaved
    round. ``threads``: CPU intra-op threads (None: the libraries' default, all cores). ``cuda_graph``: GPU timing
    hooks replay a CUDA graph. ``input_shape``: (C, H, W) or (N, C, H, W), N ignored (None: the bundle's / zoo's).
    ``seed``: of the random inputs (plus the batch). ``peak_gflops``: CPU peak override, GFLOP/s.
    ``steady_malloc``: pin glibc's malloc thresholds (:func:`steady_malloc`).
    """

    batches: tuple[int, ...] = (1,)
    warmup: int = 10  # untimed iterations per target and batch
    iterations: int | None = 100  # timed iterations per target and batch ...
    duration_s: float | None = None  # ... or run rounds until this many seconds per batch have passed
    block: int = 5  # iterations per target per round
    threads: int | None = 1  # CPU intra-op threads for every backend; None = library default (all cores)
    cuda_graph: bool = True  # GPU timing hooks capture a CUDA graph
    input_shape: tuple[int, ...] | None = None  # (C, H, W) or full (N, C, H, W); default: the bundle's / zoo's
    seed: int = 0
    peak_gflops: float | None = None  # override the CPU peak (else ATTNX_PEAK_GFLOPS, else from cpu flags)
    steady_malloc: bool = True  # pin glibc's malloc thresholds for the run (see steady_malloc())

    def validate(self) -> None:
        """Raise :class:`~attnx.core.errors.UserError` for no or non-positive batch sizes, ``warmup`` < 0, neither
        ``iterations`` ≥ 1 nor ``duration_s`` given, ``duration_s`` ≤ 0, ``block`` < 1 or ``threads`` < 1.
        """
        if not self.batches or min(self.batches) < 1:
            raise UserError(f"batch sizes must be positive integers, got {list(self.batches)}")
        if self.warmup < 0:
            raise UserError(f"--warmup must be ≥ 0, got {self.warmup}")
        if self.duration_s is None and (self.iterations is None or self.iterations < 1):
            raise UserError("give --iterations N (≥ 1) or --duration SECONDS")
        if self.duration_s is not None and self.duration_s <= 0:
            raise UserError(f"--duration must be positive, got {self.duration_s}")
        if self.block < 1:
            raise UserError(f"the block size must be ≥ 1, got {self.block}")
        if self.threads is not None and self.threads < 1:
            raise UserError(f"--threads must be ≥ 1, got {self.threads}")


@dataclass
class Measurement:
    """One target's raw timings at one batch (from :func:`measure`): per-iteration latencies ``samples_ms`` (ms), GPU
    phase times by name (ms; GPU_PHASES), and the timing thread's CPU time (ms) and minor page faults summed over
    ``usage_iters`` iterations.
    """

    target: BenchTarget
    batch: int
    samples_ms: list[float]
    phases_ms: dict[str, list[float]] = field(default_factory=dict)
    cpu_ms: float = 0.0  # user + system CPU time of the timing thread, summed over the timed blocks
    page_faults: int = 0  # minor page faults, summed likewise
    usage_iters: int = 0  # iterations the two sums cover


def _rusage() -> tuple[float, int] | None:
    """(user + system CPU ms, minor page faults) of this thread (Linux) or process; None where unavailable.

    CPU time excludes time spent waiting for a core, and page faults show allocation churn (PyTorch
    eager allocates fresh activations per op; ORT reuses an arena): both explain noisy wall times.
    """
    try:
        import resource
    except ImportError:
        return None
    who = getattr(resource, "RUSAGE_THREAD", resource.RUSAGE_SELF)
    ru = resource.getrusage(who)
    return (ru.ru_utime + ru.ru_stime) * 1000.0, ru.ru_minflt


def steady_malloc() -> str:
    """Pin glibc malloc's mmap and trim thresholds (1 GiB) for this process; say what was done.

    glibc adapts both thresholds to the allocation history: the same PyTorch eager model then either
    reuses heap memory for its per-op activations or maps fresh pages for each (thousands of page
    faults per inference) — measured here: 3,600 faults and ~2× the latency at batch 8 in one process,
    ~40 in another. Pinned, every run takes the fast path, as with jemalloc or tcmalloc. Engines with
    their own arenas (ONNX Runtime, TensorRT) are unaffected. This cannot be undone in-process.
    """
    if not sys.platform.startswith("linux"):
        return "malloc thresholds left to the platform (not Linux)"
    import ctypes

    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return "malloc thresholds left as they are (not glibc)"
    m_trim_threshold, m_mmap_threshold = -1, -3
    ok = mallopt(m_mmap_threshold, 1 << 30) == 1 and mallopt(m_trim_threshold, 1 << 30) == 1
    return ("glibc malloc thresholds pinned (mmap and trim at 1 GiB) so PyTorch's latency does not depend on "
            "allocation history" if ok else "glibc refused to pin the malloc thresholds")  # fmt: skip


def _run_block(target: BenchTarget, feed: Feed, n: int) -> tuple[list[float], dict[str, list[float]]]:
    if target.timed is not None:
        records = target.timed(feed, n)
        if len(records) != n or any("latency_ms" not in r for r in records):
            raise RuntimeError(f"timing hook of {target.name} returned {len(records)} records without latency_ms")
        phases = {k: [float(r[k]) for r in records] for k in GPU_PHASES if all(k in r for r in records)}
        return [float(r["latency_ms"]) for r in records], phases
    times = []
    clock = time.perf_counter_ns
    for _ in range(n):
        t0 = clock()
        target.infer(feed)
        times.append((clock() - t0) / 1e6)
    return times, {}


def measure(
    targets: Sequence[BenchTarget], feed: Feed, batch: int, options: BenchOptions,
    progress: Callable[[str], None] | None = None,
) -> list[Measurement]:  # fmt: skip
    """Time ``targets`` on ``feed``, interleaved: warm-up, then rounds with a rotating order.

    Every target gets the same number of iterations; with ``iterations`` the run stops when each has
    that many, with ``duration_s`` when the time is up (at least one round).
    """
    if not targets:
        raise UserError("nothing to benchmark: give bundles, or keep the PyTorch reference")
    for t in targets:
        if progress:
            progress(f"warming up {t.name} (batch {batch})")
        if t.timed is not None and options.warmup:
            t.timed(feed, options.warmup)
        else:
            for _ in range(options.warmup):
                t.infer(feed)
    results = {t.name: Measurement(t, batch, []) for t in targets}
    n = len(targets)
    start = time.perf_counter()
    rounds = 0
    gc_was_enabled = gc.isenabled()
    gc.disable()  # a collection inside one timed call would land on whichever backend was running
    try:
        while True:
            order = [targets[(rounds + i) % n] for i in range(n)]
            for t in order:
                before = _rusage()
                times, phases = _run_block(t, feed, options.block)
                after = _rusage()
                m = results[t.name]
                if before is not None and after is not None:
                    m.cpu_ms += after[0] - before[0]
                    m.page_faults += after[1] - before[1]
                    m.usage_iters += options.block
                m.samples_ms.extend(times)
                for k, v in phases.items():
                    m.phases_ms.setdefault(k, []).extend(v)
            rounds += 1
            if progress and rounds % 10 == 0:
                progress(f"batch {batch}: {rounds * options.block} iterations per backend")
            if options.duration_s is not None:
                if time.perf_counter() - start >= options.duration_s:
                    break
            elif rounds * options.block >= (options.iterations or 0):
                break
    finally:
        if gc_was_enabled:
            gc.enable()
    if options.duration_s is None and options.iterations:
        for m in results.values():
            m.samples_ms = m.samples_ms[: options.iterations]
            m.phases_ms = {k: v[: options.iterations] for k, v in m.phases_ms.items()}
    return [results[t.name] for t in targets]


# ---------------------------------------------------------------------------------------------------
# Results


@dataclass
class ConfigResult:
    """One target at one batch of a :class:`BenchResult`: latency ``stats`` (ms) and raw ``samples_ms``, GPU ``phases``
    (ms), FLOPs per inference (whole batch), achieved GFLOP/s and its fraction of the device's ``peak_gflops``, the
    paired latency ratio to the reference (unitless; ``ratio_iqr`` its spread over rounds), ``speedup`` = 1 / ratio,
    and CPU ms and page faults per inference. None where not measured or not known.
    """

    target: str
    backend: str
    precision: str
    device: str
    batch: int
    input_shape: dict[str, list[int]]
    stats: TimingStats
    samples_ms: list[float] = field(default_factory=list)
    phases: dict[str, TimingStats] = field(default_factory=dict)  # GPU: H2D / compute / D2H / enqueue
    flops: float | None = None  # per inference (the whole batch)
    gflops_per_s: float | None = None
    peak_gflops: float | None = None  # of the cores (or GPU) this target used
    peak_fraction: float | None = None
    # Paired ratio: in each round every backend runs one block back to back, so per round
    # median(this block) / median(reference block) cancels drift and load shared by both. Its median over
    # the rounds is the robust latency ratio (the CI gate uses it); ratio_iqr is its spread over the rounds.
    ratio_to_reference: float | None = None
    ratio_iqr: float | None = None
    speedup: float | None = None  # 1 / ratio_to_reference
    block: int | None = None  # iterations per round (how samples pair up)
    cpu_ms_per_iter: float | None = None  # user + system CPU time of the calling thread (CPU backends)
    page_faults_per_iter: float | None = None  # minor page faults: allocation churn, a source of noise

    def to_dict(self, samples: bool = True) -> dict[str, Any]:
        """The result as a dict; ``samples=False`` leaves ``samples_ms`` empty."""
        d = asdict(self)
        if not samples:
            d["samples_ms"] = []
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ConfigResult:
        """Rebuild from :meth:`to_dict`'s dict (absent optional fields default); KeyError when ``stats`` is absent."""
        fields = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        fields["stats"] = TimingStats.from_dict(d["stats"])
        fields["phases"] = {k: TimingStats.from_dict(v) for k, v in (d.get("phases") or {}).items()}
        return cls(**fields)


@dataclass
class BenchResult:
    """A benchmark run, as ``attnx bench --json`` writes it: the ``model``, the reference target's name (None without
    PyTorch), the ``options`` and ``machine`` (:func:`machine_info`) it ran with, a :class:`ConfigResult` per target
    and batch, FLOP counts (per batch, their source graph, uncounted ops), ``notes``, when it was ``created``
    (UTC, ISO 8601) and the file format and its version.
    """

    model: str
    reference: str | None  # name of the reference target (PyTorch eager), if it ran
    options: dict[str, Any]
    machine: dict[str, Any]
    configs: list[ConfigResult] = field(default_factory=list)
    flops: dict[str, Any] = field(default_factory=dict)  # source graph, per-batch counts, uncounted ops
    notes: list[str] = field(default_factory=list)
    created: str = ""
    format: str = FORMAT
    format_version: int = FORMAT_VERSION

    def config(self, target: str, batch: int) -> ConfigResult | None:
        """The result of ``target`` at ``batch``, or None when it did not run there."""
        return next((c for c in self.configs if c.target == target and c.batch == batch), None)

    @property
    def targets(self) -> list[str]:
        """The target names, in the order first measured."""
        return list(dict.fromkeys(c.target for c in self.configs))

    @property
    def batches(self) -> list[int]:
        """The batch sizes measured, ascending."""
        return sorted({c.batch for c in self.configs})

    def to_dict(self, samples: bool = True) -> dict[str, Any]:
        """JSON-ready data (non-finite floats as strings); ``samples=False`` drops the raw latency samples."""
        from attnx.deploy.parity.report import json_safe

        d = asdict(self)
        d["configs"] = [c.to_dict(samples) for c in self.configs]
        return json_safe(d)  # type: ignore[return-value]

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "benchmark result") -> BenchResult:
        """Rebuild from :meth:`to_dict`'s data; ``where`` names its source in errors. Raises
        :class:`~attnx.core.errors.UserError` for another format or a corrupt result.
        """
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            got = d.get("format") if isinstance(d, dict) else type(d).__name__
            raise UserError(f"{where} is not an attnx benchmark result (format {got!r}): "
                            "write one with `attnx bench --json`")  # fmt: skip
        try:
            fields = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
            fields["configs"] = [ConfigResult.from_dict(c) for c in d["configs"]]
            return cls(**fields)
        except (KeyError, TypeError) as exc:
            raise UserError(f"{where} is corrupt ({exc}): run `attnx bench --json` again") from None


def load_result(path: str | Path) -> BenchResult:
    """Read a result written by ``attnx bench --json``. Raises :class:`~attnx.core.errors.UserError` when the file is
    missing, not JSON, not an ``attnx-bench`` result, or corrupt.
    """
    import json

    path = Path(path)
    if not path.is_file():
        raise UserError(f"benchmark result not found: {path} (write one with `attnx bench --json`)")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(
            f"{path} is not valid JSON ({exc.__class__.__name__}): run `attnx bench --json` again"
        ) from None
    return BenchResult.from_dict(data, where=str(path))


# ---------------------------------------------------------------------------------------------------
# Building targets


def torch_target(model: Any, inputs: Sequence[TensorSpec], name: str = "torch eager") -> BenchTarget:
    """PyTorch eager on the CPU through :class:`~attnx.deploy.backends.torch.runner.TorchRunner`: NumPy in,
    NumPy out (as the engines are called), under inference_mode. ``inputs``: the model's inputs, in order."""
    from attnx.deploy.backends.torch.runner import TorchRunner

    runner = TorchRunner(model, inputs)
    return BenchTarget(name=name, backend="torch", precision="fp32", infer=runner.infer, device="cpu")


def bundle_target(
    bundle: str | Path, threads: int | None, cuda_graph: bool = True, name: str | None = None,
    allow_failed_parity: bool = False,
) -> BenchTarget:
    """An ``Engine`` of any backend and precision. A runner that declares ``timed_runs`` gives device-side
    times (its ``infer_timed``); others are timed on the host around ``engine(feed)``."""
    from attnx.deploy.bundle.engine import Engine

    engine = Engine.load(bundle, threads=threads, allow_failed_parity=allow_failed_parity)
    m = engine.manifest
    profile = m.inputs[0].profile
    dynamic = isinstance(m.inputs[0].shape[0], str)
    max_batch = int(profile["max"][0]) if profile else (None if dynamic else int(m.inputs[0].shape[0]))
    runner = engine.runner
    timed: TimedHook | None = None
    if runner.capabilities.timed_runs:
        from attnx.deploy.bundle.engine import check_input

        if hasattr(runner, "cuda_graph"):  # a runner option, not a capability: set before the first run
            runner.cuda_graph = cuda_graph  # captured per shape

        def timed(feed: Feed, n: int) -> list[dict[str, float]]:
            for spec in m.inputs:  # the checks engine(feed) makes, outside the timed region
                check_input(spec, feed[spec.name], max_hw=m.max_hw)
            records = []
            for _ in range(n):
                _, t = runner.infer_timed(feed)
                # latency as trtexec defines it: H2D start to D2H end on the GPU (CUDA events)
                records.append({**t, "latency_ms": t["h2d_ms"] + t["compute_ms"] + t["d2h_ms"]})
            return records

    return BenchTarget(
        name=name or f"{m.backend} {m.precision}", backend=m.backend, precision=m.precision, infer=engine,
        device="gpu" if m.backend == "trt" else "cpu", timed=timed, max_batch=max_batch, close=engine.close,
        info={"bundle": str(bundle), "device": m.device, "build": m.build, "kernels": engine.info["kernels"]},
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------------
# The whole run (what to time comes from deploy/apis/bench.py: it resolves and prepares the model)


@dataclass
class TorchReference:
    """PyTorch eager, a benchmark's reference: the module, the name it goes by, its default sample shape
    (C, H, W, no batch; None when unknown) and, when given, ``export_onnx(path, sample_shape)``, which writes a
    fresh fp32 ONNX of it with a dynamic batch to ``path`` and returns the file written (raising UserError
    when it cannot): the graph FLOPs are counted on when no bundle gives one."""

    model: Any  # torch.nn.Module
    name: str
    sample_shape: tuple[int, ...] | None = None
    export_onnx: Callable[[Path, tuple[int, ...]], Path] | None = None


def bench_side_by_side(
    bundles: Sequence[str | Path],
    manifests: Sequence[Manifest],
    options: BenchOptions,
    *,
    model: str,
    reference: TorchReference | None = None,
    progress: Callable[[str], None] | None = None,
    allow_failed_parity: bool = False,
) -> BenchResult:
    """Time ``reference`` (PyTorch eager, when given) and each bundle side by side, batch by batch.

    ``manifests``: the bundles' manifests, in the same order (already checked); ``model``: the name results
    carry. Every target gets the same seeded input per batch; a bundle whose engine cannot take a batch is
    skipped there, with a note. Raises UserError for inputs the bundles do not share or an unknown shape.
    """
    manifests = list(manifests)
    names = [f"{m.backend} {m.precision}" for m in manifests]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:  # two bundles of one kind: tell them apart by folder name
        names = [f"{n} ({Path(b).name})" if n in dupes else n for n, b in zip(names, bundles)]
    default = reference.sample_shape if reference is not None else None
    input_name, input_dtype, sample_shape = _input_spec(manifests, default, options.input_shape)

    notes: list[str] = []
    threads_note = f"{options.threads} intra-op thread(s)" if options.threads else "library default threads (all cores)"
    notes.append(f"CPU backends run with {threads_note}")
    if options.steady_malloc:
        notes.append(steady_malloc())
    targets: list[BenchTarget] = []
    old_threads = None
    try:
        if reference is not None:
            import torch

            old_threads = torch.get_num_threads()
            if options.threads:
                torch.set_num_threads(options.threads)
            inputs = [TensorSpec(input_name, np.dtype(input_dtype), (None, *sample_shape))]
            targets.append(torch_target(reference.model, inputs))
        for b, n in zip(bundles, names):
            targets.append(bundle_target(b, options.threads, options.cuda_graph, name=n,
                                         allow_failed_parity=allow_failed_parity))  # fmt: skip
        notes.extend(f"{t.name} runs on {t.info['kernels']}" for t in targets if t.info.get("kernels"))
        flops_info, flops_by_batch = _count_flops(manifests, bundles, reference, input_name, sample_shape,
                                                  options.batches)  # fmt: skip
        notes.extend(flops_info.pop("notes", []))
        cpu, gpus = _peaks(options, targets)
        result = BenchResult(
            model=model, reference=targets[0].name if reference is not None else None, options=_options_dict(options),
            machine=machine_info(options.threads, cpu, gpus), flops=flops_info, notes=notes,
            created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        )  # fmt: skip
        from attnx.deploy.parity.inputs import seeded_inputs

        ts = TensorSpec(input_name, np.dtype(input_dtype), (None, *sample_shape))
        for batch in options.batches:
            active = [t for t in targets if t.max_batch is None or batch <= t.max_batch]
            for t in targets:
                if t not in active:
                    notes.append(f"{t.name} skipped at batch {batch}: its engine takes batch ≤ {t.max_batch} "
                                 "(rebuild with --max-batch)")  # fmt: skip
            if not active:
                continue
            shape = (batch, *sample_shape)
            feed = seeded_inputs([ts], {input_name: shape}, options.seed + batch)
            for m in measure(active, feed, batch, options, progress):
                result.configs.append(_config_result(m, {input_name: list(shape)}, flops_by_batch.get(batch),
                                                     cpu, gpus, options.threads))  # fmt: skip
        assign_speedups(result, options.block)
        result.machine["load_avg_1m_after"] = _load_avg()
        busy = _busy_note(result.machine)
        if busy:
            result.notes.append(busy)
        for c in result.configs:
            if c.page_faults_per_iter and c.page_faults_per_iter > 100:
                result.notes.append(
                    f"{c.target} at batch {c.batch}: {c.page_faults_per_iter:.0f} page faults per inference "
                    f"(fresh allocations; {c.cpu_ms_per_iter or 0:.1f} ms CPU per inference): its latency moves "
                    "with the machine's load more than an arena-allocating engine's"
                )
        return result
    finally:
        for t in targets:
            if t.close:
                t.close()
        if old_threads is not None:
            import torch

            torch.set_num_threads(old_threads)


def _input_spec(
    manifests: list[Manifest], default: tuple[int, ...] | None, input_shape: tuple[int, ...] | None
) -> tuple[str, str, tuple[int, ...]]:
    """(input name, dtype, sample shape: per item, no batch) shared by every target.

    ``default``: the reference model's sample shape, used when no bundle is given; ``input_shape``: the user's
    ``--input-shape``, a sample shape or a full one (its batch is dropped: the batch comes from the sweep).
    """
    if manifests:
        firsts = {(m.inputs[0].name, m.inputs[0].dtype) for m in manifests}
        if len(firsts) > 1 or any(len(m.inputs) != 1 for m in manifests):
            raise UserError(
                f"the bundles take different inputs {sorted(firsts)}: benchmark single-input bundles of one model"
            )
        name, dtype = firsts.pop()
        spec = manifests[0].inputs[0]
        base = spec.profile["opt"] if spec.profile else spec.shape
        static = all(isinstance(d, int) for d in base[1:])
        sample_shape: tuple[int, ...] | None = tuple(int(d) for d in base[1:]) if static else None
        fixed = [tuple(d for d in m.inputs[0].shape[1:]) for m in manifests]
    else:
        name, dtype, sample_shape, fixed = "input", "float32", None, []
        if default:
            sample_shape = tuple(default)
    if input_shape is not None:
        rank = len(sample_shape) if sample_shape else (len(fixed[0]) if fixed else 3)  # per-item rank (C, H, W)
        if len(input_shape) == rank + 1:
            given = tuple(input_shape[1:])  # a full shape: the batch comes from the sweep
        elif len(input_shape) == rank:
            given = tuple(input_shape)
        else:
            raise UserError(f"--input-shape {'x'.join(map(str, input_shape))} has rank {len(input_shape)}; the "
                            f"model's input has rank {rank + 1}: give CxHxW or NxCxHxW")  # fmt: skip
        for f in fixed:
            for axis, (want, got) in enumerate(zip(f, given), start=1):
                if isinstance(want, int) and want != got:
                    raise UserError(f"--input-shape {'x'.join(map(str, input_shape))} does not fit the bundle's input "
                                    f"{list(f)} at axis {axis}: drop it or rebuild the bundle")  # fmt: skip
        sample_shape = given
    if sample_shape is None:
        raise UserError("the input shape is unknown: pass --input-shape CxHxW")
    return name, dtype, sample_shape


def _count_flops(manifests: list[Manifest], bundles: Sequence[str | Path], reference: TorchReference | None,
                 input_name: str, sample_shape: tuple[int, ...], batches: Sequence[int],
                 ) -> tuple[dict[str, Any], dict[int, float]]:  # fmt: skip
    """FLOPs per batch from one graph of the model: an fp32 bundle's, else any bundle's, else a fresh export.

    FLOPs are the model's, not a backend's: every target is measured against the same count (Q/DQ and
    Cast nodes of reduced-precision graphs count zero anyway)."""
    import tempfile

    from attnx.deploy.bench.roofline import count_flops

    graph: Path | None = None
    source = ""
    order = sorted(range(len(manifests)), key=lambda i: manifests[i].precision != "fp32")
    for i in order:
        graph, source = manifests[i].path_of(Path(bundles[i]), "onnx"), f"{Path(bundles[i]).name}/model.onnx"
        break
    info: dict[str, Any] = {"per_batch": {}, "notes": []}
    with tempfile.TemporaryDirectory(prefix="attnx-bench-") as tmp:
        if graph is None and reference is not None and reference.export_onnx is not None:
            try:
                graph = reference.export_onnx(Path(tmp) / "model.onnx", sample_shape)
                source = f"fresh fp32 export of {reference.name}"
            except UserError as exc:
                info["notes"].append(f"FLOPs not counted: {exc}")
        if graph is None:
            return info, {}
        info["source"] = source
        by_batch: dict[int, float] = {}
        for b in batches:
            try:
                fc = count_flops(graph, {input_name: (b, *sample_shape)})
            except UserError as exc:
                info["notes"].append(f"FLOPs not counted at batch {b}: {exc}")
                continue
            by_batch[b] = fc.total
            info["per_batch"][str(b)] = {"total": fc.total, "dense": fc.dense, "elementwise": fc.elementwise}
            if fc.uncounted:
                info["uncounted"] = fc.uncounted
        if info.get("uncounted"):
            info["notes"].append(f"FLOPs exclude ops with no counting rule: {info['uncounted']}")
    return info, by_batch


def _peaks(options: BenchOptions, targets: list[BenchTarget]) -> tuple[PeakInfo, dict[str, PeakInfo | None]]:
    from attnx.deploy.bench.roofline import cpu_peak, gpu_peak

    cpu = cpu_peak(override_gflops=options.peak_gflops)
    gpus: dict[str, PeakInfo | None] = {}
    for t in targets:
        if t.device == "gpu":
            gpus[t.name] = gpu_peak(str(t.info.get("device", {}).get("name", "")), t.precision)
    return cpu, gpus


def _config_result(m: Measurement, shape: dict[str, list[int]], flops: float | None, cpu: PeakInfo,
                   gpus: dict[str, PeakInfo | None], threads: int | None) -> ConfigResult:  # fmt: skip
    stats = summarize(m.samples_ms, m.batch)
    t = m.target
    peak = (gpus.get(t.name).gflops if gpus.get(t.name) else None) if t.device == "gpu" else cpu.for_cores(threads)  # type: ignore[union-attr]  # noqa: E501
    achieved = flops / (stats.mean_ms / 1000.0) / 1e9 if flops else None
    return ConfigResult(
        target=t.name, backend=t.backend, precision=t.precision, device=t.device, batch=m.batch,
        input_shape=shape, stats=stats, samples_ms=[round(s, 6) for s in m.samples_ms],
        phases={k: summarize(v, m.batch) for k, v in m.phases_ms.items()},
        flops=flops, gflops_per_s=achieved, peak_gflops=peak if peak and math.isfinite(peak) else None,
        cpu_ms_per_iter=m.cpu_ms / m.usage_iters if m.usage_iters and t.device == "cpu" else None,
        page_faults_per_iter=m.page_faults / m.usage_iters if m.usage_iters else None,
        peak_fraction=(achieved / peak) if achieved and peak and math.isfinite(peak) else None,
    )  # fmt: skip


def paired_ratios(samples: Sequence[float], reference: Sequence[float], block: int) -> np.ndarray:
    """Per-round ratios median(block of ``samples``) / median(block of ``reference``), over whole rounds."""
    rounds = min(len(samples), len(reference)) // block
    if rounds == 0:
        return np.empty(0)
    a = np.asarray(samples[: rounds * block], dtype=np.float64).reshape(rounds, block)
    r = np.asarray(reference[: rounds * block], dtype=np.float64).reshape(rounds, block)
    return np.median(a, axis=1) / np.median(r, axis=1)  # type: ignore[no-any-return]


def assign_speedups(result: BenchResult, block: int) -> None:
    """Fill each configuration's paired ratio to the reference, its spread, and the speed-up."""
    if result.reference is None:
        return
    for c in result.configs:
        c.block = block
        ref = result.config(result.reference, c.batch)
        if ref is None:
            continue
        ratios = paired_ratios(c.samples_ms, ref.samples_ms, block)
        if ratios.size:
            q25, q50, q75 = np.percentile(ratios, [25, 50, 75])
            c.ratio_to_reference, c.ratio_iqr = float(q50), float(q75 - q25)
        elif c.stats.p50_ms > 0 and ref.stats.p50_ms > 0:
            c.ratio_to_reference = c.stats.p50_ms / ref.stats.p50_ms
        if c.ratio_to_reference:
            c.speedup = 1.0 / c.ratio_to_reference


def _options_dict(options: BenchOptions) -> dict[str, Any]:
    d = asdict(options)
    d["batches"] = list(options.batches)
    return d


def machine_info(threads: int | None, cpu: PeakInfo | None = None, gpus: dict[str, PeakInfo | None] | None = None) -> dict[str, Any]:  # noqa: E501
    """What a benchmark ran on, as JSON-ready data: the 1-minute load average, CPU name and features, physical cores,
    ``threads`` (None: the libraries' default), the CPU peak (``cpu``) and GPU peaks by target name
    (:class:`~attnx.deploy.bench.roofline.PeakInfo`, None where unknown), platform, Python and library versions.
    """
    from attnx.core.cpu import detect
    from attnx.deploy.bundle.manifest import library_versions

    return {
        "load_avg_1m": _load_avg(),
        "cpu": cpu.device if cpu else platform.processor() or platform.machine(),
        "cpu_features": detect().to_dict(),  # INT8 numerics and speed depend on them (deploy/cpu.py)
        "physical_cores": cpu.cores if cpu else None,
        "threads": threads,
        "cpu_peak": cpu.to_dict() if cpu else None,
        "gpu_peaks": {k: (v.to_dict() if v else None) for k, v in (gpus or {}).items()},
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "libraries": library_versions(),
    }


def _load_avg() -> float | None:
    """The 1-minute load average: other work on the machine is the main source of timing noise."""
    import os

    try:
        return round(os.getloadavg()[0], 2)
    except (OSError, AttributeError):
        return None


def _busy_note(machine: dict[str, Any]) -> str | None:
    before, after, cores = machine.get("load_avg_1m"), machine.get("load_avg_1m_after"), machine.get("physical_cores")
    worst = max((x for x in (before, after) if x is not None), default=None)
    if worst is None or not cores:
        return None
    if worst > 0.5 * cores:
        return (f"the machine was busy (1-minute load {before} before, {after} after, on {cores} cores): other work "
                "shared the CPU, so spreads are wide and single numbers noisy; ratios of interleaved runs hold better")
    return None


# ---------------------------------------------------------------------------------------------------
# Presentation


def _ms(x: float | None) -> str:
    return "–" if x is None else (f"{x:.3f}" if x < 10 else f"{x:.1f}")


def bench_table(result: BenchResult) -> Table:
    """A rich table for people: one row per backend and batch."""
    from rich.table import Table

    cpu = result.machine.get("cpu_peak") or {}
    threads = result.machine.get("threads")
    table = Table(
        title=f"Benchmark: {result.model} ({result.machine.get('cpu')}, "
              f"{threads or 'default'} thread(s))",
        caption=(f"latency in ms over {result.configs[0].stats.n if result.configs else 0} iterations, interleaved; "
                 f"CPU peak {cpu.get('per_core_gflops', float('nan')):.0f} GFLOP/s per core ({cpu.get('isa', '?')}, "
                 f"{cpu.get('source', '?')}); speed-up: median over rounds of reference / this, paired per round"),
    )  # fmt: skip
    for col in ["backend", "batch", "mean", "p50", "p90", "p95", "p99", "min", "max", "cv", "items/s", "GFLOP/s",
                "% peak", "speed-up"]:  # fmt: skip
        table.add_column(col, justify="left" if col == "backend" else "right")
    for c in sorted(result.configs, key=lambda c: (c.batch, result.targets.index(c.target))):
        s = c.stats
        table.add_row(
            c.target + (" (ref)" if c.target == result.reference else ""), str(c.batch), _ms(s.mean_ms),
            _ms(s.p50_ms), _ms(s.p90_ms), _ms(s.p95_ms), _ms(s.p99_ms), _ms(s.min_ms), _ms(s.max_ms),
            f"{s.cv:.1%}", f"{s.throughput:.1f}", "–" if c.gflops_per_s is None else f"{c.gflops_per_s:.1f}",
            "–" if c.peak_fraction is None else f"{c.peak_fraction:.1%}",
            "–" if c.speedup is None else f"{c.speedup:.2f}×",
        )  # fmt: skip
    return table


def markdown_summary(results: Sequence[BenchResult]) -> str:
    """A Markdown report: machine, then one table per model."""
    if not results:
        return "No benchmark results.\n"
    r0 = results[0]
    cpu = r0.machine.get("cpu_peak") or {}
    lines = [
        "# attnx benchmark",
        "",
        f"- machine: {r0.machine.get('cpu')}, {r0.machine.get('physical_cores')} physical cores, "
        f"{r0.machine.get('platform')}",
        f"- threads: {r0.machine.get('threads') or 'library default (all cores)'} for every CPU backend; "
        f"1-minute load average {r0.machine.get('load_avg_1m')} before, {r0.machine.get('load_avg_1m_after')} after",
        f"- CPU peak: {cpu.get('gflops', float('nan')):.0f} GFLOP/s fp32 for all cores "
        f"({cpu.get('per_core_gflops', float('nan')):.0f} per core; {cpu.get('isa')}, {cpu.get('source')}: "
        f"{'; '.join(cpu.get('assumptions', []))})",
        f"- schedule: {r0.options.get('warmup')} warm-up, "
        + (f"{r0.options.get('iterations')} iterations" if r0.options.get("duration_s") is None
           else f"{r0.options.get('duration_s')} s")  # fmt: skip
        + f" per backend and batch, interleaved in blocks of {r0.options.get('block')}; speed-up = median over "
        "rounds of (reference block median / backend block median), paired within each round",
        "- libraries: " + ", ".join(f"{k} {v}" for k, v in (r0.machine.get("libraries") or {}).items() if v),
        f"- created: {r0.created}",
        "",
    ]
    for r in results:
        gflop = r.flops.get("per_batch", {})
        flop_text = ", ".join(f"batch {b}: {v['total'] / 1e9:.3f} GFLOP" for b, v in gflop.items())
        lines += [f"## {r.model}", "", f"FLOPs per inference ({r.flops.get('source', 'not counted')}): {flop_text or '–'}", ""]  # noqa: E501
        lines.append("| backend | batch | mean ms | p50 ms | p90 ms | p99 ms | cv | items/s | GFLOP/s | % peak | speed-up |")  # noqa: E501
        lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for c in sorted(r.configs, key=lambda c: (c.batch, r.targets.index(c.target))):
            s = c.stats
            lines.append(
                f"| {c.target}{' (ref)' if c.target == r.reference else ''} | {c.batch} | {_ms(s.mean_ms)} | "
                f"{_ms(s.p50_ms)} | {_ms(s.p90_ms)} | {_ms(s.p99_ms)} | {s.cv:.1%} | {s.throughput:.1f} | "
                f"{'–' if c.gflops_per_s is None else f'{c.gflops_per_s:.1f}'} | "
                f"{'–' if c.peak_fraction is None else f'{c.peak_fraction:.1%}'} | "
                f"{'–' if c.speedup is None else f'{c.speedup:.2f}×'} |"
            )
        for note in r.notes:
            lines.append(f"\n_{note}_")
        lines.append("")
    return "\n".join(lines) + "\n"
