"""What accelerator is here. ONNX Runtime's provider list is no evidence (onnxruntime-gpu lists CUDA and
TensorRT on machines without a GPU), so ask the CUDA runtime and check that TensorRT imports."""

from __future__ import annotations


def gpu_status() -> tuple[bool, str]:
    """(True, description) when a CUDA GPU and TensorRT are usable; else (False, why not).

    The description names GPU 0, its compute capability and the TensorRT version, e.g.
    "NVIDIA H200 (sm_90), TensorRT 10.x". Never raises for a missing cuda-python, driver or TensorRT: those
    are the "why not" (``cudaGetDeviceCount`` errors included).
    """
    try:
        from cuda.bindings import runtime as cudart  # cuda-python ≥ 12.6
    except ImportError:
        try:
            from cuda import cudart  # type: ignore[no-redef]  # older cuda-python
        except ImportError:
            return False, "cuda-python is not installed"
    err, count = cudart.cudaGetDeviceCount()
    if int(err) != 0 or count < 1:
        return False, f"no CUDA GPU ({getattr(err, 'name', err)})"
    try:
        import tensorrt
    except ImportError as exc:
        return False, f"{count} CUDA GPU(s) but TensorRT does not import ({exc})"
    err, props = cudart.cudaGetDeviceProperties(0)
    name = props.name.decode() if isinstance(props.name, bytes) else str(props.name)
    return True, f"{name} (sm_{props.major}{props.minor}), TensorRT {tensorrt.__version__}"
