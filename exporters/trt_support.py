"""Which ONNX operators each deployment target can run, and with what restrictions.

``op_support(op_type, domain, target, opset)`` answers for one node: ``ok``, ``restricted`` (the
target runs it within the limits named in the note), ``unsupported``, or ``plugin`` (a custom op:
the target needs a custom-op / plugin implementation registered).

Targets (the names the CLI accepts, :data:`TARGETS`):

* ``ort``     ONNX Runtime, CPU execution provider. Runs every standard ONNX op of its opsets, plus its
  own ``com.microsoft`` contrib ops; any other custom domain needs a registered custom op.
* ``trt8.6``  the ONNX parser of TensorRT 8.6.
* ``trt10``   the ONNX parser of the newest TensorRT 10.x whose table we read (10.15).
* ``trt11``   TensorRT 11.x. No 11.x operator table was available: it is the 10.15 table plus the
  parser changes that the 11.0 - 11.5 release notes list (see ``_TRT11`` below).

Sources (for a maintainer refreshing the tables)
------------------------------------------------
The operator tables are ``docs/operators.md`` of https://github.com/onnx/onnx-tensorrt (the open-source
parser that ships inside TensorRT; each release has a ``release/<X.Y>-GA`` branch). The data below is
re-typed from those tables, not copied: only op names, the Y/N verdict, the opset range of the header,
and short paraphrases of the restrictions of ops that vision attention models use.

* ``trt8.6``: no 8.6 table could be read. Built from the **TensorRT 8.5** table (onnx/onnx-tensorrt,
  ``docs/operators.md`` at commit ``6d0ab7be324d02c7feb3a306b6fdbeae84f71ddc``, header "TensorRT 8.5
  supports operators up to Opset 17") plus the "TensorRT 8.6 EA/GA Release" entries of
  ``docs/Changelog.md`` (8.6 EA added GroupNormalization, LayerNormalization and IsInf, dynamic-K TopK
  and dynamic-shape ReverseSequence; 8.6 GA added N-D Trilu). The 8.6 header, as quoted in an NVIDIA
  developer-forum answer, reads "TensorRT 8.6 supports operators up to Opset 17". Refresh from branch
  ``release/8.6-GA``.
* ``trt10``: the **TensorRT 10.15** table ("TensorRT 10.15 supports operators in the inclusive range
  of opset 9 to opset 24"), the version matching the "TensorRT 10.15 GA Release - 2026-2-2" entry of
  ``docs/Changelog.md``. The stored copy carried no commit id; refresh from branch ``release/10.15-GA``
  (or a newer 10.x: TensorRT 10.16 exists but its table was not available). The 9.2 table ("up to
  Opset 19") was read only to check which changes happened after 8.6.
* ``trt11``: the 10.15 table plus NVIDIA's TensorRT 11 release notes: GitHub releases v11.0 (Swish
  added), v11.2 (DFT and 5-D GridSample added; the 11.2.1 release notes describe 3-D GridSample:
  rank-5 input, linear/nearest/cubic, all padding modes), v11.5 (ONNX opset 25, ONNX 1.22), and the
  TensorRT docs page "ONNX Opset Guide" (TensorRT 11.x: opsets 9 to 25). Replace with the 11.x
  ``docs/operators.md`` once one is available.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

Status = Literal["ok", "restricted", "unsupported", "plugin"]

TARGETS: tuple[str, ...] = ("ort", "trt8.6", "trt10", "trt11")
"""Deployment targets accepted by the CLI."""

TRT_TARGETS: tuple[str, ...] = ("trt8.6", "trt10", "trt11")

ATTNX_DOMAIN = "attnx"
"""Domain of this project's custom ops (see the ``plugins`` package)."""

# Domains ONNX Runtime's CPU build implements itself. "" and "ai.onnx" both name the default domain.
_ORT_BUILTIN_DOMAINS = frozenset({"", "ai.onnx.ml", "com.microsoft", "com.microsoft.nchwc"})

