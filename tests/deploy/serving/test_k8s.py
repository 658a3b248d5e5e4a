"""`attnx k8s`: KServe manifests for one ORT and one OpenVINO bundle, checked offline against the schemas of the
KServe CRD fields and Kubernetes core types they use (jsonschema, and the built-in fallback checker), memory
measured, the TensorRT version check, and the command line."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from attnx.core.errors import UserError
from attnx.deploy.apis.build import BuildOptions, build_bundle
from attnx.deploy.serving import k8s_schema
from attnx.deploy.serving.k8s import check_tensorrt, k8s_name, load_manifest_file, write_manifests


@pytest.fixture(scope="module")
def ov_bundle(tmp_path_factory) -> Path:
    pytest.importorskip("openvino")
    options = BuildOptions(backend="openvino", precision="fp32", input_shape=(1, 3, 16, 16))
    return build_bundle("tests.fixtures:tiny_net", tmp_path_factory.mktemp("k8s-ov") / "ov", options).bundle


@pytest.fixture(scope="module")
def written(bundles, ov_bundle, tmp_path_factory):
    out = tmp_path_factory.mktemp("k8s") / "out"
    models = write_manifests([f"tiny={bundles['tiny']}", f"ov_tiny={ov_bundle}"], out,
                             storage_uri="s3://models/attnx/", min_replicas=1, max_replicas=6)  # fmt: skip
    return out, models


def _objects(out: Path) -> dict[str, dict]:
    return {p.name: load_manifest_file(p) for p in sorted(out.glob("*.yaml")) + sorted(out.glob("*.json"))
            if p.name != "resources.json"}  # fmt: skip


def test_manifests_for_ort_and_openvino_fit_the_schemas(written):
    jsonschema = pytest.importorskip("jsonschema")
    out, _ = written
    objects = _objects(out)
    assert sorted(objects) == [
        "attnx-serve.servingruntime.yaml",
        "ov-tiny-attnx.inferenceservice.yaml", "ov-tiny-triton.inferenceservice.yaml",
        "tiny-attnx.inferenceservice.yaml", "tiny-triton.inferenceservice.yaml",
    ]  # fmt: skip
    for name, obj in objects.items():
        schema = k8s_schema.SCHEMAS[obj["kind"]]
        jsonschema.Draft202012Validator.check_schema(schema)
        jsonschema.validate(obj, schema)  # the real validator
        assert k8s_schema.errors(obj, schema) == [], name  # and the fallback checker agrees


def test_inference_services_carry_probes_scaling_scrape_and_resources(written):
    out, models = written
    objects = _objects(out)
    for name, obj in objects.items():
        if obj["kind"] != "InferenceService":
            continue
        pred = obj["spec"]["predictor"]
        model = pred["model"]
        assert (pred["minReplicas"], pred["maxReplicas"], pred["scaleMetric"]) == (1, 6, "concurrency")
        assert pred["scaleTarget"] >= 1
        assert model["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
        assert model["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
        ann = obj["metadata"]["annotations"]
        assert ann["prometheus.kserve.io/path"] == "/metrics" and ann["prometheus.io/scrape"] == "true"
        assert model["storageUri"].startswith("s3://models/attnx/")
        assert model["resources"]["requests"]["memory"].endswith("Mi")
        if name.endswith("-triton.inferenceservice.yaml"):
            assert model["modelFormat"]["name"] == "triton" and model["runtimeVersion"] == "24.08-py3"
            assert ann["prometheus.kserve.io/port"] == "8002"
            repo = out / "triton" / model["storageUri"].rsplit("/", 1)[1]
            assert (repo / repo.name / "config.pbtxt").is_file()  # the one-model Triton repository
        else:
            assert model["runtime"] == "attnx-serve" and ann["prometheus.kserve.io/port"] == "8080"
            bundle = out / "bundles" / model["storageUri"].rsplit("/", 1)[1]
            assert (bundle / "manifest.json").is_file()
    # memory was measured by loading each bundle; requests follow it
    sizes = json.loads((out / "resources.json").read_text())["models"]
    assert {m.name for m in models} == {"tiny", "ov_tiny"}
    for m in models:
        assert m.memory.method == "measured" and m.memory.process_peak_bytes > 50 << 20
        assert sizes[m.name]["process_peak_bytes"] == m.memory.process_peak_bytes
    attnx = objects["tiny-attnx.inferenceservice.yaml"]["spec"]["predictor"]["model"]
    peak_mib = sizes["tiny"]["process_peak_bytes"] / 2**20
    assert peak_mib * 1.25 <= int(attnx["resources"]["requests"]["memory"][:-2]) <= peak_mib * 1.25 + 32
    runtime = objects["attnx-serve.servingruntime.yaml"]["spec"]["containers"][0]
    assert runtime["args"][:1] == ["{{.Name}}=/mnt/models"] and "--grpc-port" in runtime["args"]
    assert (out / "attnx-runtime" / "Dockerfile").read_text().count("attnx") > 3


@pytest.mark.parametrize(
    "mutate, words",
    [
        (lambda o: o["spec"]["predictor"]["model"].update(resources={"requests": {"memory": "12 GB"}}), "memory"),
        (lambda o: o["spec"]["predictor"]["model"]["readinessProbe"]["httpGet"].pop("port"), "port"),
        (lambda o: o["spec"]["predictor"].update(scaleMetric="latency"), "scaleMetric"),
        (lambda o: o["spec"]["predictor"]["model"].update(readinesProbe={}), "readinesProbe"),
        (lambda o: o["metadata"].update(name="Tiny_Model"), "name"),
        (lambda o: o["spec"]["predictor"]["model"].update(protocolVersion="v3"), "protocolVersion"),
    ],
)
def test_schemas_refuse_broken_manifests(written, mutate, words):
    out, _ = written
    obj = copy.deepcopy(load_manifest_file(out / "tiny-attnx.inferenceservice.yaml"))
    mutate(obj)
    with pytest.raises(UserError, match="does not fit the InferenceService schema"):
        k8s_schema.validate(obj)
    assert any(words in e for e in k8s_schema.errors(obj, k8s_schema.INFERENCE_SERVICE))


def test_tensorrt_version_must_match_the_runtime():
    plan = SimpleNamespace(libraries={"tensorrt": "10.3.0.26"})
    assert check_tensorrt(Path("b"), plan, "24.08", None) == "10.3.0"
    with pytest.raises(UserError, match=r"TensorRT 10.3.0 plan, but Triton 24.05 runs TensorRT 10.0.1.*24.08"):
        check_tensorrt(Path("b"), plan, "24.05", None)
    with pytest.raises(UserError, match="not in attnx's table"):
        check_tensorrt(Path("b"), plan, "19.01", None)
    assert check_tensorrt(Path("b"), plan, "26.01", "10.3.0.30") == "10.3.0"  # stated by the user
    with pytest.raises(UserError, match="records no TensorRT version"):
        check_tensorrt(Path("b"), SimpleNamespace(libraries={}), "24.08", None)


def test_names_and_options(bundles, tmp_path):
    assert k8s_name("SE_ResNet.v2", "attnx") == "se-resnet-v2-attnx" and k8s_name("9net", "triton") == "m-9net-triton"
    with pytest.raises(UserError, match="--max-replicas"):
        write_manifests([str(bundles["tiny"])], tmp_path / "a", min_replicas=3, max_replicas=2, measure=False)
    with pytest.raises(UserError, match="--triton-version"):
        write_manifests([str(bundles["tiny"])], tmp_path / "a", triton_version="latest", measure=False)


def test_command_line(bundles, tmp_path):
    from attnx.deploy.cli.main import app

    out = tmp_path / "m"
    result = CliRunner().invoke(app, ["k8s", f"tiny={bundles['tiny']}", "-o", str(out), "--no-measure",
                                      "--namespace", "ml", "--target-concurrency", "4"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "tiny (ort): memory estimated" in result.output
    isvc = load_manifest_file(out / "tiny-attnx.inferenceservice.yaml")
    assert isvc["metadata"]["namespace"] == "ml" and isvc["spec"]["predictor"]["scaleTarget"] == 4
    again = CliRunner().invoke(app, ["k8s", str(bundles["tiny"]), "-o", str(out), "--no-measure"])
    assert again.exit_code != 0 and "pass --force" in again.output
