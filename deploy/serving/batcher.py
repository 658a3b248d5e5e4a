"""Dynamic batching: requests queue up, are run together along axis 0, and each caller gets its own rows back.

A collector task waits until an engine slot is free (``concurrency`` batches run at once, one per pooled
session), then takes the oldest request and gathers more, in arrival order, until the batch holds
``max_batch`` samples or the oldest request has waited ``max_delay_s``. Only requests whose non-batch
shapes and dtypes all agree are concatenated; the others wait for a later batch. The engine runs in a
thread pool (ONNX Runtime and TensorRT release the GIL), so the event loop keeps accepting requests.

Each request carries its own future and row range; results are split by those ranges and checked to have
exactly the batch's row count, so a response can never carry another caller's rows. ``max_batch=1`` turns
batching off (one request per engine call) while keeping the same queue, statistics and shutdown path.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field

import numpy as np

Feed = dict[str, np.ndarray]
RunFn = Callable[[Feed], dict[str, np.ndarray]]


class QueueFull(Exception):
    """The batcher's queue is at its limit: the server answers 503 so clients back off."""


class Closed(Exception):
    """The batcher is shutting down and takes no new requests."""


@dataclass
class _Pending:
    feed: Feed
    rows: int
    key: tuple[tuple[str, tuple[int, ...], str], ...]  # what must agree for two requests to share a batch
    future: asyncio.Future[dict[str, np.ndarray]]
    enqueued: float = field(default_factory=time.perf_counter)


@dataclass
class Stat:
    """A Triton statistic: a count and the total time, in nanoseconds."""

    count: int = 0
    ns: int = 0

    def add(self, seconds: float, n: int = 1) -> None:
        """Count ``n`` more and add ``seconds`` to the total."""
        self.count += n
        self.ns += int(seconds * 1e9)


@dataclass
class BatcherStats:
    """Triton-style statistics (``inference_count`` counts samples, ``execution_count`` engine runs)."""

    inference_count: int = 0
    execution_count: int = 0
    last_inference_ms: int = 0
    success: Stat = field(default_factory=Stat)
    fail: Stat = field(default_factory=Stat)
    queue: Stat = field(default_factory=Stat)
    compute_infer: Stat = field(default_factory=Stat)
    batch_sizes: dict[int, Stat] = field(default_factory=dict)  # rows per engine run → compute time


