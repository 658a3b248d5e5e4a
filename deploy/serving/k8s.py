"""``attnx k8s``: bundles → KServe manifests a Kubernetes cluster can take as they are (``kubectl apply -f DIR``).

    DIR/
      README.md                                  what to upload where, how the resources were sized
      NAME-triton.inferenceservice.yaml          KServe InferenceService on the Triton runtime (per bundle)
      attnx-serve.servingruntime.yaml            ServingRuntime: `attnx serve` as a custom CPU runtime
      NAME-attnx.inferenceservice.yaml           InferenceService on that runtime (per non-TensorRT bundle)
      resources.json                             measured memory per bundle, and the sizes derived from it
      triton/NAME/NAME/config.pbtxt, 1/...       one-model Triton repository per bundle (`attnx triton-repo`)
      bundles/NAME/                              the bundle, as the attnx runtime loads it from /mnt/models
      attnx-runtime/Dockerfile                   the container recipe for the attnx runtime image

Manifests are YAML when PyYAML is installed, JSON otherwise (kubectl takes both). Every object is checked
against :mod:`attnx.deploy.serving.k8s_schema` (the KServe CRD fields emitted here and the Kubernetes core fields:
container, probes, resources) before anything is written.

Sizing: each bundle is loaded in a child process the way ``attnx serve`` loads it (server libraries imported,
engine warmed up, one full batch run) and its peak RSS is read (``ru_maxrss``). The attnx runtime requests
that peak × 1.25 and is limited to × 2; Triton gets the bundle's own share (peak minus the Python process
without it) plus :data:`TRITON_BASE_MIB`, an estimate of tritonserver's own resident memory with one backend
loaded (not measured here: no Triton on this machine). TensorRT bundles cannot be loaded without their GPU: their
host memory is estimated from the plan's size (× 2) plus the same base, and they ask for one GPU.

A TensorRT plan loads only in the TensorRT release that built it, so a TensorRT bundle's InferenceService pins
``runtimeVersion`` to a Triton release whose TensorRT (:data:`TRITON_TENSORRT`, NVIDIA's Frameworks Support
Matrix) equals the plan's major.minor.patch; the command refuses a release that does not match.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from attnx.core.errors import UserError
from attnx.deploy.bundle.manifest import Manifest, check_recorded_parity, load_manifest, parity_failed
from attnx.deploy.serving.bundles import parse_bundle_args
from attnx.deploy.serving.k8s_schema import validate
from attnx.deploy.serving.protocol import server_version
from attnx.deploy.serving.triton_repo import write_repository

# Triton container release → the TensorRT it ships (NVIDIA Frameworks Support Matrix). A release missing here
# can still be used for TensorRT bundles by stating its TensorRT: --triton-tensorrt.
TRITON_TENSORRT = {
    "24.01": "8.6.1", "24.02": "8.6.3", "24.03": "8.6.3", "24.04": "8.6.3", "24.05": "10.0.1", "24.06": "10.1.0",
    "24.07": "10.2.0", "24.08": "10.3.0", "24.09": "10.4.0", "24.10": "10.5.0", "24.11": "10.6.0",
    "24.12": "10.7.0", "25.01": "10.8.0", "25.02": "10.8.0", "25.03": "10.9.0", "25.04": "10.9.0",
}  # fmt: skip
DEFAULT_TRITON = "24.08"  # ONNX and dynamic shapes in the OpenVINO backend (2024 releases on)
TRITON_BASE_MIB = 1024  # tritonserver's own resident memory with a backend loaded: an estimate, see above
HTTP_PORT, GRPC_PORT, TRITON_METRICS_PORT = 8080, 8081, 8002
RUNTIME = "attnx-serve"
MIB = 1 << 20


def k8s_name(name: str, suffix: str) -> str:
    """A DNS-1035 label (lowercase letters, digits, '-'; starts with a letter; ≤ 63) from a model name."""
    base = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")
    if not base or not base[0].isalpha():
        base = f"m-{base}".rstrip("-")
    base = base[: 63 - len(suffix) - 1].rstrip("-")
    return f"{base}-{suffix}"


def _mi(n_bytes: float, step_mib: int = 32) -> str:
    """A memory quantity in Mi, rounded up to ``step_mib``."""
    return f"{int(math.ceil(n_bytes / MIB / step_mib) * step_mib)}Mi"


def tensorrt_version(text: str | None) -> str | None:
    """major.minor.patch of a TensorRT version ("10.3.0.26" → "10.3.0")."""
    if not text:
        return None
    parts = re.findall(r"\d+", str(text))
    return ".".join((parts + ["0", "0"])[:3]) if parts else None


def check_tensorrt(bundle: Path, manifest: Manifest, release: str, runtime_trt: str | None) -> str:
    """The runtime's TensorRT version when it can load this bundle's plan; refuses (UserError) otherwise."""
    plan = tensorrt_version(manifest.libraries.get("tensorrt"))
    if plan is None:
        raise UserError(f"bundle {bundle} is a TensorRT plan but records no TensorRT version (manifest libraries)")
    have = tensorrt_version(runtime_trt or TRITON_TENSORRT.get(release))
    if have is None:
        raise UserError(
            f"Triton release {release} is not in attnx's table of Triton → TensorRT versions: state its TensorRT "
            "with --triton-tensorrt, or choose a known release (--triton-version)"
        )  # fmt: skip
    if have != plan:
        fits = sorted(r for r, v in TRITON_TENSORRT.items() if v == plan)
        hint = f"use --triton-version {fits[-1]}" if fits else "no Triton release in attnx's table ships it"
        raise UserError(
            f"bundle {bundle} holds a TensorRT {plan} plan, but Triton {release} runs TensorRT {have}: a plan loads "
            f"only in the TensorRT that built it ({hint}, or rebuild the bundle with TensorRT {have})"
        )  # fmt: skip
    return have


# -- memory -----------------------------------------------------------------------------------------------
_MEASURE = r"""
import json, resource, sys
import numpy as np
import attnx.deploy.serving.app, attnx.deploy.serving.grpc_server  # the server's libraries, as attnx serve has them
from attnx.deploy.serving.models import load_models, warmup_feed
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()
base = rss()
base_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
path, max_batch, pool, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
[m] = load_models([path], max_batch=max_batch, max_delay_ms=1.0, pool_size=pool, threads=threads, max_queue=16,
                  allow_failed_parity=True)