# First TensorRT release whose ONNX parser imports the op natively (from the changelog and tables above).
FIRST_NATIVE_SUPPORT: Mapping[str, str] = MappingProxyType(
    {
        "Einsum": "8.2 (ellipsis, diagonal and input broadcasting only since 10.12)",
        "GridSample": "8.5 for 4-D input (N, C, H, W); 5-D input (3-D sampling) since 11.2",
        "NonZero": "8.5",
        "LayerNormalization": "8.6",
        "GroupNormalization": "8.6 (opset-21 GroupNormalization since 10.9)",
        "IsInf": "8.6",
        "Hardmax": "9.2",
        "DeformConv": "10.1",
        "Attention": "10.14 (ONNX opset 23 Attention)",
        "RMSNormalization": "10.15",
        "RotaryEmbedding": "10.15",
        "Swish": "11.0",
        "DFT": "11.2 (through the bundled cuFFT plugin)",
    }
)
GRIDSAMPLE_NATIVE_SINCE = "8.5"  # 4-D input only
GRIDSAMPLE_5D_SINCE = "11.2"
LAYERNORM_NATIVE_SINCE = "8.6"


def _ops(names: str) -> frozenset[str]:
    return frozenset(names.split())


@dataclass(frozen=True)
class TrtTable:
    """What one TensorRT ONNX parser imports, after its ``docs/operators.md`` table."""

    target: str
    table_version: str  # TensorRT version the target stands for
    label: str  # how notes name the table, including how it was derived
    min_opset: int
    max_opset: int
    supported: frozenset[str]  # op types the table marks "Y" (default domain)
    unsupported: frozenset[str]  # op types the table marks "N"
    restrictions: Mapping[str, str]  # op type -> short note, for ops vision attention models use
    source: str
    opset_note: str = ""


# --- TensorRT 8.5 table (base of trt8.6) --------------------------------------------------------

_TRT85_SUPPORTED = _ops(
    """
    Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh AveragePool BatchNormalization Cast Ceil Celu
    Clip Concat Constant ConstantOfShape Conv ConvTranspose Cos Cosh CumSum DepthToSpace DequantizeLinear Div
    Dropout Einsum Elu Equal Erf Exp Expand EyeLike Flatten Floor Gather GatherElements GatherND Gemm
    GlobalAveragePool GlobalLpPool GlobalMaxPool Greater GreaterOrEqual GridSample GRU HardSigmoid HardSwish
    Identity If ImageScaler InstanceNormalization IsNaN LeakyRelu Less LessOrEqual Log LogSoftmax Loop LRN LSTM
    LpNormalization LpPool MatMul Max MaxPool Mean MeanVarianceNormalization Min Mod Mul Neg NonMaxSuppression
    NonZero Not OneHot Or Pad ParametricSoftplus Pow PRelu QuantizeLinear RandomNormal RandomNormalLike
    RandomUniform RandomUniformLike Range Reciprocal ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp ReduceMax
    ReduceMean ReduceMin ReduceProd ReduceSum ReduceSumSquare Relu Reshape Resize ReverseSequence RNN RoiAlign
    Round ScaledTanh Scan Scatter ScatterElements ScatterND Selu Shape Shrink Sigmoid Sign Sin Sinh Size Slice
    Softmax Softplus Softsign SpaceToDepth Split Sqrt Squeeze Sub Sum Tan Tanh ThresholdedRelu Tile TopK
    Transpose Trilu Unsqueeze Upsample Where Xor
    """
)
_TRT85_UNSUPPORTED = _ops(
    """
    Bernoulli BitShift BlackmanWindow Compress ConcatFromSequence ConvInteger DFT Det DynamicQuantizeLinear
    HammingWindow HannWindow Hardmax IsInf LayerNormalization MatMulInteger MaxRoiPool MaxUnpool MelWeightMatrix
    Multinomial NegativeLogLikelihoodLoss Optional OptionalGetElement OptionalHasElement QLinearConv
    QLinearMatMul SequenceAt SequenceConstruct SequenceEmpty SequenceErase SequenceInsert SequenceLength
    SequenceMap SoftmaxCrossEntropyLoss SplitToSequence STFT StringNormalizer TfIdfVectorizer Unique
    """
)
_ADDED_IN_86 = _ops("GroupNormalization LayerNormalization IsInf")

