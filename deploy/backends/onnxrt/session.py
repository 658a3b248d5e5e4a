"""The one ONNX Runtime session factory: every ``InferenceSession`` attnx makes comes from :func:`make_session`.

It decides, in one place: execution providers (CPU unless told), intra-/inter-op threads, the graph
optimisation level, session config entries (a bundle's U8U8 INT8 kernel switch
``session.x64quantprecision``, see :mod:`attnx.core.cpu`), the memory-pattern option, saving the optimised
graph, quiet logging (a failure is raised as one line; ORT's own log would repeat it), and attnx custom ops
(registered through :mod:`attnx.plugins.ort`, which rewrites them as onnxruntime-extensions Python ops).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

from attnx.core.cpu import ORT_U8U8_CONFIG
from attnx.core.errors import UserError
from attnx.deploy.backends.onnx_graph import uses_custom_domain

if TYPE_CHECKING:
    import onnx

ModelSource = Union[str, Path, bytes, "onnx.ModelProto"]

OPTIMIZATION_LEVELS = ("disabled", "basic", "extended", "all")


def _level(ort: Any, optimize: bool | str) -> Any:
    levels = {
        "disabled": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }
    key = {True: "all", False: "disabled"}.get(optimize, optimize) if isinstance(optimize, bool) else optimize
    if key not in levels:
        raise UserError(f"unknown ORT optimisation level '{optimize}': choose basic, extended or all")
    return levels[key]


def make_session(
    model: ModelSource,
    *,
    providers: list[str] | None = None,
    threads: int | None = None,
    inter_threads: int | None = None,
    optimize: bool | str = True,
    session_config: dict[str, str] | None = None,
    custom_ops: bool | None = None,
    memory_pattern: bool | None = None,
    optimized_path: str | Path | None = None,
    error: str | None = None,
    fix: str = "",
) -> Any:
    """An ``onnxruntime.InferenceSession`` for ``model`` (an ONNX file path, serialised bytes or a ModelProto).

    ``providers``: execution providers in order (default CPU). ``threads`` / ``inter_threads``: intra- and
    inter-op thread counts (None: ORT's default). ``optimize``: True (ORT's default, every optimisation),
    False (none: the graph runs as written, or as already optimised offline) or a level name ``basic`` |
    ``extended`` | ``all``. ``session_config``: session config entries; with the U8U8 entry
    (``session.x64quantprecision=1``) optimisation stays on whatever ``optimize`` says, because ORT switches
    INT8 kernels to U8U8 while it optimises the graph (measured: skipped otherwise). ``custom_ops``: whether
    the model has attnx nodes (None: read the graph to find out). ``memory_pattern``: ORT's memory-pattern
    planning (None: ORT's default). ``optimized_path``: where ORT writes the graph it optimised.
    ``error``: the start of the message when loading fails (default ``cannot load <model>``); ``fix`` ends it.

    Raises :class:`~attnx.core.errors.UserError` (one line naming the cause) when ORT cannot load the model,
    and an unknown optimisation level; a custom node that breaks its spec raises the plugins' ``SpecError``.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 4  # a failure is raised and reported as one line; ORT's own log would repeat it
    ort.set_default_logger_severity(4)
    if threads:
        options.intra_op_num_threads = threads
    if inter_threads:
        options.inter_op_num_threads = inter_threads
    config = dict(session_config or {})
    if config.get(ORT_U8U8_CONFIG[0]) == ORT_U8U8_CONFIG[1] and optimize is False:
        optimize = True
    options.graph_optimization_level = _level(ort, optimize)
    if memory_pattern is not None:
        options.enable_mem_pattern = memory_pattern
    if optimized_path is not None:
        options.optimized_model_filepath = str(optimized_path)
    for key, value in config.items():
        options.add_session_config_entry(key, value)
    label = str(model) if isinstance(model, (str, Path)) else "the model"
    try:
        if uses_custom_domain(model) if custom_ops is None else custom_ops:
            from attnx.plugins.ort import session_form

            source: Any = session_form(model, options)  # registers the custom-op library in ``options``
        elif isinstance(model, (str, Path)):
            source = str(model)
        elif isinstance(model, bytes):
            source = model
        else:
            source = model.SerializeToString()
        return ort.InferenceSession(source, options, providers=list(providers or ["CPUExecutionProvider"]))
    except UserError:
        raise
    except Exception as exc:  # ORT raises its own Fail/InvalidGraph types; name the file and the cause
        from attnx.core.library_errors import ort_message

        raise UserError(f"{error or f'cannot load {label}'}: {ort_message(exc, fix=fix.lstrip(':;, '))}") from None
