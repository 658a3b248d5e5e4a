"""The form attention takes in the ONNX graph: one ``Attention`` node (fused) or MatMul/Softmax/MatMul (decomposed).

ONNX opset 23 made scaled dot-product attention one operator, ``Attention`` (with ``RMSNormalization`` and
``RotaryEmbedding``). torch 2.13's dynamo exporter writes ``F.scaled_dot_product_attention`` as that node at
opset ≥ 23, and as MatMul → Softmax → MatMul below; the TorchScript exporter always decomposes it.

``--attention``:

* ``fused``: one ``Attention`` node per attention (opset ≥ 23, the dynamo exporter, a target that imports it).
  ``F.scaled_dot_product_attention`` maps to it directly; ``nn.MultiheadAttention`` does when its attention
  weights are not used (it is then called with ``need_weights=False``, the call that goes through SDPA); the
  zoo's own modules (ViT's MHSA, ResT's EMSA, MobileViTv2's separable attention) call SDPA while a fused
  export traces them (:func:`fused_active`), and keep their explicit maths in eager PyTorch, so the numbers
  the model computes outside export are unchanged.
* ``decomposed``: MatMul/Softmax/MatMul at any opset; at opset ≥ 23 with the dynamo exporter, SDPA is traced
  through an explicit implementation (:func:`math_sdpa`) so no ``Attention`` node is written.
* ``auto``: fused where the opset is ≥ 23 and the target imports ``Attention`` (:func:`fused_support`),
  decomposed otherwise.

What each target imports (per op, version and attribute) is :data:`FUSED_OPS`; the op report refines its rows
for these ops with :func:`refine_report`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from attnx.core.errors import UserError
from attnx.exporters.trt_support import TRT_TARGETS

if TYPE_CHECKING:
    import onnx
    import torch
    from torch import nn

FORMS = ("fused", "decomposed", "auto")
FUSED_MIN_OPSET = 23
FUSED_OP_TYPES = ("Attention", "RMSNormalization", "RotaryEmbedding")


@dataclass(frozen=True)
class Support:
    """Where one op imports: first version per runtime family (None: never), and what is known of it."""

    trt: tuple[int, int] | None
    ort: tuple[int, int] | None
    openvino: tuple[int, int] | None
    note: str


FUSED_OPS: dict[str, Support] = {
    "Attention": Support(
        trt=(10, 14), ort=(1, 23), openvino=(2026, 4),
        note="TensorRT: since 10.14 (its attention layer, fused kernels); ONNX Runtime: CPU kernel since 1.23; "
        "OpenVINO: measured with 2026.4.1 (older releases not checked)",
    ),  # fmt: skip
    "RMSNormalization": Support(
        trt=(10, 15), ort=(1, 23), openvino=(2026, 4),
        note="TensorRT: since 10.15; ONNX Runtime and OpenVINO: measured with 1.32 and 2026.4.1",
    ),  # fmt: skip
    "RotaryEmbedding": Support(
        trt=(10, 15), ort=(1, 23), openvino=(2026, 4),
        note="TensorRT: since 10.15 (position_ids INT64); ONNX Runtime and OpenVINO: measured with 1.32 and 2026.4.1",
    ),  # fmt: skip
}
# The version a target name without one stands for (trt10: the 10.15 table; ort/openvino: the installed one).
_TRT_DEFAULT_VERSION = {8: (8, 6), 10: (10, 15), 11: (11, 0)}
# Attention attributes / optional inputs and outputs TensorRT's importer refuses (the 10.15 table's restriction).
_TRT_ATTENTION_REFUSED_ATTRS = ("softcap", "qk_matmul_output_mode")
_TRT_ATTENTION_REFUSED_INPUTS = {4: "past_key", 5: "past_value", 6: "nonpad_kv_seqlen"}


def _version(text: str) -> tuple[int, int]:
    parts = [int(p) for p in text.split(".")[:2] if p.isdigit()]
    return (parts + [0, 0])[0], (parts + [0, 0])[1]


def target_version(target: str) -> tuple[str, tuple[int, int] | None]:
    """``"trt10.12"`` → ("trt", (10, 12)); ``"trt10"`` → ("trt", (10, 15)); ``"ort"`` → ("ort", installed)."""
    if target.startswith("trt"):
        major, _, minor = target[3:].partition(".")
        if not major.isdigit() or (minor and not minor.isdigit()):
            raise UserError(f"unknown TensorRT target '{target}': write trtMAJOR[.MINOR], e.g. trt10.12")
        v = (int(major), int(minor)) if minor else _TRT_DEFAULT_VERSION.get(int(major), (int(major), 0))
        return "trt", v
    for family, module in (("openvino", "openvino"), ("ort", "onnxruntime")):
        if target.startswith(family):
            rest = target[len(family):]
            if rest:
                return family, _version(rest)
            try:
                mod = __import__(module)
                return family, _version(str(mod.__version__).split("-")[0])
            except ImportError:
                return family, None
    raise UserError(f"unknown target '{target}': choose ort[X.Y], openvino[YYYY.N] or trtX[.Y]")


def op_imports(op_type: str, target: str) -> tuple[bool, str]:
    """Whether ``target`` (version included) imports ``op_type`` (one of :data:`FUSED_OP_TYPES`), and why."""
    family, version = target_version(target)
    support = FUSED_OPS[op_type]
    since = getattr(support, family)
    names = {"trt": "TensorRT", "ort": "ONNX Runtime", "openvino": "OpenVINO"}
    have = f"{names[family]} {version[0]}.{version[1]}" if version else f"{names[family]} (version unknown)"
    if since is None:
        return False, f"{have} has no {op_type} importer"
    if version is None or version < since:
        return False, f"{have} predates {op_type} ({names[family]} ≥ {since[0]}.{since[1]})"
    return True, f"{have} imports {op_type} (≥ {since[0]}.{since[1]})"


def fused_support(target: str, opset: int) -> tuple[bool, str]:
    """Can ``target`` run a graph with one ``Attention`` node per attention at ``opset``?"""
    if opset < FUSED_MIN_OPSET:
        return False, f"opset {opset} has no Attention op (added in opset {FUSED_MIN_OPSET})"
    return op_imports("Attention", target)


def choose_form(mode: str, opset: int, target: str = "ort", plugin_ops: frozenset[str] = frozenset(),
                exporter: str = "auto") -> tuple[str, str]:  # fmt: skip
    """``--attention MODE`` for a target → ("fused" | "decomposed", reason). An impossible ``fused`` is a UserError."""
    if mode not in FORMS:
        raise UserError(f"unknown --attention '{mode}': choose one of {', '.join(FORMS)}")
    if mode == "decomposed":
        return "decomposed", "decomposed (--attention decomposed): MatMul → Softmax → MatMul"
    ok, why = fused_support(target, opset)
    blocker = None
    if not ok:
        blocker = why
    elif plugin_ops:
        blocker = "attnx custom nodes need the TorchScript exporter, which cannot write Attention"
    elif exporter == "torchscript":
        blocker = "the TorchScript exporter cannot write Attention (it needs --exporter dynamo or auto)"
    if mode == "fused":
        if blocker:
            fix = f"--opset {FUSED_MIN_OPSET}" if opset < FUSED_MIN_OPSET else "--attention decomposed"
            raise UserError(f"--attention fused impossible for target {target}: {blocker}; fix: {fix} "
                            "(or --attention auto)")  # fmt: skip
        return "fused", f"fused (--attention fused): one Attention node per attention; {why}"
    if blocker:
        return "decomposed", f"decomposed (--attention auto): {blocker}"
    return "fused", f"fused (--attention auto): {why}"


def resolve_options(model: nn.Module, x: torch.Tensor, options: Any, target: str = "ort") -> tuple[Any, str]:
    """``options`` with a concrete ``attention`` form (``auto`` resolved for ``target``; the export checks parity on
    ONNX Runtime, so ``ort`` by default) and ``mha_fused`` set; with the reason for the form."""
    import dataclasses

    target = getattr(options, "attention_target", target)
    form, why = choose_form(options.attention, options.opset, target, options.plugin_ops, options.exporter)
    if form == "fused" and options.attention == "auto" and not calls_attention(model, x):
        form, why = "decomposed", "decomposed (--attention auto): the model calls no attention that fuses"
    why = f"for {target}: {why}"
    mha = form == "fused" and mha_weights_unused(model, x)
    if form == "fused" and options.exporter not in ("auto", "dynamo"):
        raise UserError("--attention fused needs the dynamo exporter (--exporter dynamo or auto)")
    return dataclasses.replace(options, attention=form, mha_fused=mha), why


# --------------------------------------------------------------------------------------------------
# Export-time switches
# --------------------------------------------------------------------------------------------------

_FUSED = False


def fused_active() -> bool:
    """True while a fused-form export traces the model: the zoo's attention modules then call SDPA."""
    return _FUSED


