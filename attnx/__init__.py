"""attnx: attention-augmented PyTorch vision models to ONNX, ONNX Runtime, OpenVINO and TensorRT, with parity.

One installed namespace. The project's top-level folders install as its subpackages:

    attnx.core         errors, atomic files, work folders, CPU/GPU detection, ONNX files as data (bottom layer)
    attnx.plugins      custom ops: spec, NumPy reference, Triton kernel, ORT and TensorRT registration
    attnx.deploy       backends, bundles, parity, bench, serving, the pipeline and the CLI
    attnx.exporters    the model zoo and torch -> ONNX export
    attnx.calibration  precision plans, calibration, FP16 / INT8 graphs

The layers and what may import what: ARCHITECTURE.md (enforced by ``make lint``).
"""

__version__ = "0.1.0"