feed = warmup_feed(m.manifest)
if m.batched:
    feed = {k: np.repeat(v[:1], m.batcher.max_batch, axis=0) for k, v in feed.items()}
for _ in range(3):
    m.engine(feed)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"base_rss": base, "base_peak": base_peak, "loaded_rss": rss(), "peak_rss": peak,
                  "max_batch": m.batcher.max_batch}))
m.close()
"""


@dataclass
class Memory:
    """A bundle's memory needs, in bytes: the serving process peak (measured or estimated) and its own share."""

    method: str  # "measured" or "estimated"
    process_peak_bytes: int  # the whole attnx serve process (measured) or an estimate
    bundle_bytes: int  # what the bundle adds to a process (for Triton sizing)
    max_batch: int
    note: str = ""


def measure_memory(bundle: Path, manifest: Manifest, *, max_batch: int, pool_size: int, threads: int,
                   timeout_s: float = 300.0) -> Memory:  # fmt: skip
    """Peak RSS of a child process that loads ``bundle`` as `attnx serve` does and runs one full batch."""
    if manifest.backend == "trt":
        plan = manifest.path_of(bundle, "engine").stat().st_size
        return Memory("estimated", 2 * plan + 512 * MIB, 2 * plan, max_batch,
                      "TensorRT: not loadable without its GPU here; host memory ≈ 2 × plan + 512 MiB")  # fmt: skip
    root = Path(__file__).resolve().parents[2]
    cmd = [sys.executable, "-c", _MEASURE, str(bundle), str(max_batch), str(pool_size), str(threads)]
    try:
        proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise UserError(f"measuring {bundle}'s memory took over {timeout_s:g} s: pass --no-measure") from None
    if proc.returncode != 0:
        raise UserError(f"could not load {bundle} to measure its memory: {proc.stderr.strip()[-600:]}")
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    return Memory("measured", data["peak_rss"], max(0, data["peak_rss"] - data["base_rss"]), data["max_batch"])


