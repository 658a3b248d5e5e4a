"""One line for a failure of ONNX Runtime, OpenVINO, onnx or onnxconverter-common: the node, its op, the
shapes or types involved, and a fix. (attnx.core.errors.library_error_message calls :func:`describe`.)

The libraries' own texts carry C++ source locations and function signatures; those are dropped, and the
rest is kept whole (never cut mid-word).
"""

from __future__ import annotations

import re

# "/onnxruntime_src/.../reshape_helper.h:84 onnxruntime::ReshapeHelper::ReshapeHelper(...) cond was false."
_SOURCE = re.compile(r"\S+\.(?:h|hpp|cc|cpp|c):\d+\s+(?:[\w:~<>,\s*&]+\([^()]*(?:\([^()]*\)[^()]*)*\)\s*(?:const)?)?")
_WAS_FALSE = re.compile(r"\s*[^.;]*? was false\.")
_ORT_PREFIX = re.compile(r"\[ONNXRuntimeError\]\s*:\s*\d+\s*:\s*(\w+)\s*:\s*")
_RUN_NODE = re.compile(r"Non-zero status code returned while running (\w+) node\. Name:'([^']*)' Status Message:\s*")
_IN_NODE = re.compile(r"in node \(([^)]*)\)")
_TYPE_BOUND = re.compile(r"Type parameter \((\w+)\) of Optype \((\w+)\) bound to different types")


def _clean(text: str) -> str:
    text = " ".join(str(text).split())
    text = _SOURCE.sub("", text)
    text = _WAS_FALSE.sub("", text)
    return " ".join(text.split()).strip(" :")


def shorten(text: str, limit: int = 400) -> str:
    """``text`` whole if short; else cut at the last sentence or word end before ``limit`` (never mid-word)."""
    text = " ".join(str(text).split())
    if len(text) <= limit:
        return text
    cut = text[:limit]
    end = max(cut.rfind(". "), cut.rfind("; "))
    if end > limit // 2:
        return cut[: end + 1] + " …"
    return cut[: cut.rfind(" ")].rstrip(",;:") + " …"


def ort_message(exc: BaseException, fix: str = "") -> str:
    """ONNX Runtime's error as one line naming the node, its op, the shapes or types, and a fix."""
    raw = " ".join(str(exc).split())
    text = _ORT_PREFIX.sub("", raw)
    run = _RUN_NODE.search(text)
    if run:
        op, node = run.group(1), run.group(2)
        detail = _clean(text[run.end():])
        fix = fix or ("the graph keeps a size fixed at its export shape: re-export with `attnx export --exporter "
                      "auto` (it checks every dynamic axis), or feed the shape it was exported at")  # fmt: skip
        return f"ONNX Runtime failed running node '{node}' ({op}): {shorten(detail)}; {fix}"
    bound = _TYPE_BOUND.search(text)
    if bound:
        where = _IN_NODE.search(text)
        node = f" '{where.group(1)}'" if where else ""
        types = re.findall(r"tensor\(\w+\)", text[bound.end():])
        fix = fix or ("a precision pass left mixed types: rebuild it from the fp32 ONNX with this attnx "
                      "(`attnx build --precision fp16`), or build fp32")  # fmt: skip
        return (f"ONNX Runtime cannot load the graph: node{node} ({bound.group(2)}) has inputs of different types "
                f"({' and '.join(dict.fromkeys(types)) or 'mixed'}) for its type parameter {bound.group(1)}; {fix}")
    detail = _clean(text)
    where = _IN_NODE.search(text)
    node = f" at node '{where.group(1)}'" if where and where.group(1) not in detail else ""
    fix = fix or "check the inputs' shapes and types against the model's (`attnx parity` names them), or re-export"
    return f"ONNX Runtime refused the model or its inputs ({type(exc).__name__}){node}: {shorten(detail)}; {fix}"


def describe(exc: BaseException) -> str | None:
    """One line for an exception raised by ONNX Runtime, OpenVINO, onnx or onnxconverter-common; else None."""
    module = type(exc).__module__ or ""
    if module.startswith("onnxruntime") or "[ONNXRuntimeError]" in str(exc):
        return ort_message(exc)
    if module.startswith("openvino") or "openvino" in str(exc)[:200].lower() and "Exception from src" in str(exc):
        detail = _clean(re.sub(r"Exception from src[^\n:]*:\d+:?", "", str(exc)))
        return (f"OpenVINO refused the model or its inputs ({type(exc).__name__}): {shorten(detail)}; "
                "try --backend ort, or re-export the model (`attnx export --exporter auto`)")
    if module.startswith("onnxconverter_common"):
        detail = shorten(_clean(str(exc)))
        return (f"onnxconverter-common failed converting the graph ({type(exc).__name__}): {detail}; "
                "build fp32 or int8, or keep the named node FP32 with --calib exclude=NODE")
    if module.startswith("onnx.") or module == "onnx" or module.startswith("onnx_ir"):
        return (f"onnx rejected the graph ({type(exc).__name__}): {shorten(_clean(str(exc)))}; "
                "re-export it (`attnx export --exporter auto`)")
    return None
