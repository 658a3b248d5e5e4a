"""JUnit XML parses, and its counts and failure messages say what the results say."""

import xml.etree.ElementTree as ET

import numpy as np

from attnx.deploy.apis.check import compare_to_baseline, make_record
from attnx.deploy.cli.junit import junit_xml, write_junit
from attnx.deploy.parity.compare import POLICIES, compare
from attnx.deploy.parity.report import LayerwiseReport, ParityReport, TensorCheck


def report(noise: float, model: str = "cbam_resnet") -> ParityReport:
    rng = np.random.default_rng(0)
    ref = rng.standard_normal((2, 6)).astype(np.float32)
    ref[:, 0] += 4
    rep = ParityReport(model, "torch", "onnxruntime (m.onnx)", "fp32", POLICIES["fp32"], "seeded random (seed 0)")
    for b in (1, 2):
        refs = {"logits": ref[:b], "aux": ref[:b] * 2}
        cands = {"logits": ref[:b] + noise, "aux": ref[:b] * 2}
        rep.cases.append(compare(refs, cands, POLICIES["fp32"], f"batch {b}", {"input": (b, 3, 8, 8)}))
    return rep


def test_parity_suites_count_tests_and_failures():
    xml = junit_xml([report(0.0), report(0.1, model="se <resnet> & co")])
    root = ET.fromstring(xml)
    assert root.tag == "testsuites" and root.get("tests") == "8" and root.get("failures") == "2"
    passing, failing = root.findall("testsuite")
    assert passing.get("tests") == "4" and passing.get("failures") == "0"
    assert failing.get("failures") == "2" and "se <resnet> & co" in failing.get("name")  # escaped, parsed back
    names = [c.get("name") for c in failing.findall("testcase") if c.find("failure") is not None]
    assert names == ["batch 1 / logits", "batch 2 / logits"]
    message = failing.find("testcase/failure").get("message")
    assert "max abs" in message and "exceeds atol" in message
    props = {p.get("name"): p.get("value") for p in passing.find("properties")}
    assert props["precision"] == "fp32" and props["tolerance.atol"] == "0.0001"


def test_parity_dicts_from_json_work_too():
    root = ET.fromstring(junit_xml([report(0.1).to_dict()]))
    assert root.get("failures") == "2"


def test_check_and_layerwise_suites(tmp_path):
    base = make_record([report(0.0)])
    result = compare_to_baseline(make_record([report(0.1)]), base)
    lw = LayerwiseReport("ref.onnx", "cand.onnx", "fp16", POLICIES["fp16"], {"x": (1, 3)})
    lw.checks = [TensorCheck(0, "conv1", "Conv", "c1", (1, 3), 0.0, 0.0, 0.0, 1.0),
                 TensorCheck(1, "conv2", "Conv", "c2", (1, 3), 0.5, 0.1, 0.2, 0.9, ["cosine 0.9 < 0.999"])]  # fmt: skip
    path = write_junit(tmp_path / "out" / "junit.xml", check=result, layerwise=[lw])
    root = ET.parse(path).getroot()
    lw_suite, check_suite = root.findall("testsuite")
    assert lw_suite.get("failures") == "1"
    assert "conv2" in lw_suite.find("testcase/failure").get("message")
    assert check_suite.get("failures") == str(len(result.failures)) != "0"
    assert root.get("failures") == str(1 + len(result.failures))


def test_passing_check_still_yields_a_test():
    base = make_record([report(0.0)])
    root = ET.fromstring(junit_xml(check=compare_to_baseline(make_record([report(0.0)]), base)))
    suite = root.find("testsuite")
    assert suite.get("tests") == "1" and suite.get("failures") == "0"
