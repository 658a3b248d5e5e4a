"""The op report: which ONNX ops a model uses and whether a deployment target runs each of them."""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from attnx.core.errors import UserError
from attnx.exporters.attention_form import refine_report
from attnx.exporters.trt_support import TARGETS, op_support, refine_by_attributes

if TYPE_CHECKING:
    import onnx


@dataclass
class OpRow:
    """One op type of an exported graph: how many nodes use it and whether the target runs it.

    ``status`` is "ok", "restricted" (runs with conditions, in ``note``), "unsupported" or "plugin".
    """

    op_type: str
    domain: str
    count: int
    status: str  # "ok" | "restricted" | "unsupported" | "plugin"
    note: str = ""


@dataclass
class OpReport:
    """Which op types an exported graph holds and whether ``target`` runs each (see :func:`op_report`)."""

    model: str
    target: str
    opset: int
    node_count: int
    ops: list[OpRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def blocking(self) -> list[OpRow]:
        """Ops the target cannot run as exported."""
        return [r for r in self.ops if r.status == "unsupported"]

    @property
    def plugins(self) -> list[OpRow]:
        """Ops the target runs through an attnx plugin."""
        return [r for r in self.ops if r.status == "plugin"]

    def to_dict(self) -> dict:
        """The report as JSON-ready data, with a ``summary`` (op type count, unsupported and plugin op types)."""
        d = asdict(self)
        d["summary"] = {
            "op_types": len(self.ops),
            "unsupported": [r.op_type for r in self.blocking],
            "plugins": [r.op_type for r in self.plugins],
        }
        return d

    def save(self, path: Path) -> None:
        """Write :meth:`to_dict` as JSON to ``path`` (atomically: a temporary file, then a rename)."""
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        os.replace(tmp, path)


def _all_nodes(graph: onnx.GraphProto):  # type: ignore[no-untyped-def]
    """Nodes of a graph and of its subgraphs (If/Loop bodies)."""
    for node in graph.node:
        yield node
        for attr in node.attribute:
            if attr.g.node:
                yield from _all_nodes(attr.g)
            for g in attr.graphs:
                yield from _all_nodes(g)


def op_report(proto: onnx.ModelProto, target: str, model: str = "") -> OpReport:
    """The op report of ``proto`` for ``target`` (one of ``attnx.exporters.trt_support.TARGETS``).

    Counts every node (subgraphs included) by op type, rates each type for the target and opset, then refines
    the rows per node by attribute (Einsum, Resize, GridSample, Pad, Attention, ...). ``model`` is a label.

    Raises:
        UserError: an unknown target.
    """
    if target not in TARGETS:
        raise UserError(f"unknown target '{target}': choose one of {', '.join(TARGETS)}")
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)
    hist = Counter((n.domain or "", n.op_type) for n in _all_nodes(proto.graph))
    report = OpReport(model=model, target=target, opset=opset, node_count=sum(hist.values()))
    for (domain, op_type), count in sorted(hist.items(), key=lambda kv: (-kv[1], kv[0][1])):
        status, note = op_support(op_type, domain, target, opset)
        report.ops.append(OpRow(op_type, domain, count, status, note))

    refine_by_attributes(report, proto)  # Einsum / Resize / GridSample / Pad / constant inputs: per node, by attribute

    refine_report(report, proto)  # Attention / RMSNormalization / RotaryEmbedding: per version and attribute
    return report
