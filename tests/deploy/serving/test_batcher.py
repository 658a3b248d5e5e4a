"""The dynamic batcher on its own: batches form up to the size or the delay, never mix shapes, and every caller
gets exactly its own rows back, also when the engine fails or a caller goes away."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from attnx.deploy.serving.batcher import Closed, DynamicBatcher, QueueFull


class Recorder:
    """An engine-like callable (y = 3x + 1 on every input) that records the batches it is given."""

    def __init__(self, delay_s: float = 0.0):
        self.calls: list[dict[str, tuple[int, ...]]] = []
        self.delay_s = delay_s
        self.lock = threading.Lock()

    def __call__(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with self.lock:
            self.calls.append({k: v.shape for k, v in feed.items()})
        if self.delay_s:
            time.sleep(self.delay_s)
        return {f"{k}_out": v * 3 + 1 for k, v in feed.items()}


def run(coro_fn, *args):
    return asyncio.run(coro_fn(*args))


def make(fn, **kw) -> tuple[DynamicBatcher, ThreadPoolExecutor]:
    pool = ThreadPoolExecutor(max_workers=kw.get("concurrency", 1))
    kw.setdefault("batched", True)
    kw.setdefault("max_batch", 8)
    kw.setdefault("max_delay_s", 0.0)
    return DynamicBatcher(fn, pool, **kw), pool


def rows(n: int, width: int = 4, seed: int = 0) -> dict[str, np.ndarray]:
    return {"x": np.random.default_rng(seed).standard_normal((n, width)).astype(np.float32)}


def test_a_full_batch_runs_at_once_without_waiting_for_the_delay():
    fn = Recorder()

    async def main():
        b, pool = make(fn, max_batch=8, max_delay_s=30.0)
        b.start()
        feeds = [rows(1, seed=i) for i in range(8)]
        t0 = time.monotonic()
        outs = await asyncio.gather(*(b.submit(f) for f in feeds))
        took = time.monotonic() - t0
        await b.close()
        pool.shutdown()
        return feeds, outs, took, b.stats

    feeds, outs, took, stats = run(main)
    assert took < 10  # far below the 30 s delay: the batch was full
    assert fn.calls == [{"x": (8, 4)}]
    for feed, out in zip(feeds, outs):
        assert np.array_equal(out["x_out"], feed["x"] * 3 + 1)
    assert (stats.inference_count, stats.execution_count) == (8, 1)
    assert stats.batch_sizes[8].count == 1


def test_mixed_row_counts_never_exceed_max_batch_and_each_caller_gets_its_rows():
    fn = Recorder(delay_s=0.002)

    async def main():
        b, pool = make(fn, max_batch=6, max_delay_s=0.005)
        b.start()
        rng = np.random.default_rng(1)
        feeds = [rows(int(rng.integers(1, 4)), seed=100 + i) for i in range(120)]

        async def one(i):
            await asyncio.sleep(float(rng.uniform(0, 0.05)))
            return await b.submit(feeds[i])

        outs = await asyncio.gather(*(one(i) for i in range(len(feeds))))
        await b.close()
        pool.shutdown()
        return feeds, outs

    feeds, outs = run(main)
    assert all(c["x"][0] <= 6 for c in fn.calls)
    assert len(fn.calls) < len(feeds)  # some requests shared a run
    assert sum(c["x"][0] for c in fn.calls) == sum(f["x"].shape[0] for f in feeds)
    for feed, out in zip(feeds, outs):
        assert out["x_out"].shape == feed["x"].shape and np.array_equal(out["x_out"], feed["x"] * 3 + 1)


def test_requests_of_different_shapes_are_not_concatenated():
    fn = Recorder()

    async def main():
        b, pool = make(fn, max_batch=16, max_delay_s=0.05)
        b.start()
        feeds = [rows(1, width=4 if i % 2 else 5, seed=i) for i in range(10)]
        outs = await asyncio.gather(*(b.submit(f) for f in feeds))
        await b.close()
        pool.shutdown()
        return feeds, outs

    feeds, outs = run(main)
    assert sorted(c["x"] for c in fn.calls) == [(5, 4), (5, 5)]
    for feed, out in zip(feeds, outs):
        assert np.array_equal(out["x_out"], feed["x"] * 3 + 1)


def test_max_batch_1_runs_every_request_alone():
    fn = Recorder()

    async def main():
        b, pool = make(fn, max_batch=1, max_delay_s=0.05)
        b.start()
        outs = await asyncio.gather(*(b.submit(rows(2, seed=i)) for i in range(5)))
        await b.close()
        pool.shutdown()
        return outs

    outs = run(main)
    assert fn.calls == [{"x": (2, 4)}] * 5 and len(outs) == 5


def test_unbatched_models_run_one_request_per_call():
    fn = Recorder()

    async def main():
        b, pool = make(fn, batched=False, max_batch=8, max_delay_s=0.05)
        b.start()
        outs = await asyncio.gather(*(b.submit(rows(2, seed=i)) for i in range(3)))
        await b.close()
        pool.shutdown()
        return outs

    outs = run(main)
    assert len(fn.calls) == 3 and len(outs) == 3


def test_an_engine_error_fails_its_batch_only_and_the_batcher_keeps_serving():
    def fn(feed):
        if (feed["x"] < -100).any():
            raise ValueError("poisoned input")
        return {"y": feed["x"] + 1}

    async def main():
        b, pool = make(fn, max_batch=4, max_delay_s=0.05)
        b.start()
        bad = {"x": np.full((1, 4), -1000, np.float32)}
        first = await asyncio.gather(b.submit(bad), b.submit(rows(1)), return_exceptions=True)
        later = await b.submit(rows(1, seed=5))
        await b.close()
        pool.shutdown()
        return first, later, b.stats

    first, later, stats = run(main)
    assert all(isinstance(r, ValueError) for r in first)
    assert np.array_equal(later["y"], rows(1, seed=5)["x"] + 1)
    assert stats.fail.count == 2 and stats.success.count == 1


def test_outputs_without_the_batch_rows_are_refused_not_split():
    def fn(feed):
        return {"y": feed["x"][:1]}  # drops rows: splitting this would hand out wrong data

    async def main():
        b, pool = make(fn, max_batch=4, max_delay_s=0.05)
        b.start()
        res = await asyncio.gather(*(b.submit(rows(1, seed=i)) for i in range(3)), return_exceptions=True)
        await b.close()
        pool.shutdown()
        return res

    res = run(main)
    assert all(isinstance(r, RuntimeError) and "for a batch of 3 rows" in str(r) for r in res)


def test_a_cancelled_request_is_skipped_and_others_complete():
    fn = Recorder()

    async def main():
        b, pool = make(fn, max_batch=8, max_delay_s=0.2)
        b.start()
        gone = asyncio.ensure_future(b.submit(rows(3, seed=1)))
        await asyncio.sleep(0.01)
        gone.cancel()
        kept = await b.submit(rows(2, seed=2))
        await b.close()
        pool.shutdown()
        return kept

    kept = run(main)
    assert np.array_equal(kept["x_out"], rows(2, seed=2)["x"] * 3 + 1)
    assert fn.calls == [{"x": (2, 4)}]  # the cancelled request's rows never ran


def test_queue_limit_and_closing():
    started, release = threading.Event(), threading.Event()

    def fn(feed):
        started.set()
        release.wait(10)  # hold the only engine slot so later requests stay queued
        return {"y": feed["x"] + 1}

    async def main():
        b, pool = make(fn, max_batch=1, max_delay_s=0.0, max_queue=2)
        b.start()
        running = asyncio.ensure_future(b.submit(rows(1, seed=0)))
        while not started.is_set():
            await asyncio.sleep(0.005)
        queued = [asyncio.ensure_future(b.submit(rows(1, seed=i))) for i in (1, 2)]
        await asyncio.sleep(0.01)
        assert b.depth == 2
        with pytest.raises(QueueFull, match="the limit is 2"):
            await b.submit(rows(1))
        closing = asyncio.ensure_future(b.close(timeout_s=30))
        await asyncio.sleep(0)
        with pytest.raises(Closed):
            await b.submit(rows(1))
        release.set()
        await closing
        pool.shutdown()
        return [t.result() for t in [running, *queued]]

    outs = run(main)
    for i, out in enumerate(outs):
        assert np.array_equal(out["y"], rows(1, seed=i)["x"] + 1)


def test_close_finishes_queued_requests():
    fn = Recorder(delay_s=0.02)

    async def main():
        b, pool = make(fn, max_batch=2, max_delay_s=0.5)
        b.start()
        tasks = [asyncio.ensure_future(b.submit(rows(1, seed=i))) for i in range(5)]
        await asyncio.sleep(0)
        await b.close(timeout_s=30)
        pool.shutdown()
        return [t.result() for t in tasks]

    outs = run(main)
    for i, out in enumerate(outs):
        assert np.array_equal(out["x_out"], rows(1, seed=i)["x"] * 3 + 1)


def test_concurrency_runs_that_many_batches_at_once():
    barrier = threading.Barrier(2, timeout=10)  # breaks (fails the run) unless two calls overlap

    def fn(feed):
        barrier.wait()
        return {"y": feed["x"]}

    async def main():
        b, pool = make(fn, max_batch=1, concurrency=2)
        b.start()
        outs = await asyncio.gather(*(b.submit(rows(1, seed=i)) for i in range(4)))
        await b.close()
        pool.shutdown()
        return outs

    assert len(run(main)) == 4


def test_bad_settings():
    pool = ThreadPoolExecutor(1)
    with pytest.raises(ValueError, match="max_batch"):
        DynamicBatcher(Recorder(), pool, batched=True, max_batch=0, max_delay_s=0)
    with pytest.raises(ValueError, match="max_delay_s"):
        DynamicBatcher(Recorder(), pool, batched=True, max_batch=2, max_delay_s=-1)
    pool.shutdown()