_RESIZE_MODES = (
    "coordinate modes half_pixel, pytorch_half_pixel, tf_half_pixel_for_nn, asymmetric, align_corners; "
    "mode nearest or linear (no cubic); nearest modes floor, ceil, round_prefer_floor, round_prefer_ceil"
)

_TRT86 = TrtTable(
    target="trt8.6",
    table_version="8.6",
    label="TensorRT 8.6 operator table (rebuilt from the 8.5 table and the 8.6 changelog)",
    min_opset=7,  # the 8.x developer guide: "backward compatible to opset 7"
    max_opset=17,
    supported=_TRT85_SUPPORTED | _ADDED_IN_86,
    unsupported=_TRT85_UNSUPPORTED - _ADDED_IN_86,
    restrictions=MappingProxyType(
        {
            "GridSample": "4-D input (N, C, H, W) only; 5-D needs TensorRT >= 11.2",
            "LayerNormalization": "only the first output (Y) is imported (the 10.x table states it; 8.6 table unseen)",
            "InstanceNormalization": "scale and B must be initializers; input rank 3 to 5",
            "Einsum": "no ellipsis, no diagonal terms (repeated index in one input), no broadcasting between inputs",
            "Resize": _RESIZE_MODES,
            "AveragePool": "2-D or 3-D pooling only",
            "MaxPool": "2-D or 3-D pooling only; the Indices output is unsupported",
            "If": "the two branches' outputs must have broadcastable shapes and distinct names",
            "Slice": "axes must be an initializer",
            "Squeeze": "axes must be an initializer",
            "Unsqueeze": "axes must be a constant",
            "CumSum": "axis must be an initializer",
            "QuantizeLinear": "y_zero_point must be 0",
            "DequantizeLinear": "x_zero_point must be 0",
        }
    ),
    source=(
        "onnx/onnx-tensorrt docs/operators.md @ 6d0ab7be324d02c7feb3a306b6fdbeae84f71ddc (TensorRT 8.5) "
        "+ docs/Changelog.md entries for 8.6 EA/GA"
    ),
    opset_note="TensorRT 8.6 documents opsets up to 17",
)

# --- TensorRT 10.15 table (trt10, base of trt11) -------------------------------------------------

_TRT10_SUPPORTED = _ops(
    """
    Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh Attention AveragePool BatchNormalization
    BlackmanWindow Cast CastLike Ceil Celu Clip Concat Constant ConstantOfShape Conv ConvTranspose Cos Cosh
    CumSum DeformConv DepthToSpace DequantizeLinear Div Dropout Einsum Elu Equal Erf Exp Expand EyeLike Flatten
    Floor Gather GatherElements GatherND Gelu Gemm GlobalAveragePool GlobalLpPool GlobalMaxPool Greater
    GreaterOrEqual GridSample GroupNormalization GRU HammingWindow HannWindow HardSigmoid HardSwish Hardmax
    Identity If ImageScaler InstanceNormalization IsInf IsNaN LayerNormalization LeakyRelu Less LessOrEqual Log
    LogSoftmax Loop LRN LSTM LpNormalization LpPool MatMul Max MaxPool Mean MeanVarianceNormalization Min Mish
    Mod Mul Neg NonMaxSuppression NonZero Not OneHot Or Pad ParametricSoftplus Pow PRelu QuantizeLinear
    RandomNormal RandomNormalLike RandomUniform RandomUniformLike Range Reciprocal ReduceL1 ReduceL2
    ReduceLogSum ReduceLogSumExp ReduceMax ReduceMean ReduceMin ReduceProd ReduceSum ReduceSumSquare Relu
    Reshape Resize ReverseSequence RMSNormalization RNN RoiAlign RotaryEmbedding Round STFT ScaledTanh Scan
    Scatter ScatterElements ScatterND Selu Shape Shrink Sigmoid Sign Sin Sinh Size Slice Softmax Softplus
    Softsign SpaceToDepth Split Sqrt Squeeze Sub Sum Tan Tanh TensorScatter ThresholdedRelu Tile TopK Transpose
    Trilu Unsqueeze Upsample Where Xor
    """
)
_TRT10_UNSUPPORTED = _ops(
    """
    AffineGrid Bernoulli BitShift BitwiseAnd BitwiseNot BitwiseOr BitwiseXor CenterCropPad Col2Im Compress
    ConcatFromSequence ConvInteger DFT Det DynamicQuantizeLinear ImageDecoder MatMulInteger MaxRoiPool MaxUnpool
    MelWeightMatrix Multinomial NegativeLogLikelihoodLoss Optional OptionalGetElement OptionalHasElement
    QLinearConv QLinearMatMul RegexFullMatch SequenceAt SequenceConstruct SequenceEmpty SequenceErase
    SequenceInsert SequenceLength SequenceMap SoftmaxCrossEntropyLoss SplitToSequence StringConcat
    StringNormalizer StringSplit TfIdfVectorizer Unique
    """
)

