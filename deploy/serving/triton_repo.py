"""``attnx triton-repo``: bundles → an NVIDIA Triton Inference Server model repository.

    REPO/
      README.md                      how to start tritonserver on it (plugins, TensorRT version, GPUs)
      NAME/
        config.pbtxt                 platform, max_batch_size, inputs/outputs, dynamic_batching, instance_group
        attnx.json                   where each model file came from (bundle, hashes, parity) — Triton ignores it
        1/model.onnx                 ONNX Runtime and OpenVINO bundles (the bundle's precision-baked ONNX)
        1/model.sm90.plan ...        TensorRT bundles: one plan per compute capability (cc_model_filenames)

Several TensorRT bundles of one model built on GPUs of different compute capabilities become one Triton
model: Triton picks the plan for its GPU through ``cc_model_filenames``. OpenVINO bundles go to Triton's OpenVINO
backend (``backend: "openvino"``), which reads ``model.onnx`` itself; :func:`_openvino_model` says how its batching
differs. Every config.pbtxt is parsed with Triton's own protobuf schema (``model_config.proto`` as shipped in
tritonclient) and must equal, field for field, the configuration attnx meant to write; unknown fields or enum
values fail the build. Each model folder is written beside the repository and renamed into place, so a failure
never leaves half a model.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from attnx.core.errors import UserError
from attnx.core.files import write_text
from attnx.deploy.bundle.manifest import IOSpec, Manifest, check_recorded_parity, load_manifest
from attnx.deploy.serving.bundles import has_batch_axis, parse_bundle_args, profile_max_batch

DATA_TYPES = {
    "bool": "TYPE_BOOL", "uint8": "TYPE_UINT8", "uint16": "TYPE_UINT16", "uint32": "TYPE_UINT32",
    "uint64": "TYPE_UINT64", "int8": "TYPE_INT8", "int16": "TYPE_INT16", "int32": "TYPE_INT32",
    "int64": "TYPE_INT64", "float16": "TYPE_FP16", "float32": "TYPE_FP32", "float64": "TYPE_FP64",
    "bfloat16": "TYPE_BF16",
}  # fmt: skip
ENUM_FIELDS = {"data_type", "kind"}  # enum value names: written unquoted in text format
MAP_FIELDS = {"cc_model_filenames", "parameters"}  # written as repeated { key: ... value: ... } entries
SIDECAR = "attnx.json"


def _tensor(spec: IOSpec, batched: bool) -> dict[str, Any]:
    dtype = DATA_TYPES.get(spec.dtype)
    if dtype is None:
        raise UserError(f"tensor '{spec.name}' has dtype {spec.dtype}, which Triton has no TYPE_ for")
    dims = [d if isinstance(d, int) else -1 for d in (spec.shape[1:] if batched else spec.shape)]
    entry: dict[str, Any] = {"name": spec.name, "data_type": dtype}
    if dims:
        entry["dims"] = dims
    else:  # a per-sample scalar: Triton wants dims [1] reshaped to []
        entry["dims"] = [1]
        entry["reshape"] = {"shape": []}
    return entry


PLATFORMS = {"ort": ("platform", "onnxruntime_onnx"), "trt": ("platform", "tensorrt_plan"),
             "openvino": ("backend", "openvino")}  # fmt: skip


def model_config(name: str, manifest: Manifest, *, max_batch: int, max_delay_us: int | None, instance_count: int,
                 instance_kind: str, cc_files: dict[str, str] | None = None, default_file: str | None = None,
                 parameters: dict[str, str] | None = None) -> dict[str, Any]:  # fmt: skip
    """Triton's ModelConfig as a dict of proto field names (also the JSON the v2 config endpoint returns).

    ``max_batch`` 0 means the model has no batch axis (full shapes in dims, no dynamic batching);
    ``max_delay_us`` None means no dynamic_batching block.
    """
    batched = max_batch > 0
    key, value = PLATFORMS[manifest.backend]
    config: dict[str, Any] = {
        "name": name,
        key: value,
        "max_batch_size": max_batch,
        "input": [_tensor(s, batched) for s in manifest.inputs],
        "output": [_tensor(s, batched) for s in manifest.outputs],
    }
    if batched and max_delay_us is not None:
        config["dynamic_batching"] = {"max_queue_delay_microseconds": max_delay_us}
    config["instance_group"] = [{"count": instance_count, "kind": instance_kind}]
    if default_file:
        config["default_model_filename"] = default_file
    if cc_files:
        config["cc_model_filenames"] = dict(sorted(cc_files.items()))
    if parameters:
        config["parameters"] = {k: {"string_value": v} for k, v in parameters.items()}
    return config


# -- text format ------------------------------------------------------------------------------------------
def _scalar(value: Any, enum: bool = False) -> str:
    if enum:
        if not (isinstance(value, str) and value.isidentifier()):
            raise ValueError(f"{value!r} is not an enum value name")
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string literal is a valid text-format string literal
    raise TypeError(f"cannot write {value!r} in text format")


def _render_fields(data: dict[str, Any], indent: int) -> list[str]:
    pad = "  " * indent
    lines: list[str] = []
    for key, value in data.items():
        if key in MAP_FIELDS:
            for k, v in value.items():
                inner = _render_fields({"key": k, "value": v}, indent + 1)
                lines += [f"{pad}{key} {{", *inner, f"{pad}}}"]
        elif isinstance(value, dict):
            lines += [f"{pad}{key} {{", *_render_fields(value, indent + 1), f"{pad}}}"]
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            lines.append(f"{pad}{key} [")
            for i, item in enumerate(value):
                lines += [
                    f"{pad}  {{",
                    *_render_fields(item, indent + 2),
                    f"{pad}  }}{',' if i < len(value) - 1 else ''}",
                ]
            lines.append(f"{pad}]")
        elif isinstance(value, list):
            lines.append(f"{pad}{key}: [{', '.join(_scalar(v, key in ENUM_FIELDS) for v in value)}]")
        else:
            lines.append(f"{pad}{key}: {_scalar(value, key in ENUM_FIELDS)}")
    return lines


def render_pbtxt(config: dict[str, Any]) -> str:
    """A ModelConfig dict (proto field names, enum values as their names) in protobuf text format."""
    return "\n".join(_render_fields(config, 0)) + "\n"


def check_pbtxt(text: str, expected: dict[str, Any], where: str) -> None:
    """Parse ``text`` with Triton's ModelConfig schema and require it to equal ``expected`` field for field."""
    try:
        from google.protobuf import json_format, text_format
        from tritonclient.grpc import model_config_pb2
    except ImportError as exc:
        raise UserError(
            f"checking config.pbtxt needs Triton's model_config schema ({exc.name} is missing): "
            "pip install 'tritonclient[grpc]', or skip the check with --no-check"
        ) from None  # fmt: skip
    try:
        parsed = text_format.Parse(text, model_config_pb2.ModelConfig())
    except text_format.ParseError as exc:
        raise RuntimeError(f"{where} does not parse with Triton's model_config schema: {exc}") from None
    meant = json_format.ParseDict(expected, model_config_pb2.ModelConfig())
    if parsed != meant:
        raise RuntimeError(f"{where} parses to a different configuration than attnx meant to write:\n{parsed}")
    _check_semantics(parsed, where)


