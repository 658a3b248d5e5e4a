"""``attnx k8s``: KServe manifests for bundles, on Triton and on ``attnx serve``."""

from __future__ import annotations

from pathlib import Path

import typer

from attnx.deploy.cli import options as opt
from attnx.deploy.cli.console import console


def k8s(
    bundles: list[str] = opt.NAMED_BUNDLES,
    output: Path = opt.output("the folder for the manifests"),
    storage_uri: str = typer.Option(
        "pvc://attnx-models", "--storage-uri", help="where DIR/triton and DIR/bundles are uploaded (s3://, gs://...)"
    ),
    triton_version: str = typer.Option("24.08", "--triton-version", help="Triton container release (YY.MM)"),
    triton_tensorrt: str = typer.Option(
        None, "--triton-tensorrt", help="that release's TensorRT, when attnx's table does not know it"
    ),
    image: str = typer.Option(None, "--image", help="the attnx runtime image (default attnx-serve:VERSION)"),
    namespace: str = typer.Option(None, "--namespace", help="Kubernetes namespace"),
    min_replicas: int = typer.Option(1, "--min-replicas", help="fewest replicas (0: scale to zero)"),
    max_replicas: int = typer.Option(4, "--max-replicas", help="most replicas"),
    target_concurrency: int = typer.Option(
        None, "--target-concurrency", help="in-flight requests per replica to scale at (default max-batch × pool)"
    ),
    max_batch: int = opt.POOL_MAX_BATCH,
    max_delay_ms: float = opt.POOL_MAX_DELAY_MS,
    pool_size: int = opt.POOL_SIZE,
    threads: int = opt.threads(1, "each replica requests pool-size × threads CPUs"),
    measure: bool = typer.Option(True, "--measure/--no-measure", help="load each bundle to measure its memory"),
    force: bool = typer.Option(False, "--force", help="write into a folder that is not empty"),
    allow_failed_parity: bool = opt.ALLOW_FAILED_PARITY,
) -> None:
    """KServe manifests: an InferenceService per bundle on Triton, and on `attnx serve` as a custom CPU runtime.

    The engine-pool options are those of `attnx serve`, passed to the attnx runtime's containers."""
    # the manifest writer measures memory through the runtimes: loaded when the command runs
    from attnx.deploy.serving.k8s import write_manifests

    written = write_manifests(
        bundles, output, storage_uri=storage_uri, triton_version=triton_version, triton_tensorrt=triton_tensorrt,
        image=image, namespace=namespace, min_replicas=min_replicas, max_replicas=max_replicas,
        target_concurrency=target_concurrency, max_batch=max_batch, max_delay_ms=max_delay_ms, pool_size=pool_size,
        threads=threads, measure=measure, force=force, allow_failed_parity=allow_failed_parity,
    )  # fmt: skip
    for w in written:
        m = w.memory
        console.print(f"{w.name} ({w.backend}): memory {m.method}, process peak "
                      f"{m.process_peak_bytes / 2**20:.0f} MiB, "
                      f"bundle {m.bundle_bytes / 2**20:.0f} MiB", highlight=False)  # fmt: skip
        for f in w.files:
            console.print(f"  wrote {f}", highlight=False)
    console.print(f"{output / 'README.md'}: what to upload and apply", highlight=False)
