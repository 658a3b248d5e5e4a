"""TensorRT side: registering every attnx plugin with ``tensorrt.plugin`` (needs tensorrt and triton).

The ops are those of :data:`attnx.plugins.registry.OPS`; each op folder's ``trt.py`` registers its plugin
when it is imported (the ``tensorrt.plugin`` decorators run then), using the shared helpers of
:mod:`attnx.plugins.trt_base`. Engines built this way embed the kernels and run without Python.
"""

from __future__ import annotations

import importlib

import tensorrt  # noqa: F401  (fails here, as one ImportError, when TensorRT is missing)

from attnx.plugins.registry import OPS

_PLUGIN_IDS: list[str] = []


def register_plugins() -> list[str]:
    """Register every attnx plugin with TensorRT's plugin registry (idempotent).

    Returns the plugin ids (``"attnx::GridSamplePlugin"``, ...) in :data:`~attnx.plugins.registry.OPS` order.
    Raises ImportError when tensorrt or triton is missing.
    """
    if not _PLUGIN_IDS:
        for spec in OPS.values():
            # By name from the one list: the op folders' trt modules import tensorrt.plugin and triton.
            importlib.import_module(f"attnx.plugins.{spec.folder}.trt")
            _PLUGIN_IDS.append(spec.trt_plugin_id)
    return list(_PLUGIN_IDS)
