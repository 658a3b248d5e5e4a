"""Bundles as served models: naming (``name=path``), loading, request validation, v2 metadata, statistics."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from attnx.core.errors import UserError
from attnx.deploy.bundle.engine import Engine, check_input
from attnx.deploy.bundle.manifest import IOSpec, Manifest
from attnx.deploy.serving.batcher import Closed, DynamicBatcher, QueueFull, Stat
from attnx.deploy.serving.bundles import has_batch_axis, parse_bundle_args, profile_max_batch
from attnx.deploy.serving.protocol import ProtocolError, v2_datatype, v2_shape
from attnx.deploy.serving.triton_repo import model_config

log = logging.getLogger("attnx.serve")

VERSION = "1"  # a bundle is one version of one model
PLATFORMS = {"ort": "onnxruntime_onnx", "trt": "tensorrt_plan"}


def _check_datatypes(name: str, manifest: Manifest) -> None:
    for spec in [*manifest.inputs, *manifest.outputs]:
        try:
            v2_datatype(spec.dtype)
        except (TypeError, ValueError):
            raise UserError(
                f"model '{name}': tensor '{spec.name}' has dtype {spec.dtype}, which KServe v2 cannot carry"
            ) from None


@dataclass
class ServedModel:
    """One bundle as served: its engine, the batcher in front of it and the executor it runs on."""

    name: str
    bundle: Path
    engine: Engine
    batcher: DynamicBatcher
    executor: ThreadPoolExecutor
    max_delay_s: float
    version: str = VERSION

    @property
    def manifest(self) -> Manifest:
        """The bundle's manifest."""
        return self.engine.manifest

    @property
    def batched(self) -> bool:
        """True when requests are stacked along axis 0 (every input and output has a dynamic batch)."""
        return self.batcher.batched

    async def infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run a validated feed through the batcher; every failure becomes the ProtocolError both protocols
        answer with: 503 (queue full or shutting down), 400 (the engine refused the input), 500 (it failed)."""
        try:
            return await self.batcher.submit(feed)
        except (QueueFull, Closed) as exc:
            raise ProtocolError(503, f"model '{self.name}': {exc}") from None
        except UserError as exc:
            raise ProtocolError(400, f"model '{self.name}': {exc}") from None
        except Exception as exc:  # the engine failed on this request: answer it, keep serving the others
            log.exception("inference failed in model %s", self.name)
            raise ProtocolError(500, f"model '{self.name}' failed: {type(exc).__name__}: {exc}") from None

    def validate(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Check a decoded request against the engine's inputs before it may join a batch (400 if wrong)."""
        checked = {}
        for spec in self.manifest.inputs:
            try:
                checked[spec.name] = check_input(spec, feed[spec.name], max_hw=self.manifest.max_hw)
            except UserError as exc:
                raise ProtocolError(400, f"model '{self.name}': {exc}") from None
        if self.batched:
            rows = {name: a.shape[0] for name, a in checked.items()}
            if len(set(rows.values())) > 1:
                raise ProtocolError(400, f"model '{self.name}': inputs disagree on the batch size (axis 0): {rows}")
            if min(rows.values()) < 1:
                raise ProtocolError(400, f"model '{self.name}': the batch size (axis 0) must be at least 1")
        return checked

    def metadata(self) -> dict[str, Any]:
        """The model's KServe v2 metadata: name, versions, platform, inputs and outputs."""
        def tensor(s: IOSpec) -> dict[str, Any]:
            return {"name": s.name, "datatype": v2_datatype(s.dtype), "shape": v2_shape(s.shape)}

        return {
            "name": self.name,
            "versions": [self.version],
            "platform": PLATFORMS.get(self.manifest.backend, self.manifest.backend),
            "inputs": [tensor(s) for s in self.manifest.inputs],
            "outputs": [tensor(s) for s in self.manifest.outputs],
        }

    def config(self) -> dict[str, Any]:
        """This model's configuration in Triton's model_config JSON form, as this server runs it."""
        return model_config(
            self.name, self.manifest, max_batch=self.batcher.max_batch if self.batched else 0,
            max_delay_us=int(self.max_delay_s * 1e6) if self.batcher.max_batch > 1 else None,
            instance_count=self.batcher.concurrency,
            instance_kind="KIND_GPU" if self.manifest.backend == "trt" else "KIND_CPU",
        )  # fmt: skip

    def statistics(self) -> dict[str, Any]:
        """The model's statistics in Triton's form (counts; times in nanoseconds)."""
        s = self.batcher.stats

        def stat(x: Stat) -> dict[str, int]:
            return {"count": x.count, "ns": x.ns}

        return {
            "name": self.name,
            "version": self.version,
            "last_inference": s.last_inference_ms,
            "inference_count": s.inference_count,
            "execution_count": s.execution_count,
            "inference_stats": {
                "success": stat(s.success),
                "fail": stat(s.fail),
                "queue": stat(s.queue),
                "compute_infer": stat(s.compute_infer),
            },  # fmt: skip
            "batch_stats": [
                {"batch_size": size, "compute_infer": stat(st)} for size, st in sorted(s.batch_sizes.items())
            ],
        }

    def close(self) -> None:
        """Wait for running work, then release the engine."""
        self.executor.shutdown(wait=True)
        self.engine.close()


