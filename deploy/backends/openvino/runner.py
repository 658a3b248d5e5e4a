"""OpenVINO (CPU) behind the Engine: the bundle's precision-baked ONNX compiled by the OpenVINO runtime.

For ``openvino`` bundles the engine file is the baked ONNX itself (``model.onnx``); OpenVINO reads it
directly, fp32 or Q/DQ int8 alike. bf16 is not a graph change but a compile option: the manifest's
``build["inference_precision"] == "bf16"`` compiles with ``INFERENCE_PRECISION_HINT=bf16`` (inputs and
outputs stay float32). A compiled model hands out infer requests; a pool of them serves concurrent callers.

Load time: converting and compiling the ONNX is most of an OpenVINO bundle's load time (SE-ResNet-50: 0.42 s of
the 0.70 s from ``load_manifest`` to the first result; importing the compiled model takes 0.07 s, 0.45 s in all;
``bench/openvino_load.py``). So ``attnx build`` also saves the compiled model (``compiled.blob``, OpenVINO's
``export_model``; about the size of the ONNX) with the OpenVINO build, inference precision and CPU it was made
for (``manifest.build["compiled"]``). The runtime imports it when all of them match this machine, and otherwise
compiles the ONNX as before, with a one-line notice saying what differs: the ONNX stays the source of
truth and the blob is only a shortcut to the same compiled model (streams and threads are applied at import).
"""

from __future__ import annotations

import logging
import queue
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from attnx.core.errors import UserError
from attnx.deploy.bundle.manifest import Manifest

if TYPE_CHECKING:
    from attnx.core.cpu import Int8Path

log = logging.getLogger("attnx.openvino")

INFERENCE_PRECISIONS = {"fp32": "f32", "f32": "f32", "bf16": "bf16"}
COMPILED_FILE = "compiled.blob"  # manifest role "compiled"
# CPU extensions the CPU plugin chooses kernels and graph transformations by (x86 and Arm /proc/cpuinfo names).
_ISA_PREFIXES = ("sse", "ssse", "avx", "amx", "fma", "f16c", "asimd", "sve", "fphp", "bf16", "i8mm")


