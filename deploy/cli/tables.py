"""Rich tables for people; the same data goes to JSON for machines."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.table import Table

if TYPE_CHECKING:
    from attnx.deploy.parity.report import LayerwiseReport, ParityReport
    from attnx.exporters.report import OpReport

_STATUS_STYLE = {"ok": "green", "restricted": "yellow", "plugin": "cyan", "unsupported": "bold red"}


def op_table(report: OpReport) -> Table:
    """A rich table of an op report for people: one row per op type (domain, count, status, note)."""
    table = Table(title=f"ONNX ops of {report.model} (opset {report.opset}) for target {report.target}")
    table.add_column("op")
    table.add_column("domain")
    table.add_column("count", justify="right")
    table.add_column("status")
    table.add_column("note", overflow="fold")
    for row in report.ops:
        style = _STATUS_STYLE.get(row.status, "")
        table.add_row(row.op_type, row.domain or "ai.onnx", str(row.count), f"[{style}]{row.status}[/]", row.note)
    table.caption = f"{report.node_count} nodes, {len(report.ops)} op types"
    return table


def _fmt(x: float | None, spec: str = ".2e") -> str:
    if x is None:
        return "–"
    if isinstance(x, float) and x != x:
        return "nan"
    return format(x, spec)


def parity_table(report: ParityReport) -> Table:
    """A rich table of a parity report for people: one row per case and output (max and mean abs error, relative L2,
    cosine, top-1 agreement, verdict); the caption states the inputs and the policy.
    """
    tol = report.tolerance
    if tol.error_stat == "elemwise":
        rule = f"|Δ| ≤ {tol.atol:g} + {tol.rtol:g}·|ref|"
    else:
        stat = f"q{tol.error_quantile:g}" if tol.error_stat == "quantile" else tol.error_stat
        rule = f"{stat} |Δ| ≤ {tol.atol:g} or {stat} |Δ|/|ref| ≤ {tol.rtol:g}"
    table = Table(
        title=f"Parity: {report.reference} vs {report.candidate} — {report.model}, policy {report.precision}",
        caption=(
            f"inputs: {report.input_source}; pass if {rule}, "
            f"cosine ≥ {tol.min_cosine}, rel L2 ≤ {tol.max_rel_l2:g}, top-1 ≥ {tol.min_top1}"
        ),
    )
    for col, just in [
        ("case", "left"), ("output", "left"), ("shape", "left"), ("max abs", "right"), ("mean abs", "right"),
        ("rel L2", "right"), ("cosine", "right"), ("top-1", "right"), ("result", "left"),
    ]:  # fmt: skip
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    for case in report.cases:
        for out in case.outputs:
            top1 = "–" if out.top1 is None else f"{out.top1:.3f} (n={out.top1_samples})"
            result = "[green]pass[/]" if out.passed else f"[bold red]FAIL[/] {'; '.join(out.failures)}"
            table.add_row(
                case.label, out.name, "x".join(map(str, out.shape)), _fmt(out.max_abs), _fmt(out.mean_abs),
                _fmt(out.rel_l2), _fmt(out.cosine, ".7f"), top1, result,
            )  # fmt: skip
    return table


def layerwise_table(report: LayerwiseReport, limit: int = 25) -> Table:
    """A rich table: the tensors around the first divergence (or the worst ones when all agree)."""
    table = Table(title=f"Layer-wise: {report.reference} vs {report.candidate}, policy {report.precision}",
                  caption=report.summary())  # fmt: skip
    for col, just in [("#", "right"), ("node", "left"), ("op", "left"), ("tensor", "left"), ("max abs", "right"),
                      ("rel L2", "right"), ("cosine", "right"), ("result", "left")]:  # fmt: skip
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    first = report.first_divergence
    if first is not None:
        idx = report.checks.index(first)
        rows = report.checks[max(0, idx - 3) : idx + 3]
    else:
        rows = sorted(report.checks, key=lambda c: -c.rel_l2)[:limit]
    for c in rows:
        result = "[green]ok[/]" if c.passed else f"[bold red]DIVERGES[/] {'; '.join(c.failures)}"
        table.add_row(str(c.order), c.node, c.op_type, c.tensor, f"{c.max_abs:.2e}", f"{c.rel_l2:.2e}",
                      f"{c.cosine:.6f}", result)  # fmt: skip
    return table
