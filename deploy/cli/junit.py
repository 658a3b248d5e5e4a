"""JUnit XML for CI systems (GitLab, Jenkins, GitHub test reporters, Azure): one test per checked item.

    <testsuites name="attnx">
      <testsuite name="parity ...">     one <testcase> per case × output; <failure> when it breaks the policy
      <testsuite name="layerwise ...">  one <testcase> per search; <failure> names the first divergent node
      <testsuite name="check ...">      one <testcase> per gated item (accuracy, latency, coverage)

Parity reports may be given as ``ParityReport`` objects or as their JSON dicts (``attnx parity --json``).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from attnx.deploy.apis.check import CheckResult
    from attnx.deploy.parity.report import LayerwiseReport, ParityReport


def _suite(root: ET.Element, name: str, properties: dict[str, Any] | None = None) -> ET.Element:
    suite = ET.SubElement(root, "testsuite", name=name)
    if properties:
        props = ET.SubElement(suite, "properties")
        for k, v in properties.items():
            ET.SubElement(props, "property", name=str(k), value=str(v))
    return suite


def _case(suite: ET.Element, classname: str, name: str, failure: str | None = None, detail: str = "",
          out: str = "") -> ET.Element:  # fmt: skip
    case = ET.SubElement(suite, "testcase", classname=classname, name=name, time="0")
    if failure is not None:
        f = ET.SubElement(case, "failure", message=failure, type="AssertionError")
        f.text = detail or failure
    if out:
        ET.SubElement(case, "system-out").text = out
    return case


def _finish(suite: ET.Element) -> None:
    cases = suite.findall("testcase")
    suite.set("tests", str(len(cases)))
    suite.set("failures", str(sum(c.find("failure") is not None for c in cases)))
    suite.set("errors", "0")
    suite.set("skipped", str(sum(c.find("skipped") is not None for c in cases)))
    suite.set("time", "0")


def _safe(text: str) -> str:
    return "".join(ch for ch in text if ch.isalnum() or ch in "._-") or "x"


def junit_xml(
    parity: Sequence[ParityReport | dict[str, Any]] = (),
    check: CheckResult | None = None,
    layerwise: Sequence[LayerwiseReport] = (),
    name: str = "attnx",
) -> str:
    """The JUnit XML document (a string) for the given results."""
    root = ET.Element("testsuites", name=name)
    for rep in parity:
        d = rep if isinstance(rep, dict) else rep.to_dict()
        tol = d.get("tolerance") or {}
        suite = _suite(
            root, f"parity {d.get('model')}: {d.get('reference')} vs {d.get('candidate')} [{d.get('precision')}]",
            {"model": d.get("model"), "precision": d.get("precision"), "inputs": d.get("input_source"),
             **{f"tolerance.{k}": v for k, v in tol.items()}},
        )  # fmt: skip
        classname = f"attnx.parity.{_safe(str(d.get('model')))}.{d.get('precision')}"
        if not d.get("cases"):
            _case(suite, classname, "cases", failure="the parity run compared nothing")
        for case in d.get("cases", []):
            for out in case.get("outputs", []):
                metrics = (
                    f"shape {out.get('shape')}: max abs {out.get('max_abs')}, mean abs {out.get('mean_abs')}, "
                    f"rel L2 {out.get('rel_l2')}, cosine {out.get('cosine')}, top-1 {out.get('top1')}"
                )
                failures = out.get("failures") or []
                _case(suite, classname, f"{case.get('label')} / {out.get('name')}",
                      failure="; ".join(failures) if failures else None, detail=metrics, out=metrics)  # fmt: skip
        _finish(suite)
    for lw in layerwise:
        suite = _suite(root, f"layerwise: {lw.reference} vs {lw.candidate} [{lw.precision}]",
                       {"matched": len(lw.checks), "unmatched": len(lw.unmatched)})  # fmt: skip
        _case(suite, f"attnx.layerwise.{lw.precision}", "first divergent node",
              failure=None if lw.passed else lw.summary(), out=lw.summary())  # fmt: skip
        _finish(suite)
    if check is not None:
        suite = _suite(root, f"check {check.model} against {check.baseline_path}",
                       {"stat": check.stat, "max_slowdown": check.max_slowdown, "updated": check.updated})  # fmt: skip
        gated = [c for c in check.changes if c.kind != "info"]
        for c in gated:
            _case(suite, f"attnx.check.{c.kind}", c.key, failure=c.message if c.failed else None, out=c.message)
        if not gated:
            _case(suite, "attnx.check", "baseline comparison", out="nothing gated changed")
        _finish(suite)
    root.set("tests", str(sum(int(s.get("tests", "0")) for s in root)))
    root.set("failures", str(sum(int(s.get("failures", "0")) for s in root)))
    root.set("errors", "0")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def write_junit(
    path: str | Path,
    parity: Sequence[ParityReport | dict[str, Any]] = (),
    check: CheckResult | None = None,
    layerwise: Sequence[LayerwiseReport] = (),
    name: str = "attnx",
) -> Path:
    """Write ``junit_xml(...)`` to ``path`` atomically."""
    from attnx.core.files import write_text

    return write_text(Path(path), junit_xml(parity, check, layerwise, name))
