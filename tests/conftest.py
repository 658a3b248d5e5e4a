"""Suite-wide setup.

Triton picks interpreter or compiler once per process, when kernels are decorated; torch may import
triton while other test modules load, so TRITON_INTERPRET=1 is set here, before any of them, so the
plugin kernels run on CPU tensors. AOT compilation runs in subprocesses without it.
"""

import os
import sys

if "triton" not in sys.modules:
    os.environ.setdefault("TRITON_INTERPRET", "1")