def estimate_memory(bundle: Path, manifest: Manifest, *, max_batch: int) -> Memory:
    """Without loading: 3 × the engine file (weights, ORT's copies, arena) + 400 MiB for Python and libraries."""
    size = manifest.path_of(bundle, "engine").stat().st_size
    return Memory("estimated", 3 * size + 400 * MIB, 3 * size, max_batch, "3 × engine file + 400 MiB (--no-measure)")


# -- objects ----------------------------------------------------------------------------------------------
def _probes(port: int) -> dict[str, Any]:
    return {
        "readinessProbe": {"httpGet": {"path": "/v2/health/ready", "port": port}, "initialDelaySeconds": 5,
                           "periodSeconds": 5, "timeoutSeconds": 2, "failureThreshold": 3},
        "livenessProbe": {"httpGet": {"path": "/v2/health/live", "port": port}, "initialDelaySeconds": 30,
                          "periodSeconds": 10, "timeoutSeconds": 5, "failureThreshold": 6},
    }  # fmt: skip


def _scrape(port: int) -> dict[str, str]:
    """Prometheus: KServe's own scrape settings and the common prometheus.io ones (pods inherit both)."""
    return {
        "serving.kserve.io/enable-prometheus-scraping": "true",
        "prometheus.kserve.io/port": str(port), "prometheus.kserve.io/path": "/metrics",
        "prometheus.io/scrape": "true", "prometheus.io/port": str(port), "prometheus.io/path": "/metrics",
    }  # fmt: skip


def _predictor(min_replicas: int, max_replicas: int, target: int) -> dict[str, Any]:
    return {"minReplicas": min_replicas, "maxReplicas": max_replicas, "scaleMetric": "concurrency",
            "scaleTarget": target}  # fmt: skip


def _metadata(name: str, namespace: str | None, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    meta["labels"] = {"app.kubernetes.io/managed-by": "attnx"}
    if annotations:
        meta["annotations"] = annotations
    return meta


def triton_isvc(name: str, manifest: Manifest, memory: Memory, *, storage_uri: str, release: str,
                namespace: str | None, min_replicas: int, max_replicas: int, target: int,
                cpu: str) -> dict[str, Any]:  # fmt: skip
    """The KServe InferenceService for the Triton runtime serving ``name``, sized from ``memory``."""
    mem = memory.bundle_bytes + TRITON_BASE_MIB * MIB
    resources: dict[str, Any] = {"requests": {"cpu": cpu, "memory": _mi(mem * 1.25)},
                                 "limits": {"memory": _mi(mem * 2)}}  # fmt: skip
    if manifest.backend == "trt":
        resources["requests"]["nvidia.com/gpu"] = "1"
        resources["limits"]["nvidia.com/gpu"] = "1"
    annotations = {"serving.kserve.io/deploymentMode": "Serverless", "autoscaling.knative.dev/metric": "concurrency",
                   **_scrape(TRITON_METRICS_PORT)}  # fmt: skip
    model = {
        "modelFormat": {"name": "triton"},
        "runtime": "kserve-tritonserver",
        "runtimeVersion": f"{release}-py3",
        "protocolVersion": "v2",
        "storageUri": storage_uri,
        "args": ["--strict-model-config=true", f"--metrics-port={TRITON_METRICS_PORT}"],
        "resources": resources,
        **_probes(HTTP_PORT),
    }
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": _metadata(name, namespace, annotations),
        "spec": {"predictor": {**_predictor(min_replicas, max_replicas, target), "model": model}},
    }