_REDUCE_NOTE = "axes must be an initializer"
_TRT10_RESTRICTIONS: dict[str, str] = {
    "GridSample": "4-D input (N, C, H, W) only; 5-D needs TensorRT >= 11.2",
    "LayerNormalization": "only the first output (Y) is imported; Mean and InvStdDev outputs are not",
    "Attention": (
        "Q, K, V and attn_mask must be 4-D; no past_key/past_value/nonpad_kv_seqlen inputs; no present_key/"
        "present_value/qk_matmul_output outputs; qk_matmul_output_mode and softcap unsupported; head counts are "
        "read from dim 1 of Q and K/V"
    ),
    "Resize": (
        _RESIZE_MODES + "; aspect-ratio policy stretch only; with a scales tensor, axes must cover every axis "
        "in order; no antialiasing"
    ),
    "AveragePool": "2-D or 3-D pooling only; dilations must be empty or all 1",
    "MaxPool": "2-D or 3-D pooling only; the Indices output is unsupported; dilations must be empty or all 1",
    "LpPool": "dilations must be empty or all 1",
    "If": "the two branches' outputs must have the same rank and distinct names",
    "Loop": "scan outputs cannot have a dynamic length; loop-carried values must keep one shape across iterations",
    "Squeeze": "axes must resolve to a constant",
    "Unsqueeze": "axes must resolve to a constant",
    "CumSum": "axis must be a build-time constant",
    "Dropout": "is_training must be an initializer that is False",
    "Hardmax": "the size of the axis dimension must be a build-time constant",
    "OneHot": "depth must be a build-time constant",
    "TopK": "sorted must be 1; K must be below 3840",
    "ScatterND": "reduction must be none",
    "DeformConv": "1-D or 2-D spatial input only; begin and end pads must be equal on each axis",
    "RotaryEmbedding": "position_ids must be INT64",
    "EyeLike": "input must have static dimensions",
    "Constant": "sparse_value, value_string and value_strings are unsupported",
    "QuantizeLinear": "y_zero_point must be 0",
    "DequantizeLinear": "x_zero_point must be 0",
    "ReduceMean": _REDUCE_NOTE,
    "ReduceMax": _REDUCE_NOTE,
    "ReduceMin": _REDUCE_NOTE,
    "ReduceSum": _REDUCE_NOTE,
    "ReduceProd": _REDUCE_NOTE,
    "ReduceSumSquare": _REDUCE_NOTE,
    "ReduceL1": _REDUCE_NOTE,
    "ReduceL2": _REDUCE_NOTE,
    "ReduceLogSum": _REDUCE_NOTE,
    "ReduceLogSumExp": _REDUCE_NOTE,
}

