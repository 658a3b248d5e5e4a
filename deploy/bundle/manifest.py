"""Bundles: a folder holding an engine, the ONNX it was built from, and a manifest describing both.

    BUNDLE/
      manifest.json      what was built, from what, how, with which libraries, and its parity result
      model.onnx         the precision-baked ONNX (what the engine was built from)
      engine.*           the engine: ORT → engine.onnx (ORT-optimised graph); TensorRT → engine.plan;
                         OpenVINO → model.onnx itself (the baked graph) and compiled.blob
      compiled.blob      OpenVINO: the compiled model for the build machine's OpenVINO and CPU (faster load)
      calibration.json   the INT8 calibration table (int8 bundles)

Bundles are written into a temporary sibling folder and renamed into place when complete, so a failed
build never leaves a half-written bundle. Loading checks every file against the SHA-256 recorded in the
manifest, so a truncated or modified file is named as such.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from attnx.core.errors import UserError, shown
from attnx.core.files import umask
from attnx.exporters.weights import file_sha256 as sha256_file

MANIFEST_NAME = "manifest.json"
FORMAT = "attnx-bundle"
FORMAT_VERSION = 1
BACKENDS = ("ort", "trt", "openvino")
PRECISIONS = ("fp32", "fp16", "bf16", "int8")  # bf16: OpenVINO's inference precision on CPUs that have it


@dataclass
class IOSpec:
    """One graph input or output of a bundle's engine, as recorded in ``manifest.json``.

    Attributes:
        name: the ONNX value name (the key of the feed / fetch dicts of ``Engine.run``).
        dtype: NumPy dtype name of the tensor ("float32", "float16", "int64", ...), from the baked ONNX's
            ``elem_type`` via ``onnx.helper.tensor_dtype_to_np_dtype``.
        shape: one entry per axis: an ``int`` for a fixed size, a ``str`` for a dynamic axis (its ONNX
            ``dim_param``, e.g. "batch"; "?" where the graph leaves it unnamed). Images are (N, C, H, W).
        profile: inputs with a dynamic axis only: the optimisation profile {"min", "opt", "max"} → shape
            lists of the same rank, batch from 1 to ``max_batch`` (TensorRT's
            ``IOptimizationProfile.set_shape``); None for outputs and fully static inputs.
    """

    name: str
    dtype: str  # NumPy dtype name: "float32", "float16", "int64", ...
    shape: list[int | str]  # str for a dynamic axis ("batch")
    profile: dict[str, list[int]] | None = None  # TensorRT optimisation profile: min / opt / max shapes


@dataclass
class Manifest:
    """What a bundle holds, from what and how it was built, and how its build-time parity check went.

    Written once by ``attnx.deploy.apis.build`` (through ``BundleWriter.commit``) as ``manifest.json``,
    read back by ``load_manifest`` / ``Manifest.from_dict``; ``to_dict`` is its JSON form. Fields:

    Attributes:
        backend: the engine's runtime, one of ``BACKENDS``: "ort" (ONNX Runtime, CPU provider), "trt"
            (TensorRT plan), "openvino" (OpenVINO CPU).
        precision: one of ``PRECISIONS``: "fp32", "fp16", "bf16" (OpenVINO's inference precision; the graph
            stays fp32) or "int8".
        source: where the model came from: "model" (the model spec, e.g. a timm name), "config",
            "weights_sha256" (of the PyTorch weights, hex), "fp32_onnx_sha256" (the exported fp32 ONNX,
            hex), "reference" ("torch" or "onnxruntime fp32": what parity compares against).
        opset: the default-domain ONNX opset of the baked graph (0 when it declares none).
        inputs: the engine's inputs (``IOSpec``, with optimisation profiles over a dynamic batch).
        outputs: the engine's outputs (``IOSpec``, no profile).
        files: role → file name inside the bundle. Roles: "onnx" (the precision-baked ONNX, always
            ``model.onnx``), "reference" (the fp32 graph parity compares with: ``model.onnx`` itself for
            fp32/bf16 and OpenVINO INT8, else ``reference.onnx``), "engine" (``engine.onnx`` for ORT,
            ``engine.plan`` for TensorRT, ``model.onnx`` / ``model.xml`` for OpenVINO), "weights"
            (OpenVINO INT8's ``model.bin``), "compiled" (OpenVINO's compiled blob), "calibration"
            (``calibration.json``, INT8 calibration table). One file may fill two roles.
        sha256: file name → hex SHA-256 of every file in ``files``; filled by ``BundleWriter.commit`` and
            checked by ``load_manifest(verify=True)``.
        precision_plan: the calibration plan's record (``attnx.calibration``: which nodes stay fp32 /
            leave INT8 and why, plus for INT8 the "cpu" record); None for fp32/bf16.
        calibration: INT8 / fp16 calibration record: method, data source (synthetic data flagged), table
            hash; None when no calibration ran.
        plugins: op types of the attnx custom-op domain ("attnx") left in the baked graph, sorted.
        libraries: distribution name → version (None if not installed) at build time
            (``library_versions``).
        device: the build device: ``cpu_device()`` for ORT/OpenVINO ({"kind": "cpu", "name", "cores"});
            for TensorRT {"kind": "cuda", "index", "name", "compute_capability" ("9.0"), "sm" ("sm_90"),
            "memory_mib", "driver_version", "cuda_runtime_version"}: a plan is tied to that GPU kind.
        build: the backend build options as given: "max_batch", "opset", "plugins_mode", and per backend
            "providers" (ORT), "inference_precision" / "compiled" (OpenVINO), or the TensorRT build facts
            ("tensorrt_version", "strongly_typed", "network_flags", "trt_options", ...).
        parity: ``ParityReport.to_dict()`` of the build's own engine-vs-reference check ("passed": bool,
            per-output metrics); None when the check did not run. ``parity_failed`` reads it.
        notes: free-text remarks of the build (fallbacks, nodes kept in fp32...), for people.
        cpu: for INT8 the recipe, the CPU it was verified on and the saturation proof
            (``attnx.calibration.int8_numerics``); else {"verified_on": the build CPU's features}
            (``attnx.core.cpu.CpuFeatures.to_dict``).
        parity_inputs: how the build's parity inputs were made, reproducibly: {"kind": "seeded"} or
            {"kind": "held_out", ...calibration options}: ``attnx parity`` rebuilds the same ones.
        format: always ``FORMAT`` ("attnx-bundle").
        format_version: the bundle format, ``FORMAT_VERSION`` when written; a newer one is refused.
        attnx_version: the attnx version recorded by the writer (the field's default).
        created: UTC time of the commit, ISO 8601 to the second ("2026-01-31T12:00:00+00:00").
    """

    backend: str
    precision: str
    source: dict[str, Any]  # model spec, config, weights and ONNX hashes
    opset: int
    inputs: list[IOSpec]
    outputs: list[IOSpec]
    files: dict[str, str]  # role ("engine", "onnx", "calibration", ...) → file name in the bundle
    sha256: dict[str, str] = field(default_factory=dict)  # file name → digest
    precision_plan: dict[str, Any] | None = None
    calibration: dict[str, Any] | None = None  # method, data source (synthetic flagged), table hash
    plugins: list[str] = field(default_factory=list)
    libraries: dict[str, str | None] = field(default_factory=dict)
    device: dict[str, Any] = field(default_factory=dict)  # kind, name, compute capability for plans
    build: dict[str, Any] = field(default_factory=dict)  # backend build options as given
    parity: dict[str, Any] | None = None  # ParityReport.to_dict() of the build's own check
    notes: list[str] = field(default_factory=list)
    # the build CPU's features (attnx.core.cpu); INT8: recipe, verified_on, saturation proof, check kernels
    cpu: dict[str, Any] = field(default_factory=dict)
    # the inputs the build's parity check used, reproducibly (kind, calibration options): attnx parity reuses them
    parity_inputs: dict[str, Any] = field(default_factory=dict)
    format: str = FORMAT
    format_version: int = FORMAT_VERSION
    attnx_version: str = "0.1.0"
    created: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The manifest as plain JSON-ready types (``dataclasses.asdict``; ``IOSpec`` become dicts)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "manifest") -> Manifest:
        """Rebuild a manifest from its JSON form (``json.load`` of ``manifest.json``).

        Args:
            data: the parsed JSON object.
            where: how to name the manifest in error messages (its path).

        Raises:
            UserError: ``data`` is not a dict; its "format" is not ``FORMAT``; "format_version" is missing,
                not a positive int, or newer than ``FORMAT_VERSION``; a field has the wrong JSON type; a
                required field is missing or an unknown one is present.
        """
        if not isinstance(data, dict):
            raise UserError(f"{where} is corrupt: it holds a {type(data).__name__}, not an object; rebuild the "
                            "bundle with `attnx build`")  # fmt: skip
        if data.get("format") != FORMAT:
            raise UserError(f"{where} is not an attnx bundle manifest (format {data.get('format')!r})")
        version = data.get("format_version")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise UserError(f"{where} has no valid format_version ({version!r}): rebuild the bundle with `attnx build`")
        if version > FORMAT_VERSION:
            raise UserError(
                f"{where} has bundle format {data['format_version']}, newer than this attnx reads "
                f"({FORMAT_VERSION}): upgrade attnx"
            )
        _check_field_types(data, where)
        try:
            fields = dict(data)
            fields["inputs"] = [IOSpec(**s) for s in data["inputs"]]
            fields["outputs"] = [IOSpec(**s) for s in data["outputs"]]
            return cls(**fields)
        except (KeyError, TypeError) as exc:
            raise UserError(f"{where} is corrupt: {exc}; rebuild the bundle with `attnx build`") from None

    @property
    def max_hw(self) -> tuple[int, int] | None:
        """The largest (H, W) of a dynamic-H/W input the precision plan was decided for (``--calib
        max_input_shape``: FP16 overflow pins hold up to it, not beyond); None when the plan has no such bound."""
        hw = ((self.precision_plan or {}).get("largest_input") or {}).get("max_hw")
        return (int(hw[0]), int(hw[1])) if isinstance(hw, list) and len(hw) == 2 else None

    def path_of(self, bundle: Path, role: str) -> Path:
        """The path of the bundle file that fills ``role`` ("engine", "onnx", ...; see ``files``).

        Raises:
            UserError: the manifest names no file for ``role``, or names one outside the bundle
                (``member_path``).
        """
        if role not in self.files:
            raise UserError(f"bundle {bundle} has no {role} file")
        return member_path(bundle, self.files[role])


def _check_field_types(data: dict[str, Any], where: str) -> None:
    """The fields later code indexes into must have their types: a wrong one is a corrupt manifest, not a crash."""
    kinds = {"files": dict, "sha256": dict, "source": dict, "build": dict, "device": dict, "libraries": dict,
             "cpu": dict, "parity_inputs": dict, "inputs": list, "outputs": list, "notes": list, "plugins": list}
    for key, kind in kinds.items():
        if key in data and not isinstance(data[key], kind):
            raise UserError(f"{where} is corrupt: '{key}' is not a{'n object' if kind is dict else ' list'}; "
                            "rebuild the bundle with `attnx build`")  # fmt: skip
    for key in ("files", "sha256"):
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in data.get(key, {}).items()):
            raise UserError(f"{where} is corrupt: '{key}' must map names to strings; rebuild the bundle")
    if data.get("parity") is not None and not isinstance(data["parity"], dict):
        raise UserError(f"{where} is corrupt: 'parity' is not an object; rebuild the bundle with `attnx build`")


def member_path(bundle: Path, name: str) -> Path:
    """The bundle file a manifest names, refused unless it lies inside the bundle folder.

    No absolute path, no ``..``, no symlink (of the file or a folder on the way) that resolves outside.

    Args:
        bundle: the bundle folder.
        name: a file name as the manifest records it (relative, "/"-separated).

    Returns:
        ``bundle / name`` (not resolved; it need not exist).

    Raises:
        UserError: ``name`` is empty, ".", absolute, holds ".." or a backslash, or resolves outside the bundle.
    """
    bundle = Path(bundle)
    rel = Path(name)
    if not name or rel.is_absolute() or ".." in rel.parts or "\\" in name or rel == Path("."):
        raise UserError(f"bundle {bundle} names a file outside itself ('{shown(name)}'): a bundle's files lie in "
                        "its own folder; rebuild it with `attnx build`")  # fmt: skip
    path = bundle / rel
    if not path.resolve().is_relative_to(bundle.resolve()):
        raise UserError(f"bundle {bundle}: {shown(name)} is a link to a file outside the bundle; a bundle's files "
                        "lie in its own folder: rebuild it with `attnx build`")  # fmt: skip
    return path


def check_members(bundle: Path, manifest: Manifest) -> None:
    """Every file the manifest names lies inside the bundle and has a recorded SHA-256; no ONNX file of
    the bundle reads external data (attnx never writes any, and it would be read unhashed).

    Raises:
        UserError: a file lies outside the bundle (``member_path``), the manifest records no SHA-256 at all,
            or a file in ``files`` has none.
    """
    names = set(manifest.files.values())
    for name in sorted(names | set(manifest.sha256)):
        member_path(bundle, name)
    if not manifest.sha256:
        raise UserError(f"bundle {bundle} records no SHA-256 for its files, so they cannot be verified; "
                        "rebuild it with `attnx build`")  # fmt: skip
    unhashed = sorted(names - set(manifest.sha256))
    if unhashed:
        raise UserError(f"bundle {bundle} records no SHA-256 for {', '.join(map(shown, unhashed))}, so it cannot "
                        "be verified; rebuild it with `attnx build`")  # fmt: skip


def check_no_external_data(bundle: Path, manifest: Manifest) -> None:
    """Refuse a bundle whose ONNX files read tensors from external data files (never hashed, never written).

    Only the ``.onnx`` files the manifest names and that exist are read (see ONNX "External Data":
    https://onnx.ai/onnx/repo-docs/ExternalData.html).

    Raises:
        UserError: an ONNX file of the bundle has a tensor with ``data_location == EXTERNAL``, or a named
            file lies outside the bundle.
    """
    from attnx.core.onnx_files import external_locations, read_model

    for name in sorted(set(manifest.files.values())):
        path = member_path(bundle, name)
        if name.endswith(".onnx") and path.is_file():
            outside = external_locations(read_model(path))
            if outside:
                tensor, location = next(iter(outside.items()))
                raise UserError(f"bundle {bundle}: {name} reads tensor '{shown(tensor)}' from external data "
                                f"('{shown(location)}'), which attnx bundles never hold: rebuild it with "
                                "`attnx build`")  # fmt: skip


def parity_failed(manifest: Manifest) -> bool:
    """True if the manifest records a parity check at build time that did not pass."""
    return manifest.parity is not None and manifest.parity.get("passed") is not True


def check_recorded_parity(bundle: Path, manifest: Manifest, allow_failed_parity: bool = False,
                          quiet: bool = False) -> None:  # fmt: skip
    """Refuse to run a bundle whose build-time parity check failed, unless the user opts in (then warn).

    Args:
        bundle: the bundle folder (for messages).
        manifest: its manifest; a bundle with no recorded check (``parity`` None) passes.
        allow_failed_parity: run it anyway, with a warning on stderr unless ``quiet``.
        quiet: no warning.

    Raises:
        UserError: the recorded check failed and ``allow_failed_parity`` is False.
    """
    if not parity_failed(manifest):
        return
    what = f"{manifest.backend} {manifest.precision}"
    if not allow_failed_parity:
        raise UserError(
            f"bundle {bundle} ({what}) failed its parity check when it was built, so its outputs are not "
            f"trusted: diagnose it with `attnx parity {bundle}`, rebuild it, or pass --allow-failed-parity "
            "(Python: allow_failed_parity=True) to run it anyway"
        )
    if not quiet:
        from attnx.core.errors import warn

        warn(f"bundle {bundle} ({what}) failed its parity check when it was built; running it anyway "
             "(--allow-failed-parity)")  # fmt: skip


def library_versions() -> dict[str, str | None]:
    """Versions of the libraries a bundle depends on (None where not installed). Never imports tensorrt."""
    from importlib import metadata

    versions: dict[str, str | None] = {}
    for dist in ("onnx", "onnxruntime", "onnxruntime-gpu", "torch", "tensorrt", "onnxruntime-extensions", "openvino"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    return versions


def cpu_device() -> dict[str, Any]:
    """The build machine's CPU as a manifest ``device``: {"kind": "cpu", "name": processor or machine
    (``platform``), "cores": logical CPU count (``os.cpu_count()``, may be None)}."""
    return {"kind": "cpu", "name": platform.processor() or platform.machine(), "cores": os.cpu_count()}


def check_destination(dest: Path) -> None:
    """A bundle may replace a bundle or fill an empty folder, never overwrite someone's other files.

    Raises:
        UserError: ``dest`` is a file, or a non-empty folder without a ``manifest.json``.
    """
    if dest.exists() and not dest.is_dir():
        raise UserError(f"{dest} is a file, not a folder: give a new or empty folder for the bundle")
    if dest.exists() and not (dest / MANIFEST_NAME).is_file() and any(dest.iterdir()):
        raise UserError(f"{dest} exists and is not a bundle: choose an empty or new folder")


def replace_dir(src: Path, dest: Path) -> Path:
    """Put the finished folder ``src`` at ``dest`` (same filesystem), replacing what was there by renames.

    The old ``dest`` is first renamed to a hidden ``.NAME.old`` sibling and removed after, so ``dest`` is
    missing only between two renames. Returns ``dest``. Raises ``OSError`` from ``os.replace`` (e.g.
    across filesystems).
    """
    if dest.exists():
        old = dest.with_name(f".{dest.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(dest, old)
        os.replace(src, dest)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(src, dest)
    return dest


class BundleWriter:
    """Collect files in a temporary folder beside ``dest``; ``commit(manifest)`` hashes them and renames.

    Used as a context manager: leaving the block without ``commit`` (an exception) removes the temporary
    folder, and an ``OSError`` names ``dest`` rather than the hidden folder.

    Raises:
        UserError: ``dest`` may not receive a bundle (``check_destination``).
        OSError: the parent folder cannot be created or written.
    """

    def __init__(self, dest: Path):
        self.dest = Path(dest)
        check_destination(self.dest)
        self.dest.parent.mkdir(parents=True, exist_ok=True)
        from attnx.core.errors import name_destination
        from attnx.core.tempdirs import mkdtemp

        try:
            self.tmp = mkdtemp(f".{self.dest.name}.", dir=self.dest.parent)  # named by its pid: attnx.core.tempdirs
        except OSError as exc:
            name_destination(exc, self.dest, self.dest.parent / f".{self.dest.name}.")
            raise

    def path(self, name: str) -> Path:
        """Where to write the bundle file ``name`` (inside the temporary folder until ``commit``)."""
        return self.tmp / name

    def commit(self, manifest: Manifest) -> Path:
        """Finish the bundle: fill ``manifest.sha256`` and ``created``, write ``manifest.json``, rename into place.

        Every file named in ``manifest.files`` must have been written through ``path``. Returns ``dest``.

        Raises:
            FileNotFoundError: a file the manifest names was not written.
            OSError: writing or renaming failed.
        """
        manifest.sha256 = {name: sha256_file(self.tmp / name) for name in sorted(set(manifest.files.values()))}
        manifest.created = datetime.now(timezone.utc).isoformat(timespec="seconds")
        (self.tmp / MANIFEST_NAME).write_text(json.dumps(manifest.to_dict(), indent=2) + "\n")
        os.chmod(self.tmp, 0o777 & ~umask())  # mkdtemp made it private; a bundle is an ordinary folder
        return replace_dir(self.tmp, self.dest)

    def abort(self) -> None:
        """Remove the temporary folder and all written so far (errors ignored)."""
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> BundleWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        from attnx.core.errors import name_destination

        name_destination(exc, self.dest, self.tmp)  # the bundle the user named, not the hidden work folder
        if self.tmp.exists():
            self.abort()  # commit() renamed it away on success; anything left is a failed build


def load_manifest(bundle: Path, verify: bool = True) -> Manifest:
    """Read and check a bundle's manifest; with ``verify``, check every file's SHA-256.

    Always: every file the manifest names lies inside the bundle and has a recorded SHA-256, and no ONNX
    file reads external data. Whether a failed build-time parity check lets it run is ``Engine.load``'s
    concern (``check_recorded_parity``): a failed bundle can still be read and diagnosed.

    Args:
        bundle: the bundle folder.
        verify: hash every file (SHA-256) and compare with the manifest.

    Returns:
        The checked ``Manifest``.

    Raises:
        UserError: the folder or its ``manifest.json`` is missing; the manifest is not valid JSON/UTF-8 or
            fails ``Manifest.from_dict``; a file lies outside the bundle or has no recorded hash; with
            ``verify``, a file is missing or its SHA-256 differs; an ONNX file reads external data.
    """
    bundle = Path(bundle)
    if not bundle.is_dir():
        raise UserError(f"bundle not found: {bundle} (make one with `attnx build`)")
    path = bundle / MANIFEST_NAME
    if not path.is_file():
        raise UserError(f"{bundle} is not an attnx bundle: it has no {MANIFEST_NAME}")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path} is corrupt ({type(exc).__name__}): rebuild the bundle with `attnx build`") from None
    manifest = Manifest.from_dict(data, where=str(path))
    check_members(bundle, manifest)  # inside the bundle, every file hashed
    if verify:
        for name, digest in manifest.sha256.items():
            f = member_path(bundle, name)
            if not f.is_file():
                raise UserError(f"bundle {bundle} is incomplete: {name} is missing; rebuild it with `attnx build`")
            if sha256_file(f) != digest:
                raise UserError(
                    f"bundle {bundle} is corrupt: {name} does not match its recorded SHA-256 (truncated or "
                    "modified); rebuild it with `attnx build`"
                )
    check_no_external_data(bundle, manifest)
    return manifest
