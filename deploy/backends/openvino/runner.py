"""OpenVINO (CPU): an ONNX model (or NNCF's OpenVINO IR) compiled by the OpenVINO runtime, behind the runner interface.

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

:class:`OpenVinoRunner` takes files and options, never a manifest: ``attnx.deploy.bundle.runtime`` reads the
manifest and passes the engine file, the inference precision and the saved blob with its recorded key.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from attnx.core.errors import UserError
from attnx.deploy.backends.base import Capabilities, Runner, RunnerPool, TensorSpec
from attnx.deploy.backends.onnx_graph import custom_op_types, expose_intermediates

if TYPE_CHECKING:
    import onnx

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


class OpenVinoRunner(Runner):
    """A model compiled by OpenVINO's CPU plugin, thread-safe: concurrent ``infer`` calls each take a pooled
    infer request (one stream per request, so they run in parallel).

    ``model``: an ONNX file, an OpenVINO IR ``.xml`` (its weights in the ``.bin`` beside) or an ONNX ModelProto.
    ``inference_precision``: ``fp32``/``f32`` or ``bf16`` (a compile option: inputs and outputs stay float32).
    ``threads``: CPU threads per request (the compiled model gets ``threads × pool_size``, as ONNX Runtime's
    per-session intra-op threads); None: OpenVINO's default. ``pool_size``: infer requests (and streams).
    ``compiled_blob`` with ``blob_key`` (the :func:`compiled_key` recorded when it was saved): a compiled model
    imported instead of compiling ``model`` when the key matches this machine; otherwise, or when it does not
    import, ``model`` is compiled with one notice naming ``label`` (default: the file) and what differs.
    ``output_names``: the outputs to return, in order (default: the model's). ``performance_hint``: OpenVINO's
    PERFORMANCE_HINT (e.g. ``LATENCY``; None: not set). ``kernels``: the kernels it runs on, in words (``Engine.info``).

    After ``activate``: ``compiled`` (the OpenVINO CompiledModel) and ``compiled_from`` (``onnx`` or ``blob``).
    Declares ``mark_outputs`` for ONNX models. Raises :class:`~attnx.core.errors.UserError` when OpenVINO is
    missing, cannot compile the model, the model has attnx custom ops, or an output is missing.
    """

    name = "openvino"
    capabilities = Capabilities(mark_outputs=True)

    def __init__(self, model: str | Path | onnx.ModelProto, inference_precision: str = "fp32",
                 threads: int | None = None, pool_size: int = 1, compiled_blob: str | Path | None = None,
                 blob_key: dict[str, Any] | None = None, output_names: Sequence[str] | None = None,
                 performance_hint: str | None = None, kernels: str = "OpenVINO CPU", label: str = ""):  # fmt: skip
        self.model = Path(model) if isinstance(model, str) else model
        if inference_precision not in INFERENCE_PRECISIONS:
            raise UserError(f"unknown OpenVINO inference precision '{inference_precision}': choose fp32 or bf16")
        self.inference_precision = INFERENCE_PRECISIONS[inference_precision]
        self.threads, self.pool_size, self.performance_hint = threads, max(1, pool_size), performance_hint
        self.compiled_blob = Path(compiled_blob) if compiled_blob else None
        self.blob_key = blob_key or {}
        self._wanted = list(output_names) if output_names else None
        self.kernels = kernels
        self.where = str(self.model) if isinstance(self.model, Path) else "the model"  # for error messages
        self.label = label or self.where  # who the saved-blob notice is about (a bundle names itself)
        self.compiled: Any = None
        self.compiled_from = "onnx"  # or "blob": where the compiled model came from (bench, tests)
        self._keep: Any = None  # the mapped blob an imported model may point into
        self._names: list[str] = []
        self._ports: list[Any] = []
        self._pool: RunnerPool[Any] | None = None

    def _config(self, streams: int) -> dict[str, str]:
        config = {"INFERENCE_PRECISION_HINT": self.inference_precision, "NUM_STREAMS": str(streams)}
        if self.threads:
            config["INFERENCE_NUM_THREADS"] = str(self.threads * streams)
        if self.performance_hint:
            config["PERFORMANCE_HINT"] = self.performance_hint
        return config

    def activate(self) -> None:
        core = _core()
        config = self._config(self.pool_size)
        self.compiled = self._import_compiled(core, config)
        if self.compiled is None:
            self.compiled = self._compile(core, config)
        ports: dict[str, Any] = {}
        for port in self.compiled.outputs:
            for name in port.get_names():
                ports[name] = port
        wanted = self._wanted or [p.get_any_name() for p in self.compiled.outputs]
        missing = [n for n in wanted if n not in ports]
        if missing:
            raise UserError(f"OpenVINO model {self.where} has no output(s) {missing}: rebuild the bundle")
        self._names, self._ports = wanted, [ports[n] for n in wanted]
        self._pool = RunnerPool(self.compiled.create_infer_request, size=self.pool_size)

    def _import_compiled(self, core: Any, config: dict[str, str]) -> Any:
        """The saved compiled model when it was made for this machine; else None, with a notice."""
        if self.compiled_blob is None:
            return None
        why = _mismatch(self.blob_key, compiled_key(self.inference_precision, core))
        if why is None:
            try:
                compiled, self._keep = _import_blob(core, self.compiled_blob, config)
            except Exception as exc:  # OpenVINO's own error types, or an unmappable (empty) file
                why = f"does not import ({_message(exc, 120)})"
            else:
                self.compiled_from = "blob"
                return compiled
        source = self.model.name if isinstance(self.model, Path) else "the ONNX"
        log.warning(
            "%s: its saved compiled model %s: compiling %s instead (slower load; rebuild the bundle on "
            "this machine to save one for it)", self.label, why, source,
        )  # fmt: skip
        return None

    def _compile(self, core: Any, config: dict[str, str]) -> Any:
        model = self.model
        is_xml = isinstance(model, Path) and model.suffix == ".xml"
        custom = [] if is_xml else custom_op_types(model)  # an OpenVINO .xml has no ONNX domains
        if custom:
            raise UserError(
                f"{self.where} uses attnx custom ops ({', '.join(custom)}), which OpenVINO cannot run: "
                "export with `--plugins none` for --backend openvino"
            )
        try:
            if isinstance(model, Path):
                return core.compile_model(str(model), "CPU", config)
            # OpenVINO's ONNX reader takes the serialised model as it is (untyped outputs included).
            return core.compile_model(core.read_model(model.SerializeToString()), "CPU", config)
        except Exception as exc:  # OpenVINO's own error types; name the file
            raise UserError(f"OpenVINO cannot compile {self.where}: {_message(exc)}; rebuild the bundle") from None

    def deactivate(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()
        self.compiled = None
        # self._keep (the mapped blob) goes with this object, not here: an output port or a request still
        # held by a caller may keep the compiled model, which can point into the mapping, alive.

    def input_specs(self) -> list[TensorSpec]:
        if self.compiled is None:
            raise RuntimeError("OpenVinoRunner used outside its `with` block")
        specs = []
        for port in self.compiled.inputs:
            shape = tuple(d.get_length() if d.is_static else None for d in port.get_partial_shape())
            specs.append(TensorSpec(port.get_any_name(), np.dtype(port.get_element_type().to_dtype()), shape))
        return specs

    def output_names(self) -> list[str]:
        return list(self._names)

    def infer(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self._pool is None:
            raise RuntimeError("OpenVinoRunner used outside its `with` block")
        with self._pool.acquire() as request:
            # share_outputs=False (the default) copies results out of the request before it is reused.
            result = request.infer(dict(feed), share_inputs=False, share_outputs=False)
            return {name: np.asarray(result[port]) for name, port in zip(self._names, self._ports)}

    def infer_with_outputs(self, feed: Mapping[str, np.ndarray], names: Sequence[str]) -> dict[str, np.ndarray]:
        """Every output of the ONNX graph with ``names`` added as outputs, by tensor name, compiled apart (one
        stream, this runner's precision and threads) as the layer-wise search needs. Raises UserError for an
        OpenVINO IR model (no ONNX tensor names), a graph OpenVINO cannot compile, or inputs it rejects."""
        import onnx

        model = self.model
        if isinstance(model, Path):
            if model.suffix == ".xml":
                raise UserError(f"{self.where} is OpenVINO IR: it has no ONNX tensors to expose")
            model = onnx.load(str(model))
        core = _core()
        config = {k: v for k, v in self._config(1).items() if k != "PERFORMANCE_HINT"}
        try:
            # OpenVINO's ONNX reader takes the serialised model as it is (untyped added outputs included).
            compiled = core.compile_model(core.read_model(expose_intermediates(model, names).SerializeToString()),
                                          "CPU", config)  # fmt: skip
        except Exception as exc:  # OpenVINO's own error types
            raise UserError(
                f"OpenVINO cannot compile the graph with its intermediates exposed: {_message(exc)}"
            ) from None
        try:
            result = compiled.create_infer_request().infer(dict(feed), share_outputs=False)
        except Exception as exc:  # shape or type errors in the feed
            raise UserError(f"OpenVINO rejects the inputs: {_message(exc)}") from None
        # A port carries every name of the tensor (OpenVINO merges the names of tensors an Identity joined).
        return {name: np.asarray(value) for port, value in result.items() for name in port.get_names()}