def _check_semantics(config: Any, where: str) -> None:
    """What Triton checks when it loads a model and the schema alone does not say."""
    names = [t.name for t in config.input] + [t.name for t in config.output]
    if not config.input or not config.output:
        raise RuntimeError(f"{where}: a model needs inputs and outputs")
    if len(set(names)) != len(names):
        raise RuntimeError(f"{where}: tensor names repeat: {names}")
    for t in [*config.input, *config.output]:
        if not t.dims or any(d == 0 or d < -1 for d in t.dims):
            raise RuntimeError(f"{where}: tensor '{t.name}' has dims {list(t.dims)}")
    if config.max_batch_size == 0 and config.HasField("dynamic_batching"):
        raise RuntimeError(f"{where}: dynamic_batching needs max_batch_size > 0")
    if config.platform == "tensorrt_plan" and any(g.kind != g.KIND_GPU for g in config.instance_group):
        raise RuntimeError(f"{where}: TensorRT plans run only on GPU instances")
    if config.backend == "openvino":
        if any(g.kind != g.KIND_CPU for g in config.instance_group):
            raise RuntimeError(f"{where}: Triton's OpenVINO backend takes CPU instances (KIND_CPU)")
        padding = config.parameters.get("ENABLE_BATCH_PADDING")
        if config.max_batch_size > 0 and (padding is None or padding.string_value.upper() != "YES"):
            raise RuntimeError(f"{where}: Triton's OpenVINO backend fails every batch smaller than max_batch_size "
                               "unless ENABLE_BATCH_PADDING is YES")  # fmt: skip