def serving_runtime(image: str, namespace: str | None) -> dict[str, Any]:
    """The KServe ServingRuntime that runs ``attnx serve`` in ``image``."""
    container = {
        "name": "kserve-container",
        "image": image,
        "command": ["attnx", "serve"],
        # KServe fills {{.Name}} with the InferenceService's name and downloads storageUri to /mnt/models;
        # the InferenceService's own args (batching, threads) are appended to these.
        "args": ["{{.Name}}=/mnt/models", "--host", "0.0.0.0", "--port", str(HTTP_PORT),
                 "--grpc-port", str(GRPC_PORT)],
        "ports": [{"containerPort": HTTP_PORT, "protocol": "TCP"}],
        "env": [{"name": "OMP_NUM_THREADS", "value": "1"}],
        "resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"memory": "2Gi"}},
        **_probes(HTTP_PORT),
    }  # fmt: skip
    return {
        "apiVersion": "serving.kserve.io/v1alpha1",
        "kind": "ServingRuntime",
        "metadata": _metadata(RUNTIME, namespace),
        "spec": {
            "annotations": _scrape(HTTP_PORT),
            "supportedModelFormats": [{"name": "attnx", "version": "1", "autoSelect": True}],
            "protocolVersions": ["v2", "grpc-v2"],
            "multiModel": False,
            "containers": [container],
        },
    }


def attnx_isvc(name: str, memory: Memory, *, storage_uri: str, namespace: str | None, min_replicas: int,
               max_replicas: int, target: int, max_batch: int, max_delay_ms: float, pool_size: int,
               threads: int, allow_failed_parity: bool = False) -> dict[str, Any]:  # fmt: skip
    """The KServe InferenceService for ``attnx serve`` with this bundle, sized from ``memory`` and the pool.

    ``allow_failed_parity`` passes ``--allow-failed-parity`` to the server, which otherwise refuses a bundle whose
    build-time parity check failed (set it only for such a bundle, when the user allowed it).
    """
    cpu = str(pool_size * threads)
    annotations = {"serving.kserve.io/deploymentMode": "Serverless", "autoscaling.knative.dev/metric": "concurrency",
                   **_scrape(HTTP_PORT)}  # fmt: skip
    model = {
        "modelFormat": {"name": "attnx", "version": "1"},
        "runtime": RUNTIME,
        "protocolVersion": "v2",
        "storageUri": storage_uri,
        "args": ["--max-batch", str(max_batch), "--max-delay-ms", f"{max_delay_ms:g}", "--pool-size", str(pool_size),
                 "--threads", str(threads)] + (["--allow-failed-parity"] if allow_failed_parity else []),
        "resources": {
            "requests": {"cpu": cpu, "memory": _mi(memory.process_peak_bytes * 1.25)},
            "limits": {"cpu": cpu, "memory": _mi(memory.process_peak_bytes * 2)},
        },
        **_probes(HTTP_PORT),
    }  # fmt: skip
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": _metadata(name, namespace, annotations),
        "spec": {"predictor": {**_predictor(min_replicas, max_replicas, target), "model": model}},
    }


def dockerfile(version: str) -> str:
    """The attnx runtime image: CPU ONNX Runtime / OpenVINO, the server, no compilers."""
    return textwrap.dedent(f"""\
        # The attnx runtime for KServe (ServingRuntime '{RUNTIME}'): `attnx serve` on CPU, KServe v2 HTTP :{HTTP_PORT}
        # and gRPC :{GRPC_PORT}. Build from the attnx source tree:
        #   docker build -f attnx-runtime/Dockerfile -t attnx-serve:{version} /path/to/attnx
        FROM python:3.11-slim
        ENV PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 OMP_NUM_THREADS=1
        RUN useradd --create-home --uid 1000 attnx
        WORKDIR /opt/attnx
        COPY pyproject.toml README.md ./
        COPY deploy ./deploy
        COPY exporters ./exporters
        COPY models ./models
        COPY plugins ./plugins
        # CPU wheels only: onnxruntime (not -gpu), openvino; the server (fastapi, uvicorn), gRPC (tritonclient)
        RUN pip install '.[serve,openvino,triton]'
        USER 1000
        EXPOSE {HTTP_PORT} {GRPC_PORT}
        # KServe downloads the model to /mnt/models; the ServingRuntime gives `{{{{.Name}}}}=/mnt/models --port ...`
        ENTRYPOINT ["attnx", "serve"]
        """)