def math_sdpa(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, attn_mask: torch.Tensor | None = None,
              dropout_p: float = 0.0, is_causal: bool = False, scale: float | None = None,
              enable_gqa: bool = False) -> torch.Tensor:  # fmt: skip
    """``F.scaled_dot_product_attention`` written out (MatMul → Mul → [mask] → Softmax → MatMul), eval semantics."""
    import torch

    scale = query.shape[-1] ** -0.5 if scale is None else scale
    if enable_gqa and key.shape[-3] != query.shape[-3]:
        rep = query.shape[-3] // key.shape[-3]
        key, value = key.repeat_interleave(rep, dim=-3), value.repeat_interleave(rep, dim=-3)
    attn = torch.matmul(query, key.transpose(-2, -1)) * scale
    if is_causal:
        causal = torch.ones(query.shape[-2], key.shape[-2], dtype=torch.bool, device=query.device).tril()
        attn = attn.masked_fill(~causal, float("-inf"))
    if attn_mask is not None:
        attn = attn.masked_fill(~attn_mask, float("-inf")) if attn_mask.dtype == torch.bool else attn + attn_mask
    attn = attn.softmax(dim=-1)
    if dropout_p > 0.0:
        attn = torch.nn.functional.dropout(attn, dropout_p, training=True)
    return torch.matmul(attn, value)