# -- bundles → models -----------------------------------------------------------------------------------
def compute_capability(manifest: Manifest) -> str | None:
    """The plan's compute capability as Triton writes it ("9.0"), from the manifest's device record."""
    device = manifest.device or {}
    value = device.get("compute_capability", device.get("cc", device.get("sm")))
    if value is None:
        return None
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return f"{int(value[0])}.{int(value[1])}"
    text = str(value).lower().removeprefix("sm_").removeprefix("sm")
    if "." in text:
        major, _, minor = text.partition(".")
    elif text.isdigit() and len(text) >= 2:
        major, minor = text[:-1], text[-1]
    else:
        return None
    return f"{int(major)}.{int(minor)}" if major.isdigit() and minor.isdigit() else None


@dataclass
class RepoModel:
    """One Triton model as planned: its config (JSON form), the files to copy and the bundles it comes from."""

    name: str
    config: dict[str, Any]
    files: dict[str, Path]  # path inside the model folder → source file
    bundles: list[tuple[Path, Manifest]]
    pbtxt: str = ""


def _io_signature(m: Manifest) -> list[tuple[str, str, list[int | str]]]:
    return [(s.name, s.dtype, s.shape) for s in [*m.inputs, *m.outputs]]


def plan_model(name: str, bundles: list[tuple[Path, Manifest]], *, max_batch: int | None, max_delay_us: int | None,
               instance_count: int, instance_kind: str) -> RepoModel:  # fmt: skip
    """Decide one Triton model (config and files) from the bundles given for it."""
    backends = {m.backend for _, m in bundles}
    if len(backends) > 1:
        raise UserError(f"model '{name}' is given bundles of different backends {sorted(backends)}: name them apart")
    backend = backends.pop()
    if backend not in PLATFORMS:
        raise UserError(f"model '{name}': backend '{backend}' has no Triton platform")
    if backend in ("ort", "openvino") and len(bundles) > 1:
        kind = "ONNX Runtime" if backend == "ort" else "OpenVINO"
        raise UserError(
            f"{len(bundles)} {kind} bundles are named '{name}' ({', '.join(str(p) for p, _ in bundles)}): "
            "name them apart with NAME=PATH"
        )  # fmt: skip
    first_path, first = bundles[0]
    for path, m in bundles[1:]:
        if _io_signature(m) != _io_signature(first):
            raise UserError(f"model '{name}': {path} has other inputs/outputs than {first_path}; name them apart")
    if backend == "openvino":
        return _openvino_model(name, first_path, first, instance_count=instance_count, instance_kind=instance_kind)

    files: dict[str, Path] = {}
    cc_files: dict[str, str] = {}
    default_file = None
    if backend == "ort":
        if first.plugins:
            raise UserError(
                f"bundle {first_path} uses attnx custom ops {first.plugins} as Python ONNX Runtime ops, which "
                "Triton's onnxruntime backend cannot run: rebuild it with `attnx build --plugins none`"
            )  # fmt: skip
        # The portable precision-baked ONNX, not ORT's optimised engine file: that one may hold fused ops of
        # the ORT version that built it, and Triton's onnxruntime backend optimises the graph itself.
        files["1/model.onnx"] = first.path_of(first_path, "onnx")
        default_file = "model.onnx"
        kind = "KIND_GPU" if instance_kind == "gpu" else "KIND_CPU"
        if instance_kind == "auto":
            providers = first.build.get("providers") or []
            kind = (
                "KIND_GPU"
                if any(p in ("CUDAExecutionProvider", "TensorrtExecutionProvider") for p in providers)
                else "KIND_CPU"
            )
    else:
        if instance_kind == "cpu":
            raise UserError(f"model '{name}' is a TensorRT plan: it runs only on GPU instances (--instance-kind gpu)")
        kind = "KIND_GPU"
        for path, m in bundles:
            cc = compute_capability(m)
            if cc is None:
                if len(bundles) > 1:
                    raise UserError(
                        f"bundle {path} records no compute capability (manifest device.compute_capability): "
                        f"it cannot be told apart from the other plans of '{name}'"
                    )  # fmt: skip
                default_file = "model.plan"
                files["1/model.plan"] = m.path_of(path, "engine")
                continue
            if cc in cc_files:
                raise UserError(f"model '{name}' has two plans for compute capability {cc}: name them apart")
            fname = f"model.sm{cc.replace('.', '')}.plan"
            cc_files[cc] = fname
            files[f"1/{fname}"] = m.path_of(path, "engine")

    batch = 0
    if all(has_batch_axis(m) for _, m in bundles):
        limits = [x for x in (profile_max_batch(m) for _, m in bundles) if x] + ([max_batch] if max_batch else [])
        if not limits:
            raise UserError(f"model '{name}' has a dynamic batch axis but no profile: pass --max-batch")
        batch = min(limits)
    config = model_config(
        name, first, max_batch=batch, max_delay_us=max_delay_us, instance_count=instance_count,
        instance_kind=kind, cc_files=cc_files or None, default_file=default_file,
    )  # fmt: skip
    return RepoModel(name, config, files, bundles)


