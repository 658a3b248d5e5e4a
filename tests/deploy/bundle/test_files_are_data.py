"""Files are data, never code (issue 12, sections 1 and 2).

A model name read from a file selects a zoo model only; a bundle's manifest may name only files inside the
bundle, each hashed; a bundle whose build-time parity failed runs only when the user says so; ONNX external
data is read from beside the model only. One test per attack: the exit code and the one line.
"""

import json
import os
import shutil
import sys

import onnx
import pytest

from attnx.core.errors import UserError
from attnx.deploy.bundle.engine import Engine
from attnx.deploy.bundle.manifest import MANIFEST_NAME, load_manifest, sha256_file
from tests.helpers import assert_user_error, invoke

TINY = "tests.fixtures:tiny_net"
SHAPE = (1, 3, 16, 16)
HELPER = "attnx_evil_helper"  # a module name nothing else uses: sys.modules cannot hide an import


@pytest.fixture(autouse=True)
def never_listen(monkeypatch):
    """`attnx serve` must refuse these bundles while loading them; should one load, fail instead of serving."""

    def bind(host, port):
        raise AssertionError("attnx serve got as far as listening")

    monkeypatch.setattr("attnx.deploy.serving.cli.bind", bind)


def edit_manifest(bundle, change):
    data = json.loads((bundle / MANIFEST_NAME).read_text())
    change(data)
    (bundle / MANIFEST_NAME).write_text(json.dumps(data))


def with_model_name(src, dest, name):
    proto = onnx.load(str(src))
    for prop in proto.metadata_props:
        if prop.key == "attnx.model":
            prop.value = name
    onnx.save(proto, str(dest))
    return dest


@pytest.fixture
def helper_in_cwd(tmp_path, monkeypatch):
    """A folder holding a helper module whose import leaves a mark, as the current folder."""
    mark = tmp_path / "IMPORTED"
    (tmp_path / f"{HELPER}.py").write_text(
        f"open({str(mark)!r}, 'w').write('ran')\n"
        "def build(**kw):\n    from tests.fixtures import tiny_net\n    return tiny_net()\n"
    )
    monkeypatch.chdir(tmp_path)
    sys.modules.pop(HELPER, None)
    yield mark
    sys.modules.pop(HELPER, None)


# ------------------------------------------------------------------------------------------------
# 1. A model name read from a file selects a zoo model, nothing else


def test_metadata_naming_a_helper_in_the_current_folder_is_not_imported(exported, helper_in_cwd, tmp_path):
    onnx_path = with_model_name(exported, tmp_path / "downloaded.onnx", f"{HELPER}:build")
    assert_user_error(invoke("parity", onnx_path), "not a zoo model", f"--model {HELPER}:build")
    result = invoke("build", onnx_path, "-o", tmp_path / "out", "--backend", "ort")
    assert result.exit_code == 0, result.output  # built, checked against the fp32 ONNX instead
    assert "not a zoo model" in result.stderr
    assert load_manifest(tmp_path / "out").source["reference"] == "onnxruntime fp32"
    assert not helper_in_cwd.exists() and HELPER not in sys.modules
    assert str(tmp_path) not in sys.path


def test_a_factory_named_on_the_command_line_still_imports_from_the_current_folder(exported, helper_in_cwd, tmp_path):
    result = invoke("parity", exported, "--model", f"{HELPER}:build", "--batch", "1")
    assert result.exit_code == 0, result.output
    assert helper_in_cwd.exists()  # the user named it: the user trusts it
    assert str(tmp_path) not in sys.path  # and the folder does not shadow later imports


def test_metadata_naming_os_getpid_is_not_called(exported, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(os, "getpid", lambda: calls.append(1) or 1)
    onnx_path = with_model_name(exported, tmp_path / "m.onnx", "os:getpid")
    assert_user_error(invoke("parity", onnx_path), "names model 'os:getpid', which is not a zoo model")
    assert not calls


def test_bundle_naming_a_helper_is_checked_against_its_fp32_onnx(bundle, helper_in_cwd, tmp_path):
    reference = bundle / load_manifest(bundle).files["reference"]
    with_model_name(reference, reference, f"{HELPER}:build")
    edit_manifest(bundle, lambda d: (d["source"].update(model=f"{HELPER}:build", reference="torch"),
                                     d["sha256"].update({reference.name: sha256_file(reference)})))  # fmt: skip
    result = invoke("parity", bundle, "--json", tmp_path / "p.json")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "p.json").read_text())["reference"].startswith("onnxruntime fp32")
    assert "not a zoo model" in result.stderr
    assert_user_error(invoke("bench", bundle, "--iterations", "2"), "not a zoo model", "--no-torch")
    assert not helper_in_cwd.exists() and HELPER not in sys.modules