class DynamicBatcher:
    """Stacks concurrent requests along axis 0 into engine runs of at most ``max_batch`` rows.

    A batch runs when full or ``max_delay_s`` after its first request; up to ``concurrency`` run at once on
    ``executor``. Unbatched models (no dynamic axis 0) run one request per call. More than ``max_queue``
    waiting requests are refused (QueueFull). Raises ValueError for ``max_batch`` < 1 or ``max_delay_s`` < 0.
    """

    def __init__(self, run: RunFn, executor: Executor, *, batched: bool, max_batch: int, max_delay_s: float,
                 concurrency: int = 1, max_queue: int = 1024):  # fmt: skip
        if max_batch < 1:
            raise ValueError(f"max_batch must be ≥ 1, got {max_batch}")
        if max_delay_s < 0:
            raise ValueError(f"max_delay_s must be ≥ 0, got {max_delay_s}")
        self.run = run
        self.executor = executor
        self.batched = batched  # inputs and outputs have a batch axis 0; otherwise one request per run
        self.max_batch = max_batch if batched else 1
        self.max_delay_s = max_delay_s
        self.concurrency = max(1, concurrency)
        self.max_queue = max_queue
        self.stats = BatcherStats()
        self._queue: asyncio.Queue[_Pending] | None = None
        self._pending: collections.deque[_Pending] = collections.deque()
        self._slots: asyncio.Semaphore | None = None
        self._running: dict[asyncio.Task[None], list[_Pending]] = {}  # batches in the engine
        self._collector: asyncio.Task[None] | None = None
        self._closed = False
        self._aborted = False

    # -- lifecycle -------------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the collector on the running event loop."""
        self._queue = asyncio.Queue()
        self._slots = asyncio.Semaphore(self.concurrency)
        self._collector = asyncio.get_running_loop().create_task(self._collect())

    @property
    def depth(self) -> int:
        """Requests waiting (queued or gathered, not yet running)."""
        return (self._queue.qsize() if self._queue else 0) + len(self._pending)

    async def close(self, timeout_s: float = 30.0) -> None:
        """Take no new requests, finish the queued and running ones (up to ``timeout_s``), then stop."""
        self._closed = True
        deadline = time.monotonic() + (0 if self._aborted else timeout_s)
        while (self.depth or self._running) and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        if self._collector:
            self._collector.cancel()
            await asyncio.gather(self._collector, return_exceptions=True)
        leftover = list(self._pending)
        while self._queue and not self._queue.empty():
            leftover.append(self._queue.get_nowait())
        for p in leftover:
            if not p.future.done():
                p.future.set_exception(Closed("the server shut down before this request ran"))
        self._pending.clear()

    def _forget(self, task: asyncio.Task[None]) -> None:
        self._running.pop(task, None)

    def abort(self, reason: str) -> int:
        """Take no new requests and fail every waiting or running one with ``Closed(reason)`` (the server's
        drain timeout has passed: their callers get a 503 now rather than a cancelled connection later).
        A batch already in the engine finishes there, but its results are dropped. Returns how many failed."""
        self._closed = self._aborted = True
        waiting = list(self._pending)
        while self._queue and not self._queue.empty():
            waiting.append(self._queue.get_nowait())
        self._pending.clear()
        failed = 0
        for p in [*waiting, *(p for batch in self._running.values() for p in batch)]:
            if not p.future.done():
                p.future.set_exception(Closed(reason))
                failed += 1
        return failed

    # -- requests --------------------------------------------------------------------------------------
    async def submit(self, feed: Feed) -> dict[str, np.ndarray]:
        """Queue one request (already validated against the model) and wait for its own outputs."""
        if self._closed or self._queue is None:
            raise Closed("the server is shutting down")
        if self.depth >= self.max_queue:
            raise QueueFull(f"{self.depth} requests are queued (the limit is {self.max_queue}); retry later")
        rows = next(iter(feed.values())).shape[0] if self.batched else 1
        key = tuple((n, a.shape[1:] if self.batched else a.shape, a.dtype.str) for n, a in sorted(feed.items()))
        pending = _Pending(feed, rows, key, asyncio.get_running_loop().create_future())
        self._queue.put_nowait(pending)
        return await pending.future

    async def _next(self, timeout: float | None) -> _Pending | None:
        assert self._queue is not None
        try:
            if timeout is None:
                return await self._queue.get()
            if timeout <= 0:
                return self._queue.get_nowait()
            return await asyncio.wait_for(self._queue.get(), timeout)
        except (asyncio.TimeoutError, asyncio.QueueEmpty):
            return None

    def _take(self) -> list[_Pending]:
        """The oldest live request and, in arrival order, every later one that fits beside it."""
        while self._pending and self._pending[0].future.done():  # cancelled by a disconnected client
            self._pending.popleft()
        if not self._pending:
            return []
        head = self._pending.popleft()
        batch, rows, rest = [head], head.rows, collections.deque[_Pending]()
        for p in self._pending:
            if p.future.done():
                continue
            if p.key == head.key and rows + p.rows <= self.max_batch:
                batch.append(p)
                rows += p.rows
            else:
                rest.append(p)
        self._pending = rest
        return batch

    def _ready_rows(self) -> int:
        head = self._pending[0]
        return sum(p.rows for p in self._pending if p.key == head.key and not p.future.done())

    async def _collect(self) -> None:
        assert self._slots is not None
        while True:
            await self._slots.acquire()  # gather only once an engine slot is free: batches grow under load
            try:
                while not self._pending or self._pending[0].future.done():
                    if self._pending:
                        self._pending.popleft()
                        continue
                    first = await self._next(None)
                    assert first is not None
                    self._pending.append(first)
                deadline = self._pending[0].enqueued + self.max_delay_s
                while self._ready_rows() < self.max_batch:
                    # drain what is already queued, then wait for more only until the oldest one's deadline
                    item = await self._next(deadline - time.perf_counter())
                    if item is None:
                        break
                    self._pending.append(item)
                batch = self._take()
            except BaseException:
                self._slots.release()
                raise
            if not batch:
                self._slots.release()
                continue
            task = asyncio.get_running_loop().create_task(self._execute(batch))
            self._running[task] = batch
            task.add_done_callback(self._forget)

    async def _execute(self, batch: list[_Pending]) -> None:
        assert self._slots is not None
        try:
            await self._execute_batch(batch)
        finally:
            self._slots.release()

    async def _execute_batch(self, batch: list[_Pending]) -> None:
        rows = sum(p.rows for p in batch)
        start = time.perf_counter()
        for p in batch:
            self.stats.queue.add(start - p.enqueued)
        if len(batch) == 1:
            feed = batch[0].feed
        else:
            feed = {name: np.concatenate([p.feed[name] for p in batch], axis=0) for name in batch[0].feed}
        loop = asyncio.get_running_loop()
        try:
            outputs = await loop.run_in_executor(self.executor, self.run, feed)
            parts = self._split(outputs, batch, rows)
        except Exception as exc:
            elapsed = time.perf_counter() - start
            for p in batch:
                self.stats.fail.add(time.perf_counter() - p.enqueued)
                if not p.future.done():
                    p.future.set_exception(exc)
            self.stats.compute_infer.add(elapsed)
            return
        elapsed = time.perf_counter() - start
        done = time.perf_counter()
        self.stats.execution_count += 1
        self.stats.inference_count += rows
        self.stats.compute_infer.add(elapsed)
        self.stats.batch_sizes.setdefault(rows, Stat()).add(elapsed)
        self.stats.last_inference_ms = int(time.time() * 1000)
        for p, part in zip(batch, parts):
            self.stats.success.add(done - p.enqueued)
            if not p.future.done():  # a client that went away has cancelled its future
                p.future.set_result(part)

    def _split(self, outputs: dict[str, np.ndarray], batch: list[_Pending], rows: int) -> list[dict[str, np.ndarray]]:
        if len(batch) == 1:
            return [outputs]
        for name, arr in outputs.items():
            if arr.ndim == 0 or arr.shape[0] != rows:
                # Never guess how to split: refuse the whole batch rather than mix callers' rows.
                raise RuntimeError(
                    f"the engine returned output '{name}' with shape {arr.shape} for a batch of {rows} rows"
                )  # fmt: skip
        parts, offset = [], 0
        for p in batch:
            parts.append({name: arr[offset : offset + p.rows] for name, arr in outputs.items()})
            offset += p.rows
        return parts