_TRT10 = TrtTable(
    target="trt10",
    table_version="10.15",
    label="TensorRT 10.15 operator table",
    min_opset=9,
    max_opset=24,
    supported=_TRT10_SUPPORTED,
    unsupported=_TRT10_UNSUPPORTED,
    restrictions=MappingProxyType(dict(_TRT10_RESTRICTIONS)),
    source="onnx/onnx-tensorrt docs/operators.md, TensorRT 10.15 version (commit id not recorded)",
    opset_note="TensorRT 10.15 documents opsets 9 to 24; 10.0 stopped at 20",
)

# --- TensorRT 11.x: no table seen; 10.15 table + release-note changes ----------------------------

_ADDED_IN_11 = _ops("Swish DFT")  # Swish: 11.0; DFT: 11.2 (cuFFT-backed plugin)
_TRT11_RESTRICTIONS = dict(_TRT10_RESTRICTIONS)
_TRT11_RESTRICTIONS.update(
    {
        "GridSample": "4-D input; 5-D input (3-D sampling: linear, nearest, cubic) only since TensorRT 11.2",
        "DFT": "needs TensorRT >= 11.2; runs through the bundled cuFFT plugin",
        "Squeeze": "axes, when given, must resolve to a constant; omitting axes needs TensorRT >= 11.5",
    }
)

_TRT11 = TrtTable(
    target="trt11",
    table_version="11.x",
    label="TensorRT 11.x operator list (the 10.15 table plus the 11.0-11.5 release notes)",
    min_opset=9,
    max_opset=25,
    supported=_TRT10_SUPPORTED | _ADDED_IN_11,
    unsupported=_TRT10_UNSUPPORTED - _ADDED_IN_11,
    restrictions=MappingProxyType(_TRT11_RESTRICTIONS),
    source=(
        "onnx/onnx-tensorrt docs/operators.md (TensorRT 10.15) + NVIDIA/TensorRT release notes v11.0, v11.2, v11.5 "
        "and the TensorRT 11 'ONNX Opset Guide'"
    ),
    opset_note="opset 25 needs TensorRT >= 11.5 (ONNX 1.22); 11.0 to 11.4 stop at opset 24",
)

TRT_TABLES: Mapping[str, TrtTable] = MappingProxyType({t.target: t for t in (_TRT86, _TRT10, _TRT11)})


def _norm_domain(domain: str) -> str:
    return "" if domain in ("", "ai.onnx") else domain


def op_support(op_type: str, domain: str, target: str, opset: int) -> tuple[Status, str]:
    """Whether ``target`` can run an ONNX node of ``op_type`` in ``domain``, in a model of default-domain ``opset``.

    Returns ``(status, note)``; ``status`` is ``"ok"``, ``"restricted"`` (supported within the limits the
    note names), ``"unsupported"`` or ``"plugin"`` (a custom op that needs a registered implementation:
    a TensorRT plugin, or an ONNX Runtime custom-op library). On TensorRT targets a model whose opset
    is above the parser's newest supported opset is ``"unsupported"`` for every node.
    """
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; expected one of {', '.join(TARGETS)}")
    dom = _norm_domain(domain)

    if target == "ort":
        if dom == "com.microsoft":
            return "ok", "ONNX Runtime contrib op"
        if dom in _ORT_BUILTIN_DOMAINS:
            return "ok", ""
        if dom == ATTNX_DOMAIN:
            return "plugin", "attnx custom op: register the attnx custom-op library with the ONNX Runtime session"
        return "plugin", f"custom domain {dom!r}: needs a custom-op implementation registered with ONNX Runtime"

    table = TRT_TABLES[target]
    if opset > table.max_opset:
        return "unsupported", (
            f"model opset {opset} is above opset {table.max_opset}, the newest the {target} ONNX parser supports: "
            f"{table.opset_note}; export with opset <= {table.max_opset}"
        )
    if opset < table.min_opset:
        return "unsupported", f"model opset {opset} is below opset {table.min_opset}, the oldest {target} supports"
    if dom == ATTNX_DOMAIN:
        return "plugin", "attnx custom op: load the attnx TensorRT plugin library before parsing"
    if dom == "ai.onnx.ml":
        return "unsupported", "TensorRT's ONNX parser does not import the ai.onnx.ml domain"
    if dom:
        return "plugin", f"custom domain {dom!r}: the parser looks for a registered TensorRT plugin named {op_type!r}"
    if op_type in table.unsupported:
        return "unsupported", f"marked unsupported (N) in the {table.label}"
    if op_type not in table.supported:
        return "unsupported", (
            f"not listed in the {table.label}, so no built-in importer; "
            "needs a plugin of that name or a rewrite into supported ops"
        )
    note = table.restrictions.get(op_type)
    if note:
        return "restricted", note
    return "ok", ""