def _mha_forward_without_weights(original: Any) -> Any:
    def forward(self: Any, query: Any, key: Any, value: Any, key_padding_mask: Any = None, need_weights: bool = True,
                attn_mask: Any = None, average_attn_weights: bool = True, is_causal: bool = False) -> Any:  # fmt: skip
        out, _ = original(self, query, key, value, key_padding_mask=key_padding_mask, need_weights=False,
                          attn_mask=attn_mask, average_attn_weights=average_attn_weights,
                          is_causal=is_causal)  # fmt: skip
        return out, None

    return forward


def calls_attention(model: nn.Module, x: torch.Tensor) -> bool:
    """Whether one forward (with the zoo modules in their fused-export form) calls SDPA or nn.MultiheadAttention."""
    global _FUSED
    import torch
    import torch.nn.functional as F
    from torch import nn
    from torch.overrides import TorchFunctionMode

    if any(isinstance(m, nn.MultiheadAttention) for m in model.modules()):
        return True
    seen = []

    class Watch(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
            if func is F.scaled_dot_product_attention:
                seen.append(func)
            return func(*args, **(kwargs or {}))

    saved, _FUSED = _FUSED, True
    try:
        with torch.no_grad(), Watch():
            model(x)
    except Exception:  # the export reports a model that fails; here: nothing seen
        return bool(seen)
    finally:
        _FUSED = saved
    return bool(seen)


def mha_weights_unused(model: nn.Module, x: torch.Tensor) -> bool:
    """True when no ``nn.MultiheadAttention`` in ``model`` has its attention weights used: the model's output
    is the same (bit for bit) when each returns None for them."""
    import torch
    from torch import nn

    if not any(isinstance(m, nn.MultiheadAttention) for m in model.modules()):
        return False
    from attnx.deploy.backends.torch.runner import flatten_outputs  # imports torch

    with torch.no_grad():
        ref = flatten_outputs(model(x))
        original = nn.MultiheadAttention.forward
        nn.MultiheadAttention.forward = _mha_forward_without_weights(original)  # type: ignore[method-assign]
        try:
            out = flatten_outputs(model(x))
        except Exception:  # the model reads the weights (None now)
            return False
        finally:
            nn.MultiheadAttention.forward = original  # type: ignore[method-assign]
    return len(ref) == len(out) and all(torch.allclose(a, b, rtol=1e-5, atol=1e-6) for a, b in zip(ref, out))


@contextlib.contextmanager
def exporting(form: str, opset: int, exporter: str, mha_fused: bool = False) -> Iterator[None]:
    """The switches one export traces under: fused (zoo modules call SDPA; ``nn.MultiheadAttention`` without
    weights where ``mha_fused``), or decomposed at opset ≥ 23 with dynamo (SDPA traced as :func:`math_sdpa`)."""
    global _FUSED
    import torch.nn.functional as F
    from torch import nn

    saved = (_FUSED, F.scaled_dot_product_attention, nn.MultiheadAttention.forward)
    try:
        if form == "fused":
            _FUSED = True
            if mha_fused:
                nn.MultiheadAttention.forward = _mha_forward_without_weights(saved[2])  # type: ignore[method-assign]
        elif exporter == "dynamo" and opset >= FUSED_MIN_OPSET:
            F.scaled_dot_product_attention = math_sdpa  # type: ignore[assignment]
        yield
    finally:
        _FUSED = saved[0]
        F.scaled_dot_product_attention = saved[1]  # type: ignore[assignment]
        nn.MultiheadAttention.forward = saved[2]  # type: ignore[method-assign]


def count_fused(proto: onnx.ModelProto) -> dict[str, int]:
    """How many fused nodes (Attention, RMSNormalization, RotaryEmbedding) of the default domain ``proto`` holds.

    Returns a count for every op type in ``FUSED_OP_TYPES`` (0 when absent); subgraphs are not counted.
    """
    counts = {op: 0 for op in FUSED_OP_TYPES}
    for node in proto.graph.node:
        if node.domain in ("", "ai.onnx") and node.op_type in counts:
            counts[node.op_type] += 1
    return counts


def form_note(proto: onnx.ModelProto, form: str) -> str:
    """What the exported graph holds, checked against the form asked for (a UserError when it contradicts it)."""
    counts = count_fused(proto)
    softmax = sum(n.op_type == "Softmax" for n in proto.graph.node)
    n_attn = counts["Attention"]
    if form == "decomposed" and n_attn:
        raise UserError(f"--attention decomposed, but the exported graph holds {n_attn} Attention node(s) (an SDPA "
                        "imported under another name?); fix: --exporter torchscript, or --opset 22")  # fmt: skip
    if form == "fused" and not n_attn:
        raise UserError("--attention fused, but the model's attention did not export as an Attention node (no "
                        "F.scaled_dot_product_attention, nn.MultiheadAttention or zoo attention module traced); "
                        "fix: --attention decomposed or auto")  # fmt: skip
    extra = ", ".join(f"{v} {k}" for k, v in counts.items() if v and k != "Attention")
    left = f"; {softmax} Softmax left outside (attention that Attention cannot express)" if softmax else ""
    return (f"attention form {form}: {n_attn} Attention node(s){', ' + extra if extra else ''}{left}"
            if form == "fused" else f"attention form decomposed: {softmax} Softmax node(s), no Attention")  # fmt: skip


# --------------------------------------------------------------------------------------------------
# Op report
# --------------------------------------------------------------------------------------------------


def _attr(node: Any, name: str) -> Any:
    import onnx

    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return None


def attention_node_support(node: Any, target: str, ranks: dict[str, int] | None = None) -> tuple[str, str]:
    """(status, note) of one ``Attention`` node on ``target``: its attributes and optional inputs included."""
    ok, why = op_imports("Attention", target)
    if not ok:
        return "unsupported", why
    family, _ = target_version(target)
    used = [f"{a.name}={_attr(node, a.name)}" for a in node.attribute]
    what = f" (attributes: {', '.join(used)})" if used else ""
    if family != "trt":
        return "ok", why + what
    problems = [f"attribute {n}" for n in _TRT_ATTENTION_REFUSED_ATTRS if _attr(node, n)]
    problems += [f"input {name}" for i, name in _TRT_ATTENTION_REFUSED_INPUTS.items() if len(node.input) > i
                 and node.input[i]]  # fmt: skip
    problems += [f"output {i}" for i in range(1, len(node.output)) if node.output[i]]
    if _attr(node, "q_num_heads") is not None:
        problems.append("3-D Q/K/V (q_num_heads)")
    if ranks:
        problems += [f"{t} of rank {ranks[t]}" for t in node.input[:3] if ranks.get(t, 4) != 4]
    if problems:
        return "unsupported", f"{why}, but its importer refuses {', '.join(problems)}"
    return "restricted", why + what + "; Q, K, V 4-D; softmax_precision is not named in the TensorRT table"


def refine_report(report: Any, proto: onnx.ModelProto) -> None:
    """Rewrite the op report's rows for Attention / RMSNormalization / RotaryEmbedding with per-node checks."""
    target = report.target
    if target not in TRT_TARGETS and target != "ort" and not target.startswith(("ort", "openvino", "trt")):
        return
    infos = list(proto.graph.value_info) + list(proto.graph.input)
    ranks = {vi.name: len(vi.type.tensor_type.shape.dim) for vi in infos if vi.type.tensor_type.HasField("shape")}
    for row in report.ops:
        if row.domain not in ("", "ai.onnx") or row.op_type not in FUSED_OP_TYPES:
            continue
        if report.opset < FUSED_MIN_OPSET and target.startswith("trt"):
            continue  # the opset verdict of the table stands
        if row.op_type == "Attention":
            verdicts = [attention_node_support(n, target, ranks) for n in proto.graph.node if n.op_type == "Attention"]
            order = {"unsupported": 0, "restricted": 1, "ok": 2}
            status, note = min(verdicts, key=lambda v: order[v[0]]) if verdicts else ("ok", "")
        else:
            ok, note = op_imports(row.op_type, target)
            status = "ok" if ok else "unsupported"
        if row.status == "unsupported" and status != "unsupported" and "opset" in row.note:
            continue  # the model's opset is above what the parser reads: that verdict stands
        row.status, row.note = status, note
    counts = count_fused(proto)
    if counts["Attention"]:
        others = [t for t in ("ort", "openvino", "trt8.6", "trt10.12", "trt10", "trt11") if t != target]
        verdicts = "; ".join(f"{t}: {'imports' if op_imports('Attention', t)[0] else 'no'}" for t in others)
        report.notes.append(f"Attention on other targets ({FUSED_OPS['Attention'].note}): {verdicts}")