def _openvino_model(name: str, path: Path, manifest: Manifest, *, instance_count: int,
                    instance_kind: str) -> RepoModel:  # fmt: skip
    """A model for Triton's OpenVINO backend, which reads the bundle's ONNX itself (``model.onnx``).

    That backend fixes the model's batch at ``max_batch_size`` when it is above 0 (``ov::set_batch``) and then
    fails every execution whose batch is smaller, or with ENABLE_BATCH_PADDING zero-pads it and computes the
    full batch. So the model gets ``max_batch_size: 0`` and keeps the ONNX's dynamic batch axis (dims -1): each
    request runs at its own batch size, without Triton's dynamic batcher (--max-batch, --max-delay-us do not
    apply). Concurrency comes from instances: NUM_STREAMS follows their count, as the attnx runtime keeps one
    stream per pooled request. A bf16 bundle sets HINT_BF16; the saved ``compiled.blob`` is not used (it is
    tied to the OpenVINO that built it, and Triton ships its own).
    """
    if instance_kind == "gpu":
        raise UserError(f"model '{name}' is an OpenVINO CPU bundle and Triton's GPU instances are CUDA devices: "
                        "use --instance-kind cpu or auto")  # fmt: skip
    parameters = {"NUM_STREAMS": str(instance_count)}
    if manifest.build.get("inference_precision") == "bf16":
        parameters["HINT_BF16"] = "YES"
    engine = manifest.path_of(path, "engine")
    if engine.suffix == ".xml":  # NNCF's INT8 model: OpenVINO IR, its weights in the .bin beside it
        files = {"1/model.xml": engine, "1/model.bin": manifest.path_of(path, "weights")}
    else:
        files = {"1/model.onnx": engine}
    config = model_config(
        name, manifest, max_batch=0, max_delay_us=None, instance_count=instance_count, instance_kind="KIND_CPU",
        default_file=next(iter(files)).split("/")[1], parameters=parameters,
    )  # fmt: skip
    return RepoModel(name, config, files, [(path, manifest)])