# --- Per-node verdicts from attributes ------------------------------------------------------------
# Support depends on attributes, not only op types: an Einsum equation, a Resize mode, a GridSample rank, a Pad
# mode, an input the parser needs as a constant. ``node_support`` judges one node; ``refine_by_attributes`` (the
# op report's hook) folds the verdicts into the report's rows and names the node and the attribute.

EINSUM_GENERAL_SINCE = "10.12"  # ellipsis, diagonal (repeated index in one operand) and broadcasting
_TRT_RESIZE_COORD = frozenset(
    {"half_pixel", "pytorch_half_pixel", "tf_half_pixel_for_nn", "asymmetric", "align_corners"}
)
_TRT_RESIZE_MODES = frozenset({"nearest", "linear"})
_TRT_PAD_MODES = {"trt8.6": frozenset({"constant", "reflect", "edge"}),
                  "trt10": frozenset({"constant", "reflect", "edge", "wrap"}),
                  "trt11": frozenset({"constant", "reflect", "edge", "wrap"})}  # fmt: skip
# (op type, input index, input name, first default-domain opset where it is an input): inputs the TensorRT
# parser needs as constants (an initializer or a Constant node), from the tables' restrictions above.
_TRT_CONST_INPUTS: tuple[tuple[str, int, str, int], ...] = (
    ("Squeeze", 1, "axes", 13), ("Unsqueeze", 1, "axes", 13), ("CumSum", 1, "axis", 11), ("OneHot", 1, "depth", 9),
    ("Dropout", 2, "training_mode", 12), ("Slice", 3, "axes", 10), ("Pad", 3, "axes", 18),
    ("ReduceSum", 1, "axes", 13), *((op, 1, "axes", 18) for op in (
        "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceSumSquare", "ReduceL1", "ReduceL2",
        "ReduceLogSum", "ReduceLogSumExp")),
    ("InstanceNormalization", 1, "scale", 1), ("InstanceNormalization", 2, "B", 1),
)  # fmt: skip
ATTRIBUTE_CHECKED_OPS = frozenset({"Einsum", "Resize", "GridSample", "Pad"} | {op for op, *_ in _TRT_CONST_INPUTS})


def _attr(node: object, name: str, default: object = None) -> object:
    from onnx import helper

    for a in node.attribute:  # type: ignore[attr-defined]
        if a.name == name:
            value = helper.get_attribute_value(a)
            return value.decode() if isinstance(value, bytes) else value
    return default


def einsum_features(equation: str) -> list[str]:
    """What of an Einsum equation needs TensorRT >= 10.12: an ellipsis, a repeated index within one operand."""
    found = []
    lhs = equation.replace(" ", "").split("->")[0]
    if "..." in equation:
        found.append("an ellipsis ('...')")
    for term in lhs.split(","):
        letters = term.replace("...", "")
        repeated = sorted({c for c in letters if letters.count(c) > 1})
        if repeated:
            found.append(f"a repeated index '{''.join(repeated)}' in operand '{term}' (a diagonal)")
    return found