# ------------------------------------------------------------------------------------------------
# 2. Bundles that lie


def test_engine_path_climbing_out_of_the_bundle(bundle, tmp_path):
    (tmp_path / "outside").mkdir()
    shutil.copyfile(bundle / "engine.onnx", tmp_path / "outside" / "engine.onnx")
    name, digest = "../outside/engine.onnx", sha256_file(tmp_path / "outside" / "engine.onnx")
    edit_manifest(bundle, lambda d: (d["files"].update(engine=name), d["sha256"].pop("engine.onnx"),
                                     d["sha256"].update({name: digest})))  # fmt: skip
    with pytest.raises(UserError, match="names a file outside itself"):
        Engine.load(bundle)
    assert_user_error(invoke("serve", bundle, "--port", "0"), "outside itself", "../outside/engine.onnx")


def test_absolute_engine_path(bundle, tmp_path):
    target = shutil.copyfile(bundle / "engine.onnx", tmp_path / "elsewhere.onnx")
    edit_manifest(bundle, lambda d: (d["files"].update(engine=str(target)),
                                     d["sha256"].update({str(target): sha256_file(target)})))  # fmt: skip
    assert_user_error(invoke("serve", bundle, "--port", "0"), "outside itself")
    with pytest.raises(UserError, match="outside itself"):
        load_manifest(bundle, verify=False)  # the path check does not depend on hashing


def test_symlink_out_of_the_bundle(bundle, tmp_path):
    outside = shutil.copyfile(bundle / "engine.onnx", tmp_path / "other-engine.onnx")
    (bundle / "engine.onnx").unlink()
    (bundle / "engine.onnx").symlink_to(outside)  # same bytes, so the SHA-256 would pass
    assert_user_error(invoke("serve", bundle, "--port", "0"), "link to a file outside the bundle")


def test_empty_sha256_map(bundle):
    edit_manifest(bundle, lambda d: d["sha256"].clear())
    assert_user_error(invoke("serve", bundle, "--port", "0"), "records no SHA-256")
    with pytest.raises(UserError, match="records no SHA-256"):
        Engine.load(bundle)


def test_sha256_map_lacking_the_engine(bundle):
    edit_manifest(bundle, lambda d: d["sha256"].pop("engine.onnx"))
    assert_user_error(invoke("serve", bundle, "--port", "0"), "no SHA-256 for engine.onnx")