def _sidecar(model: RepoModel) -> dict[str, Any]:
    entries = []
    for path, m in model.bundles:
        entries.append({
            "bundle": str(Path(path).resolve()), "backend": m.backend, "precision": m.precision,
            "model": m.source.get("model"), "compute_capability": compute_capability(m) if m.backend == "trt" else None,
            "plugins": m.plugins, "libraries": m.libraries, "sha256": m.sha256,
            "parity_passed": (m.parity or {}).get("passed"),
        })  # fmt: skip
    return {"format": "attnx-triton-model", "name": model.name, "files": sorted(model.files), "bundles": entries}


def _write_model(repo: Path, model: RepoModel, force: bool) -> Path:
    dest = repo / model.name
    if dest.exists() and not force:
        raise UserError(f"{dest} exists: pass --force to replace it")
    tmp = Path(tempfile.mkdtemp(prefix=f".{model.name}.", dir=repo))
    try:
        for rel, src in model.files.items():
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, tmp / rel)
        (tmp / "config.pbtxt").write_text(model.pbtxt)
        (tmp / SIDECAR).write_text(json.dumps(_sidecar(model), indent=2) + "\n")
        if dest.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{model.name}.old.", dir=repo))
            os.replace(dest, old / model.name)
            os.replace(tmp, dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _readme(repo: Path) -> str:
    """The repository's README, covering every model attnx wrote into it (their attnx.json sidecars)."""
    models = []
    for side in sorted(repo.glob(f"*/{SIDECAR}")):
        try:
            data = json.loads(side.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if data.get("format") == "attnx-triton-model":
            models.append(data)
    lines = [
        "# Triton model repository (written by `attnx triton-repo`)",
        "",
        "Start the server on it (absolute path; the ports are Triton's defaults):",
        "",
        "```bash",
        f"tritonserver --model-repository={repo.resolve()}",
        "```",
        "",
        "| model | backend | precision | files | compute capability | TensorRT | parity |",
        "|---|---|---|---|---|---|---|",
    ]
    plugins: set[str] = set()
    trt_versions: set[str] = set()
    for data in models:
        for b in data["bundles"]:
            trt = (b.get("libraries") or {}).get("tensorrt") if b["backend"] == "trt" else None
            if trt:
                trt_versions.add(trt)
            if b["backend"] == "trt":
                plugins.update(b.get("plugins") or [])
            passed = {True: "passed", False: "FAILED", None: "not recorded"}[b.get("parity_passed")]
            lines.append(
                f"| {data['name']} | {b['backend']} | {b['precision']} | {', '.join(data['files'])} | "
                f"{b.get('compute_capability') or '-'} | {trt or '-'} | {passed} |"
            )  # fmt: skip
    lines.append("")
    if trt_versions:
        lines += [
            "TensorRT plans load only in a Triton release built with the same TensorRT "
            f"({', '.join(sorted(trt_versions))}) and on a GPU of a compute capability listed in the model's "
            "`cc_model_filenames`.",
            "",
        ]  # fmt: skip
    if plugins:
        lines += [
            f"Plugins: these plans use the attnx TensorRT plugins {sorted(plugins)}. Their kernels are compiled ahead "
            "of time into the plan, so no Python is needed at run time. A plan that also needs a plugin library "
            "(a shared object registering the plugin creators) is loaded with "
            "`tritonserver --model-repository=... --backend-config=tensorrt,plugins=\"/path/libA.so;/path/libB.so\"` "
            "(or `LD_PRELOAD=/path/libA.so tritonserver ...`).",
            "",
        ]  # fmt: skip
    openvino = [b for data in models for b in data["bundles"] if b["backend"] == "openvino"]
    if openvino:
        lines += [
            "OpenVINO models run in Triton's OpenVINO backend (`backend: \"openvino\"`, on CPU instances), which "
            "reads `1/model.onnx` itself; it needs a Triton release whose OpenVINO backend takes ONNX files and "
            "dynamic dimensions (2024 releases on). They have `max_batch_size: 0` and a -1 batch dimension: that "
            "backend fixes a model's batch at `max_batch_size` and fails smaller batches (or, with "
            "`ENABLE_BATCH_PADDING`, computes them zero-padded to the full batch), so each request runs at its own "
            "batch size and Triton's dynamic batcher is not used. For concurrency add instances (`--instances`); "
            "`NUM_STREAMS` follows their count.",
            "",
        ]  # fmt: skip
        if any(b["precision"] != "bf16" for b in openvino):
            lines += [
                "The OpenVINO backend has no parameter that pins f32 inference (`HINT_BF16` takes only YES), and "
                "OpenVINO's CPU plugin computes in bf16 by default on CPUs with native bf16 (AVX512_BF16, AMX): there "
                "fp32 and int8 models can give results other than their bundles' parity checks, which ran with f32 "
                "pinned.",
                "",
            ]  # fmt: skip
    lines += [
        "Each model folder's `attnx.json` names the bundle each file came from, with its hashes and parity "
        "result; Triton ignores it. Query a model with the KServe v2 protocol, e.g. "
        "`tritonclient.http.InferenceServerClient('localhost:8000').get_model_metadata(NAME)`.",
        "",
    ]
    return "\n".join(lines)


def write_repository(bundles: Sequence[str | Path], out: Path, *, max_batch: int | None = None,
                     max_delay_us: int | None = 100, instance_count: int = 1, instance_kind: str = "auto",
                     force: bool = False, check: bool = True, verify: bool = True,
                     allow_failed_parity: bool = False) -> list[RepoModel]:  # fmt: skip
    """Write (or add to) a Triton model repository; every config is planned and checked before any is written."""
    if instance_kind not in ("auto", "cpu", "gpu"):
        raise UserError(f"unknown instance kind '{instance_kind}': choose auto, cpu or gpu")
    if instance_count < 1:
        raise UserError(f"--instances must be ≥ 1, got {instance_count}")
    if max_batch is not None and max_batch < 1:
        raise UserError(f"--max-batch must be ≥ 1, got {max_batch}")
    if max_delay_us is not None and max_delay_us < 0:
        raise UserError(f"--max-delay-us must be ≥ 0, got {max_delay_us}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out} exists and is not a folder")
    groups: dict[str, list[tuple[Path, Manifest]]] = {}
    for name, path in parse_bundle_args(bundles):
        manifest = load_manifest(path, verify=verify)
        check_recorded_parity(path, manifest, allow_failed_parity)  # Triton would serve it as it is
        groups.setdefault(name, []).append((path, manifest))
    models = [
        plan_model(
            name,
            group,
            max_batch=max_batch,
            max_delay_us=max_delay_us,
            instance_count=instance_count,
            instance_kind=instance_kind,
        )  # fmt: skip
        for name, group in groups.items()
    ]
    for model in models:
        model.pbtxt = render_pbtxt(model.config)
        if check:
            check_pbtxt(model.pbtxt, model.config, f"config.pbtxt of '{model.name}'")
        if (out / model.name).exists() and not force:
            raise UserError(f"{out / model.name} exists: pass --force to replace it")
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        for model in models:
            _write_model(out, model, force)
        write_text(out / "README.md", _readme(out))
    except BaseException as exc:
        if created:  # a repository this call began and could not finish (disk full, ...): leave nothing behind
            shutil.rmtree(out, ignore_errors=True)
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            exc.filename, exc.filename2 = str(out), None  # the device that is full, not a work file's name
        raise
    return models