def load_models(bundles: Sequence[str | Path], *, max_batch: int, max_delay_ms: float, pool_size: int,
                threads: int | None, max_queue: int, verify: bool = True,
                warmup: bool = True, allow_failed_parity: bool = False) -> list[ServedModel]:  # fmt: skip
    """Open every bundle's engine and put a batcher in front of it. Fails with a UserError before serving."""
    if max_batch < 1:
        raise UserError(f"--max-batch must be ≥ 1, got {max_batch}")
    if max_delay_ms < 0:
        raise UserError(f"--max-delay-ms must be ≥ 0, got {max_delay_ms}")
    if pool_size < 1:
        raise UserError(f"--pool-size must be ≥ 1, got {pool_size}")
    if max_queue < 1:
        raise UserError(f"--max-queue must be ≥ 1, got {max_queue}")
    pairs = parse_bundle_args(bundles)
    seen: dict[str, Path] = {}
    for name, path in pairs:
        if name in seen:
            raise UserError(f"two bundles are named '{name}' ({seen[name]} and {path}): name one as NAME=PATH")
        seen[name] = path
    models: list[ServedModel] = []
    try:
        for name, path in pairs:
            engine = Engine.load(path, pool_size=pool_size, threads=threads, verify=verify,
                                 allow_failed_parity=allow_failed_parity)  # fmt: skip
            _check_datatypes(name, engine.manifest)
            batched = has_batch_axis(engine.manifest)
            limit = profile_max_batch(engine.manifest)
            effective = min(max_batch, limit) if (batched and limit) else max_batch
            executor = ThreadPoolExecutor(max_workers=pool_size, thread_name_prefix=f"attnx-{name}")
            batcher = DynamicBatcher(
                engine, executor, batched=batched, max_batch=effective, max_delay_s=max_delay_ms / 1000,
                concurrency=pool_size, max_queue=max_queue,
            )  # fmt: skip
            models.append(ServedModel(name, path, engine, batcher, executor, max_delay_ms / 1000))
            if warmup:
                engine(warmup_feed(engine.manifest))  # first-run costs (allocations, kernel choice) before serving
    except BaseException:
        for m in models:
            m.close()
        raise
    return models


def warmup_feed(manifest: Manifest) -> dict[str, np.ndarray]:
    """Zeros at each input's optimisation-profile shape (batch 1 where the shape is dynamic)."""
    feed = {}
    for s in manifest.inputs:
        shape = s.profile["opt"] if s.profile else [1 if isinstance(d, str) else d for d in s.shape]
        feed[s.name] = np.zeros([int(d) for d in shape], dtype=np.dtype(s.dtype))
    return feed
