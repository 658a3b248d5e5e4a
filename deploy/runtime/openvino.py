"""OpenVINO (CPU) behind the Engine: the bundle's precision-baked ONNX compiled by the OpenVINO runtime.

For ``openvino`` bundles the engine file is the baked ONNX itself (``engine.onnx``); OpenVINO reads it
directly, fp32 or Q/DQ int8 alike. bf16 is not a graph change but a compile option: the manifest's
``build["inference_precision"] == "bf16"`` compiles with ``INFERENCE_PRECISION_HINT=bf16`` (inputs and
outputs stay float32). A compiled model hands out infer requests; a pool of them serves concurrent callers.
"""

from __future__ import annotations

import queue
from pathlib import Path
from typing import Any

import numpy as np

from deploy.bundle import Manifest
from deploy.errors import UserError

INFERENCE_PRECISIONS = {"fp32": "f32", "f32": "f32", "bf16": "bf16"}


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
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return False, f"OpenVINO cannot query the CPU: {first[:200]}"
    if "BF16" in caps:
        return True, "the CPU supports bf16 (OpenVINO OPTIMIZATION_CAPABILITIES lists BF16)"
    listed = ", ".join(caps) or "none"
    return False, f"this CPU has no bf16 support in OpenVINO (capabilities: {listed}): no bf16 candidate"


def _custom_domains(path: Path) -> list[str]:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    nodes = list(model.graph.node) + [n for f in model.functions for n in f.node]
    return sorted({n.op_type for n in nodes if n.domain == "attnx"})


class OpenVinoRuntime:
    def __init__(self, bundle: Path, manifest: Manifest, pool_size: int = 1, threads: int | None = None):
        self.path = manifest.path_of(bundle, "engine")
        if self.path.suffix != ".onnx":
            raise UserError(f"OpenVINO bundle {bundle} has engine file {self.path.name}, not an .onnx: rebuild it")
        custom = _custom_domains(self.path)
        if custom:
            raise UserError(
                f"{self.path} uses attnx custom ops ({', '.join(custom)}), which OpenVINO cannot run: "
                "export with `--plugins none` for --backend openvino"
            )
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
        try:
            self._compiled = core.compile_model(str(self.path), "CPU", config)
        except Exception as exc:  # OpenVINO's own error types; name the bundle file
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise UserError(f"OpenVINO cannot compile {self.path}: {first[:200]}; rebuild the bundle") from None
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
