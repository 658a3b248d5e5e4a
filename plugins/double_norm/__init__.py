"""attnx::DoubleNorm: spec, NumPy reference, Triton kernel, TensorRT plugin (see README.md)."""
