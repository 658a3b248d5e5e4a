"""attnx exporters: the attention model zoo and torch → ONNX export."""