def node_support(node: object, target: str, opset: int, constants: frozenset[str] | set[str],
                 ranks: Mapping[str, int],
                 producers: Mapping[str, object] | None = None) -> tuple[Status, str] | None:
    """Whether ``target`` runs this one node given its attributes and constant inputs: ``(status, note)`` naming the
    attribute, or None where the node's op has no attribute rule (the op-type verdict stands)."""
    op, name = node.op_type, node.name or node.op_type  # type: ignore[attr-defined]
    if getattr(node, "domain", "") not in ("", "ai.onnx") or op not in ATTRIBUTE_CHECKED_OPS:
        return None
    trt = target in TRT_TABLES
    problems: list[tuple[Status, str]] = []
    checked: list[str] = []
    if op == "Einsum":
        eq = str(_attr(node, "equation", ""))
        checked.append(f"equation '{eq}'")
        features = einsum_features(eq)
        if features and trt:
            what = " and ".join(features)
            if target == "trt8.6":
                problems.append(("unsupported", f"equation '{eq}' has {what}: the TensorRT 8.6 parser imports "
                                 f"neither (TensorRT >= {EINSUM_GENERAL_SINCE} does); rewrite as MatMul/Transpose"))
            elif target == "trt10":
                problems.append(("restricted", f"equation '{eq}' has {what}: needs TensorRT >= {EINSUM_GENERAL_SINCE}"))
    elif op == "Resize":
        mode = str(_attr(node, "mode", "nearest"))
        coord = str(_attr(node, "coordinate_transformation_mode", "half_pixel"))
        antialias = int(_attr(node, "antialias", 0) or 0)  # type: ignore[call-overload]
        policy = str(_attr(node, "keep_aspect_ratio_policy", "stretch"))
        checked.append(f"mode '{mode}', coordinate_transformation_mode '{coord}'")
        if trt:
            if mode not in _TRT_RESIZE_MODES:
                problems.append(("unsupported", f"mode '{mode}': TensorRT's parser resizes with nearest or "
                                 "linear only"))
            if coord not in _TRT_RESIZE_COORD:
                problems.append(("unsupported", f"coordinate_transformation_mode '{coord}' is not imported by "
                                 f"TensorRT (it takes {', '.join(sorted(_TRT_RESIZE_COORD))})"))  # fmt: skip
            if antialias:
                problems.append(("unsupported", "antialias=1: TensorRT resizes without antialiasing"))
            if policy != "stretch":
                problems.append(("unsupported", f"keep_aspect_ratio_policy '{policy}': TensorRT takes stretch only"))
    elif op == "GridSample":
        rank = ranks.get(node.input[0]) if node.input else None  # type: ignore[attr-defined]
        mode = str(_attr(node, "mode", "bilinear" if opset < 20 else "linear"))
        padding = str(_attr(node, "padding_mode", "zeros"))
        checked.append(f"{rank if rank else '?'}-D input, mode '{mode}', padding_mode '{padding}'")
        if rank == 5:
            if target == "ort" and opset < 20:
                problems.append(("unsupported", f"5-D input at opset {opset}: GridSample takes 5-D input from "
                                 "opset 20"))
            elif target == "ort" and mode in ("cubic", "bicubic"):
                problems.append(("unsupported", f"mode '{mode}' with 5-D input: ONNX Runtime's GridSample has cubic "
                                 "for 4-D input only"))  # fmt: skip
            elif target in ("trt8.6", "trt10"):
                problems.append(("unsupported", f"5-D input (3-D sampling): needs TensorRT >= {GRIDSAMPLE_5D_SINCE}"))
            elif target == "trt11":
                problems.append(("restricted", f"5-D input (3-D sampling): needs TensorRT >= {GRIDSAMPLE_5D_SINCE}"))
        elif rank is None and trt:
            problems.append(("restricted", "input rank unknown: TensorRT before 11.2 takes 4-D input only"))
        if padding not in ("zeros", "border", "reflection"):
            problems.append(("unsupported", f"padding_mode '{padding}' is not an ONNX GridSample mode"))
    elif op == "Pad":
        mode = str(_attr(node, "mode", "constant"))
        checked.append(f"mode '{mode}'")
        if trt and mode not in _TRT_PAD_MODES[target]:
            problems.append(("unsupported", f"mode '{mode}': the {target} parser pads with "
                             f"{', '.join(sorted(_TRT_PAD_MODES[target]))}"))  # fmt: skip
        if trt and mode == "constant" and len(node.input) > 2 and node.input[2] and node.input[2] not in constants:  # type: ignore[attr-defined]
            problems.append(("restricted", "input 'constant_value' is computed at run time: give it as an initializer"))
    if trt:
        for op_type, index, input_name, since in _TRT_CONST_INPUTS:
            if op != op_type or opset < since:
                continue
            inputs = node.input  # type: ignore[attr-defined]
            if len(inputs) > index and inputs[index] and inputs[index] not in constants:
                source = (producers or {}).get(inputs[index])
                origin = f" (from '{source.name or source.op_type}', {source.op_type})" if source is not None else ""  # type: ignore[attr-defined]
                problems.append(("unsupported", f"input '{input_name}' is computed at run time{origin}: the {target} "
                                 "parser needs it as a constant (an initializer); fold it (onnxsim) or export it "
                                 "as a constant"))  # fmt: skip
            elif len(inputs) > index and inputs[index]:
                checked.append(f"{input_name} constant")
    if problems:
        order = {"unsupported": 0, "restricted": 1}
        status = min((s for s, _ in problems), key=lambda s: order[s])
        return status, f"{op} '{name}': " + "; ".join(n for _, n in problems)
    return "ok", f"{op} '{name}': " + ", ".join(checked) if checked else ""