def _message(exc: BaseException, limit: int = 200) -> str:
    """The line of an OpenVINO exception that says what went wrong: its text starts with lines naming the
    C++ source files it passed through ("Exception from src/...", "Check '...' failed at ...")."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    said = [ln for ln in lines if not ln.startswith(("Exception from ", "Check '"))]
    return (said or lines or [type(exc).__name__])[0][:limit]


def _core() -> Any:
    try:
        import openvino
    except ImportError:
        raise UserError("OpenVINO is not installed: `pip install openvino` to use --backend openvino") from None
    return openvino.Core()


def openvino_available() -> tuple[bool, str]:
    """Whether the OpenVINO runtime can be imported, and a one-line reason when it cannot."""
    try:
        import openvino
    except ImportError:
        return False, "OpenVINO is not installed (`pip install openvino`): no openvino candidates"
    return True, f"OpenVINO {openvino.__version__.split('-')[0]}"


def bf16_supported() -> tuple[bool, str]:
    """Whether OpenVINO's CPU plugin can run bf16 here (its OPTIMIZATION_CAPABILITIES list BF16), and why."""
    ok, why = openvino_available()
    if not ok:
        return False, why
    try:
        caps = [str(c).upper() for c in _core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")]
    except Exception as exc:  # OpenVINO raises RuntimeError subclasses for a missing CPU plugin
        return False, f"OpenVINO cannot query the CPU: {_message(exc)}"
    if "BF16" in caps:
        return True, "the CPU supports bf16 (OpenVINO OPTIMIZATION_CAPABILITIES lists BF16)"
    listed = ", ".join(caps) or "none"
    return False, f"this CPU has no bf16 support in OpenVINO (capabilities: {listed}): no bf16 candidate"


def _isa_flags() -> list[str]:
    """This CPU's SIMD extensions as the OS reports them (attnx.core.cpu reads them; empty where it cannot: then
    the CPU name alone keys). All of them, not only the INT8 ones: the CPU plugin's choices depend on more."""
    from attnx.core.cpu import raw_flags

    return sorted(f for f in raw_flags() if f.startswith(_ISA_PREFIXES))


def compiled_key(inference_precision: str, core: Any = None) -> dict[str, Any]:
    """What a compiled model depends on: the exact OpenVINO build, the inference precision and the CPU.

    OpenVINO itself only refuses a blob of another OpenVINO version; the CPU is keyed too because the CPU
    plugin picks its graph transformations (bf16, int8 paths) by the CPU's extensions when it compiles.
    """
    import openvino

    core = core or _core()
    return {
        "openvino": openvino.get_version(),
        "inference_precision": inference_precision,
        "cpu": str(core.get_property("CPU", "FULL_DEVICE_NAME")),
        "isa": _isa_flags(),
    }


def write_compiled(onnx_path: Path, dest: Path, inference_precision: str) -> dict[str, Any]:
    """Compile ``onnx_path`` for this CPU, save the compiled model at ``dest``, and return its key.

    Streams and threads are not part of it: OpenVINO applies those when the blob is imported.
    """
    core = _core()
    try:
        compiled = core.compile_model(str(onnx_path), "CPU", {"INFERENCE_PRECISION_HINT": inference_precision})
    except Exception as exc:  # OpenVINO's own error types; name the file
        raise UserError(
            f"OpenVINO cannot compile {onnx_path}: {_message(exc)}; build for ONNX Runtime instead (--backend ort)"
        ) from None
    with open(dest, "wb") as f:
        f.write(compiled.export_model().getbuffer())
    return compiled_key(inference_precision, core)


def _mismatch(recorded: dict[str, Any], here: dict[str, Any]) -> str | None:
    """How the key a blob was made for differs from this machine's, in words; None when it does not."""
    if recorded.get("openvino") != here["openvino"]:
        return f"is for OpenVINO {recorded.get('openvino')} (here {here['openvino']})"
    if recorded.get("inference_precision") != here["inference_precision"]:
        return f"is for inference precision {recorded.get('inference_precision')} (here {here['inference_precision']})"
    if recorded.get("cpu") != here["cpu"]:
        return f"is for the CPU '{recorded.get('cpu')}' (here '{here['cpu']}')"
    if recorded.get("isa") != here["isa"]:
        theirs, ours = set(recorded.get("isa") or []), set(here["isa"])
        changes = [f"+{f}" for f in sorted(ours - theirs)] + [f"-{f}" for f in sorted(theirs - ours)]
        return f"is for a CPU with other extensions (here {' '.join(changes[:6])}{' ...' if len(changes) > 6 else ''})"
    return None


def _import_blob(core: Any, path: Path, config: dict[str, str]) -> tuple[Any, Any]:
    """The compiled model in ``path``, and what must stay alive while it is used."""
    import mmap

    import openvino

    with open(path, "rb") as f:
        # A private copy-on-write mapping: OpenVINO imports from the page cache without a copy into Python
        # (about half the import time for 100 MB), and may keep pointing into it, so it lives with the model.
        mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
    array = np.frombuffer(mapped, dtype=np.uint8)
    try:
        blob = openvino.Tensor(array, shared_memory=True)
        return core.import_model(blob, "CPU", config), (mapped, array, blob)
    except TypeError:  # an OpenVINO whose import_model takes bytes only
        return core.import_model(path.read_bytes(), "CPU", config), None


def run_with_outputs(model: Any, feed: dict[str, np.ndarray], names: list[str], inference_precision: str = "f32",
                     threads: int | None = None) -> dict[str, np.ndarray]:  # fmt: skip
    """Run the ONNX ``model`` (a ModelProto) in OpenVINO's CPU plugin with ``names`` added as graph outputs,
    compiled with ``inference_precision`` as a bundle is; every output by tensor name (the layer-wise search's
    candidate runner for OpenVINO bundles)."""
    from attnx.deploy.parity.layerwise import expose_intermediates

    core = _core()
    config = {"INFERENCE_PRECISION_HINT": INFERENCE_PRECISIONS.get(inference_precision, inference_precision),
              "NUM_STREAMS": "1", **({"INFERENCE_NUM_THREADS": str(threads)} if threads else {})}  # fmt: skip
    try:
        # OpenVINO's ONNX reader takes the serialised model as it is (untyped added outputs included).
        compiled = core.compile_model(core.read_model(expose_intermediates(model, names).SerializeToString()),
                                      "CPU", config)  # fmt: skip
    except Exception as exc:  # OpenVINO's own error types
        raise UserError(f"OpenVINO cannot compile the graph with its intermediates exposed: {_message(exc)}") from None
    try:
        result = compiled.create_infer_request().infer(feed, share_outputs=False)
    except Exception as exc:  # shape or type errors in the feed
        raise UserError(f"OpenVINO rejects the inputs: {_message(exc)}") from None
    # A port carries every name of the tensor (OpenVINO merges the names of tensors an Identity joined).
    return {name: np.asarray(value) for port, value in result.items() for name in port.get_names()}


def _custom_domains(path: Path) -> list[str]:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    nodes = list(model.graph.node) + [n for f in model.functions for n in f.node]
    return sorted({n.op_type for n in nodes if n.domain == "attnx"})


class OpenVinoRuntime:
    def __init__(self, bundle: Path, manifest: Manifest, pool_size: int = 1, threads: int | None = None,
                 int8_path: Int8Path | None = None):  # fmt: skip
        self.path = manifest.path_of(bundle, "engine")
        # OpenVINO has no U8U8 switch: an unsafe INT8 bundle on a non-VNNI CPU is only warned about (open_runtime)
        self.kernels = f"OpenVINO CPU, {int8_path.description}" if int8_path else "OpenVINO CPU"
        if self.path.suffix not in (".onnx", ".xml"):  # .xml: NNCF's INT8 model (its weights in the .bin beside)
            raise UserError(f"OpenVINO bundle {bundle} has engine file {self.path.name}, not an .onnx or .xml: "
                            "rebuild it")  # fmt: skip
        requested = str(manifest.build.get("inference_precision", "fp32"))
        if requested not in INFERENCE_PRECISIONS:
            raise UserError(f"bundle {bundle} asks for inference precision '{requested}': choose fp32 or bf16")
        self.inference_precision = INFERENCE_PRECISIONS[requested]
        if self.inference_precision == "bf16":
            ok, why = bf16_supported()
            if not ok:
                raise UserError(f"bundle {bundle} is a bf16 OpenVINO bundle but {why}")
        pool = max(1, pool_size)
        # One stream per pooled request so concurrent callers run in parallel; ``threads`` is per request,
        # as for ONNX Runtime's per-session intra-op threads, so the compiled model gets threads × pool.
        config: dict[str, str] = {
            "INFERENCE_PRECISION_HINT": self.inference_precision,
            "NUM_STREAMS": str(pool),
        }
        if threads:
            config["INFERENCE_NUM_THREADS"] = str(threads * pool)
        core = _core()
        self._keep: Any = None  # the mapped blob an imported model may point into
        self.compiled_from = "onnx"  # or "blob": where the compiled model came from (bench, tests)
        self._compiled = self._import_compiled(bundle, manifest, core, config)
        if self._compiled is None:
            self._compiled = self._compile_onnx(core, config)
        ports: dict[str, Any] = {}
        for port in self._compiled.outputs:
            for name in port.get_names():
                ports[name] = port
        wanted = [o.name for o in manifest.outputs] or [p.get_any_name() for p in self._compiled.outputs]
        missing = [n for n in wanted if n not in ports]
        if missing:
            raise UserError(f"OpenVINO model {self.path} has no output(s) {missing}: rebuild the bundle")
        self.output_names = wanted
        self._ports = [ports[n] for n in wanted]
        self._pool: queue.Queue[Any] = queue.Queue()
        self._requests = [self._compiled.create_infer_request() for _ in range(pool)]
        for r in self._requests:
            self._pool.put(r)

    def _import_compiled(self, bundle: Path, manifest: Manifest, core: Any, config: dict[str, str]) -> Any:
        """The bundle's saved compiled model when it was made for this machine; else None, with a notice."""
        if "compiled" not in manifest.files:
            return None  # built before compiled models were saved
        why = _mismatch(manifest.build.get("compiled") or {}, compiled_key(self.inference_precision, core))
        if why is None:
            path = manifest.path_of(bundle, "compiled")
            try:
                compiled, self._keep = _import_blob(core, path, config)
            except Exception as exc:  # OpenVINO's own error types, or an unmappable (empty) file
                why = f"does not import ({_message(exc, 120)})"
            else:
                self.compiled_from = "blob"
                return compiled
        log.warning(
            "bundle %s: its saved compiled model %s: compiling %s instead (slower load; rebuild the bundle on "
            "this machine to save one for it)", bundle, why, self.path.name,
        )  # fmt: skip
        return None

    def _compile_onnx(self, core: Any, config: dict[str, str]) -> Any:
        # a saved compiled model was compiled from this ONNX: none there; an OpenVINO .xml has no ONNX domains
        custom = _custom_domains(self.path) if self.path.suffix == ".onnx" else []
        if custom:
            raise UserError(
                f"{self.path} uses attnx custom ops ({', '.join(custom)}), which OpenVINO cannot run: "
                "export with `--plugins none` for --backend openvino"
            )
        try:
            return core.compile_model(str(self.path), "CPU", config)
        except Exception as exc:  # OpenVINO's own error types; name the bundle file
            raise UserError(f"OpenVINO cannot compile {self.path}: {_message(exc)}; rebuild the bundle") from None

    def run(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        request = self._pool.get()
        try:
            # share_outputs=False (the default) copies results out of the request before it is reused.
            result = request.infer(feed, share_inputs=False, share_outputs=False)
            outs = {name: np.asarray(result[port]) for name, port in zip(self.output_names, self._ports)}
        finally:
            self._pool.put(request)
        return outs

    def close(self) -> None:
        self._requests.clear()
        while not self._pool.empty():
            self._pool.get_nowait()
        self._compiled = None
        # self._keep (the mapped blob) goes with this object, not here: an output port or a request still
        # held by a caller may keep the compiled model, which can point into the mapping, alive.