# -- the command ------------------------------------------------------------------------------------------
@dataclass
class Written:
    """One model's manifests as written: its name, backend, files and memory sizing."""

    name: str
    backend: str
    files: list[Path]
    memory: Memory


def _dump(obj: dict[str, Any]) -> tuple[str, str]:
    try:
        import yaml
    except ImportError:
        return json.dumps(obj, indent=2) + "\n", "json"
    return yaml.safe_dump(obj, sort_keys=False, width=120), "yaml"


def load_manifest_file(path: Path) -> dict[str, Any]:
    """A manifest written here (YAML or JSON) as a dict."""
    text = path.read_text()
    if path.suffix == ".json":
        return json.loads(text)
    import yaml

    return yaml.safe_load(text)


def write_manifests(bundles: Sequence[str | Path], out: Path, *, storage_uri: str = "pvc://attnx-models",
                    triton_version: str = DEFAULT_TRITON, triton_tensorrt: str | None = None,
                    image: str | None = None, namespace: str | None = None, min_replicas: int = 1,
                    max_replicas: int = 4, target_concurrency: int | None = None, max_batch: int = 8,
                    max_delay_ms: float = 1.0, pool_size: int = 1, threads: int = 1, measure: bool = True,
                    force: bool = False, allow_failed_parity: bool = False) -> list[Written]:  # fmt: skip
    """Plan, size and check every manifest, then write them all (see the module docstring)."""
    if not re.fullmatch(r"\d\d\.\d\d", triton_version):
        raise UserError(f"--triton-version is a Triton container release such as 24.08, got {triton_version!r}")
    for option, value in [("--min-replicas", min_replicas), ("--max-replicas", max_replicas),
                          ("--max-batch", max_batch), ("--pool-size", pool_size), ("--threads", threads)]:  # fmt: skip
        if value < (0 if option == "--min-replicas" else 1):
            raise UserError(f"{option} must be ≥ {0 if option == '--min-replicas' else 1}, got {value}")
    if max_replicas < min_replicas:
        raise UserError(f"--max-replicas ({max_replicas}) is below --min-replicas ({min_replicas})")
    if target_concurrency is not None and target_concurrency < 1:
        raise UserError(f"--target-concurrency must be ≥ 1, got {target_concurrency}")
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not force:
        raise UserError(f"{out} exists and is not empty: pass --force to write into it")
    storage_uri = storage_uri.rstrip("/")
    image = image or f"attnx-serve:{server_version()}"

    plans: list[tuple[str, Path, Manifest, Memory, dict[str, dict[str, Any]]]] = []
    seen: set[str] = set()
    runtime_needed = False
    for model_name, path in parse_bundle_args(bundles):
        if model_name in seen:
            raise UserError(f"two bundles are named '{model_name}': name one as NAME=PATH")
        seen.add(model_name)
        manifest = load_manifest(path)
        check_recorded_parity(path, manifest, allow_failed_parity)
        if manifest.backend == "trt":
            check_tensorrt(path, manifest, triton_version, triton_tensorrt)
        memory = (measure_memory(path, manifest, max_batch=max_batch, pool_size=pool_size, threads=threads)
                  if measure else estimate_memory(path, manifest, max_batch=max_batch))  # fmt: skip
        target = target_concurrency or max(1, memory.max_batch * pool_size)
        objects: dict[str, dict[str, Any]] = {}
        tname = k8s_name(model_name, "triton")
        objects[f"{tname}.inferenceservice"] = triton_isvc(
            tname, manifest, memory, storage_uri=f"{storage_uri}/triton/{model_name}",
            release=triton_version, namespace=namespace, min_replicas=min_replicas, max_replicas=max_replicas,
            target=target, cpu=str(pool_size * threads),
        )  # fmt: skip
        if manifest.backend != "trt":  # the attnx runtime is the CPU runtime
            aname = k8s_name(model_name, "attnx")
            objects[f"{aname}.inferenceservice"] = attnx_isvc(
                aname, memory, storage_uri=f"{storage_uri}/bundles/{model_name}", namespace=namespace,
                min_replicas=min_replicas, max_replicas=max_replicas, target=target, max_batch=max_batch,
                max_delay_ms=max_delay_ms, pool_size=pool_size, threads=threads,
                allow_failed_parity=allow_failed_parity and parity_failed(manifest),
            )  # fmt: skip
            runtime_needed = True
        plans.append((model_name, path, manifest, memory, objects))
    runtime = serving_runtime(image, namespace) if runtime_needed else None
    for *_, objects in plans:
        for key, obj in objects.items():
            validate(obj, key)
    if runtime:
        validate(runtime, "ServingRuntime")

    out.mkdir(parents=True, exist_ok=True)
    written: list[Written] = []
    sizes: dict[str, Any] = {}
    for model_name, path, manifest, memory, objects in plans:
        files = []
        repo = out / "triton" / model_name
        write_repository([f"{model_name}={path}"], repo, force=True, allow_failed_parity=allow_failed_parity)
        files.append(repo)
        if manifest.backend != "trt":
            dest = out / "bundles" / model_name
            if dest.exists():
                shutil.rmtree(dest)
            shutil.copytree(path, dest)
            files.append(dest)
        for key, obj in objects.items():
            text, ext = _dump(obj)
            target_file = out / f"{key}.{ext}"
            target_file.write_text(text)
            files.append(target_file)
        sizes[model_name] = {"bundle": str(Path(path).resolve()), "backend": manifest.backend, **asdict(memory)}
        written.append(Written(model_name, manifest.backend, files, memory))
    if runtime:
        text, ext = _dump(runtime)
        (out / f"{RUNTIME}.servingruntime.{ext}").write_text(text)
        (out / "attnx-runtime").mkdir(exist_ok=True)
        (out / "attnx-runtime" / "Dockerfile").write_text(dockerfile(server_version()))
    (out / "resources.json").write_text(json.dumps({"triton_base_mib_estimate": TRITON_BASE_MIB,
                                                    "models": sizes}, indent=2) + "\n")  # fmt: skip
    (out / "README.md").write_text(_readme(out, written, storage_uri, triton_version, image))
    return written


