# Minimal TensorRT stubs for mypy (mypy_path = "plugins/typings"): only what attnx uses.
# PyPI's tensorrt-stubs (10.13.0.35.1) cannot serve: its tensorrt/ stubs lack a py.typed marker,
# tensorrt_bindings/tensorrt.pyi does not parse (parameters named `in`), and it has no
# tensorrt.plugin. Names and members here follow TensorRT 11.4's bindings.
from enum import Enum

from . import plugin as plugin

class DataType(Enum):
    FLOAT = 0
    HALF = 1
    INT8 = 2
    INT32 = 3
    BOOL = 4
    UINT8 = 5
    FP8 = 6
    BF16 = 7
    INT64 = 8
    INT4 = 9

class TensorFormat(Enum):
    LINEAR = 0

class IDimensionExpr:
    def is_constant(self) -> bool: ...
    def get_constant_value(self) -> int: ...