def graph_facts(proto: object) -> tuple[set[str], dict[str, int], dict[str, object]]:
    """Constant tensor names (initializers, Constant outputs and Identity of them), tensor ranks, producers."""
    import onnx

    graph = proto.graph  # type: ignore[attr-defined]
    constants = {i.name for i in graph.initializer}
    producers: dict[str, object] = {}
    for node in graph.node:
        for t in node.output:
            producers[t] = node
        if node.op_type == "Constant" or (node.op_type == "Identity" and node.input and node.input[0] in constants):
            constants.update(t for t in node.output if t)
    ranks: dict[str, int] = {}
    try:
        inferred = onnx.shape_inference.infer_shapes(proto, strict_mode=False).graph
    except Exception:  # inference is best effort: ranks stay unknown
        inferred = graph
    for vi in list(inferred.input) + list(inferred.value_info) + list(inferred.output):
        if vi.type.tensor_type.HasField("shape"):
            ranks[vi.name] = len(vi.type.tensor_type.shape.dim)
    return constants, ranks, producers


def refine_by_attributes(report: object, proto: object) -> None:
    """The op report's hook: rows of attribute-checked ops take the worst per-node verdict, with the nodes and
    attributes named (an op the table already refuses, or a model opset the target cannot read, stays refused)."""
    rows = [r for r in report.ops if r.domain in ("", "ai.onnx") and r.op_type in ATTRIBUTE_CHECKED_OPS]  # type: ignore[attr-defined]
    if not rows or report.target not in TARGETS:  # type: ignore[attr-defined]
        return
    constants, ranks, producers = graph_facts(proto)
    nodes = list(proto.graph.node)  # type: ignore[attr-defined]
    order = {"unsupported": 0, "plugin": 1, "restricted": 2, "ok": 3}
    for row in rows:
        if row.status == "unsupported":
            continue
        verdicts = [v for n in nodes if n.op_type == row.op_type and n.domain in ("", "ai.onnx")
                    for v in [node_support(n, report.target, report.opset, constants, ranks, producers)] if v]  # type: ignore[attr-defined]  # fmt: skip
        flagged = [v for v in verdicts if v[0] in ("unsupported", "restricted")]
        if flagged:
            worst = min((s for s, _ in flagged), key=lambda s: order[s])
            more = f"; and {len(flagged) - 3} more" if len(flagged) > 3 else ""
            shown = "; ".join(n for _, n in flagged[:3]) + more
            row.status = worst if order[worst] < order[row.status] else row.status
            row.note = f"{len(flagged)} of {len(verdicts)} node(s): {shown}"
        elif verdicts and row.status == "restricted":
            row.note = f"{row.note} (every node's attributes checked: none found outside these limits)"