def test_failed_recorded_parity_is_refused_then_allowed_with_a_warning(bundle, tmp_path, capsys):
    edit_manifest(bundle, lambda d: d["parity"].update(passed=False))
    with pytest.raises(UserError, match="failed its parity check when it was built.*--allow-failed-parity"):
        Engine.load(bundle)
    assert_user_error(invoke("serve", bundle, "--port", "0"), "failed its parity check", "--allow-failed-parity")
    assert_user_error(invoke("bench", bundle, "--no-torch", "--iterations", "2"), "--allow-failed-parity")
    assert_user_error(invoke("triton-repo", bundle, "-o", tmp_path / "repo"), "--allow-failed-parity")
    assert_user_error(invoke("k8s", bundle, "-o", tmp_path / "k8s", "--no-measure"), "--allow-failed-parity")
    # allowed for `attnx k8s`, the server it deploys must be allowed too, or the pod would refuse the bundle
    result = invoke("k8s", bundle, "-o", tmp_path / "k8s", "--no-measure", "--allow-failed-parity")
    assert result.exit_code == 0, result.output
    from attnx.deploy.serving.k8s import load_manifest_file

    (isvc,) = tmp_path.joinpath("k8s").glob("*-attnx.inferenceservice.yaml")
    assert "--allow-failed-parity" in load_manifest_file(isvc)["spec"]["predictor"]["model"]["args"]
    capsys.readouterr()
    for _ in range(2):  # a warning on every load
        with Engine.load(bundle, allow_failed_parity=True) as engine:
            assert engine(__import__("numpy").zeros(SHAPE, "float32"))["output"].shape == (1, 4)
    assert capsys.readouterr().err.count("warning: bundle") == 2
    result = invoke("bench", bundle, "--no-torch", "--iterations", "2", "--warmup", "0", "--allow-failed-parity")
    assert result.exit_code == 0, result.output
    assert "failed its parity check" in result.stderr and "warning:" in result.stderr
    from attnx.deploy.serving.models import load_models

    models = load_models([str(bundle)], max_batch=1, max_delay_ms=0, pool_size=1, threads=1, max_queue=4,
                         warmup=False, allow_failed_parity=True)  # fmt: skip
    for m in models:
        m.close()
    # `attnx parity BUNDLE` is how a failed bundle is diagnosed: it runs, and says what was recorded
    result = invoke("parity", bundle, "--batch", "1")
    assert result.exit_code == 0, result.output
    assert "recorded when" in result.stderr and "FAILED" in result.stderr


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (lambda d: d.update(format_version="1"), "no valid format_version"),
        (lambda d: d.update(format_version=99), "newer than this attnx reads"),
        (lambda d: d.update(files=["engine.onnx"]), "'files' is not an object"),
    ],
)
def test_manifest_format_and_shape_are_checked(bundle, change, fragment):
    edit_manifest(bundle, change)
    assert_user_error(invoke("serve", bundle, "--port", "0"), fragment)


def test_manifest_holding_a_list(bundle):
    (bundle / MANIFEST_NAME).write_text("[1, 2]")
    assert_user_error(invoke("serve", bundle, "--port", "0"), "corrupt", "holds a list")


# ------------------------------------------------------------------------------------------------
# ONNX external data


def save_with_external_data(src, dest, location):
    proto = onnx.load(str(src))
    onnx.save(proto, str(dest), save_as_external_data=True, all_tensors_to_one_file=True,
              location=os.path.basename(location), size_threshold=0)  # fmt: skip
    if os.path.basename(location) != location:  # point the model at the data by another path
        proto = onnx.load(str(dest), load_external_data=False)
        for t in proto.graph.initializer:
            for entry in t.external_data:
                if entry.key == "location":
                    entry.value = location
        onnx.save(proto, str(dest))
    return dest


def test_external_data_outside_the_model_folder(exported, tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "outside").mkdir()
    save_with_external_data(exported, tmp_path / "outside" / "donor.onnx", "w.data")  # writes outside/w.data
    evil = save_with_external_data(exported, tmp_path / "models" / "evil.onnx", "../outside/w.data")
    assert_user_error(invoke("build", evil, "-o", tmp_path / "b", "--backend", "ort"), "outside the model's folder")
    assert_user_error(invoke("parity", evil, "--model", TINY), "outside the model's folder")
    assert not (tmp_path / "b").exists()


def test_a_model_with_external_data_beside_it_builds(exported, tmp_path):
    model = save_with_external_data(exported, tmp_path / "ext.onnx", "ext.onnx.data")
    assert (tmp_path / "ext.onnx.data").is_file()
    result = invoke("build", model, "-o", tmp_path / "b", "--backend", "ort", "--model", TINY)
    assert result.exit_code == 0, result.output
    manifest = load_manifest(tmp_path / "b")
    assert manifest.parity["passed"] and manifest.source["reference"] == "torch"
    with Engine.load(tmp_path / "b") as engine:  # self-contained: the bundle does not reach for ext.onnx.data
        assert engine.manifest.files["engine"] == "engine.onnx"


def test_bundle_onnx_reading_external_data_is_refused(bundle, tmp_path):
    save_with_external_data(bundle / "model.onnx", bundle / "model.onnx", "model.data")
    edit_manifest(bundle, lambda d: d["sha256"].update({"model.onnx": sha256_file(bundle / "model.onnx")}))
    assert_user_error(invoke("serve", bundle, "--port", "0"), "external data")