def _readme(out: Path, written: list[Written], storage_uri: str, release: str, image: str) -> str:
    rows = [
        f"| {w.name} | {w.backend} | {w.memory.method} | {w.memory.process_peak_bytes / MIB:.0f} MiB | "
        f"{w.memory.bundle_bytes / MIB:.0f} MiB |"
        for w in written
    ]
    return "\n".join(
        [
            "# KServe manifests (written by `attnx k8s`)",
            "",
            f"1. Upload `triton/` and `bundles/` to `{storage_uri}/` (same layout): each InferenceService's "
            "`storageUri` points there.",
            f"2. For the attnx runtime, build and push the image `{image}` (`attnx-runtime/Dockerfile`), then "
            "`kubectl apply -f attnx-serve.servingruntime.yaml`.",
            f"3. `kubectl apply -f {out}` (the Triton ones use KServe's `kserve-tritonserver` runtime, "
            f"release {release}).",
            "",
            "| model | backend | memory | attnx serve process peak | bundle's own share |",
            "|---|---|---|---|---|",
            *rows,
            "",
            "The attnx runtime requests 1.25 × the measured peak and is limited to 2 ×; Triton gets the bundle's share "
            f"plus {TRITON_BASE_MIB} MiB (an estimate of tritonserver itself). Replicas scale on concurrency "
            "(Knative: `scaleMetric: concurrency`, `scaleTarget` in-flight requests per replica); readiness and "
            "liveness probe `/v2/health/ready` and `/v2/health/live`; Prometheus scrapes `/metrics`. Model names in "
            "`/v2/models/NAME`: on Triton, the bundle's name; on the attnx runtime, the InferenceService's (KServe "
            "fills `{{.Name}}`). Through Knative only the HTTP port is routed; the attnx runtime's gRPC port (8081) "
            "is reachable inside the pod network or in RawDeployment mode.",
            "",
        ]
    )
