"""Fakes of libraries the test machines lack (TensorRT, cuda-python)."""
