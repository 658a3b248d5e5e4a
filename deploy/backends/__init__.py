"""Backends as small runner classes with one interface (in the manner of Polygraphy's runners).

A runner is a context manager; inside it, ``infer(feed)`` maps input names to NumPy arrays and returns
the outputs by name; what a backend can do beyond that is declared in ``runner.capabilities``. One folder per
backend (``onnxrt/`` with the one ONNX Runtime session factory, ``openvino/``, ``tensorrt/``, ``torch/``).
Heavy libraries are imported when a runner is activated, not when this package is.
"""

from attnx.deploy.backends.base import Capabilities, CapabilityError, Runner, RunnerPool, TensorSpec

__all__ = ["Capabilities", "CapabilityError", "Runner", "RunnerPool", "TensorSpec"]
