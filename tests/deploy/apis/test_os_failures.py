"""Operating-system and library failures become one line (issue 12, section 4).

Each case: exit code 2, one line on stderr naming the problem and the fix, no traceback, and nothing
half-written left behind. Disk full and read-only destinations are simulated by patching the write that
fails (as the OS would: an OSError with its errno); a real small tmpfs runs too where this user may mount one.
"""

import errno
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from attnx.core.errors import library_error_message, os_error_message
from attnx.core.tempdirs import STALE_AFTER_S, owned_prefix, sweep_build_leftovers, sweep_stale
from attnx.deploy.bundle.manifest import MANIFEST_NAME
from tests.helpers import assert_user_error as _assert_user_error
from tests.helpers import invoke

TINY = "tests.fixtures:tiny_net"
SHAPE = (1, 3, 16, 16)


def enospc(*args, **kwargs):
    """What a failed write() raises: no file named."""
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def edit_manifest(bundle, change):
    data = json.loads((bundle / MANIFEST_NAME).read_text())
    change(data)
    (bundle / MANIFEST_NAME).write_text(json.dumps(data))


def assert_user_error(result, *fragments):
    """The one error line (after any warning lines: the tiny test model is not a zoo model, so a build from
    its ONNX warns that it is checked against the fp32 ONNX)."""
    lines = result.stderr.strip().splitlines()
    warnings = [i for i, line in enumerate(lines) if line.startswith("warning:")]
    if warnings:
        result.stderr_bytes = "\n".join(lines[max(warnings) + 1 :]).encode()
    _assert_user_error(result, *fragments)


def no_traceback(result):
    assert "Traceback" not in result.output, result.output


# --- paths that cannot be written -------------------------------------------------------------------------


def test_output_under_a_file(exported, tmp_path):
    (tmp_path / "afile").write_text("x")
    result = invoke("export", TINY, "-o", tmp_path / "afile" / "m.onnx", "--input-shape", "1x3x16x16")
    assert_user_error(result, "afile", "a file of that name is in the way", "choose another path")
    result = invoke("build", exported, "-o", tmp_path / "afile" / "b", "--backend", "ort")
    assert_user_error(result, "afile", "choose another path")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_bundle_output_that_is_a_file(exported, tmp_path):
    (tmp_path / "afile").write_text("x")
    result = invoke("build", exported, "-o", tmp_path / "afile", "--backend", "ort")
    assert_user_error(result, "is a file, not a folder", "give a new or empty folder")
    assert (tmp_path / "afile").read_text() == "x"


@pytest.mark.parametrize("code", [errno.EROFS, errno.EACCES])
def test_unwritable_destination(exported, tmp_path, monkeypatch, code):
    """A read-only or unwritable folder (patched: root writes anywhere), at the first file made in it."""
    ro = tmp_path / "ro"
    ro.mkdir()
    real_mkstemp, real_mkdtemp = tempfile.mkstemp, tempfile.mkdtemp

    def refuse(real):
        def make(suffix=None, prefix=None, dir=None, *args):
            if dir is not None and Path(dir) == ro:
                raise OSError(code, os.strerror(code), str(Path(dir) / f"{prefix or ''}XXXX"))
            return real(suffix, prefix, dir, *args)

        return make

    monkeypatch.setattr(tempfile, "mkstemp", refuse(real_mkstemp))
    monkeypatch.setattr(tempfile, "mkdtemp", refuse(real_mkdtemp))
    what = "read-only file system" if code == errno.EROFS else "permission denied"
    result = invoke("build", exported, "-o", ro / "b", "--backend", "ort")
    assert_user_error(result, f"{ro / 'b'}: {what}", "write")  # the user's path, not the hidden work folder
    result = invoke("precision", exported, "-o", ro / "p.onnx", "--precision", "fp16")
    assert_user_error(result, f"{ro / 'p.onnx'}: {what}")
    result = invoke("parity", exported, "--model", TINY, "--batch", "1", "--json", ro / "p.json")
    assert_user_error(result, f"{ro / 'p.json'}: {what}")
    assert list(ro.iterdir()) == []


# --- disk full at every stage -----------------------------------------------------------------------------


def test_disk_full_export(tmp_path, monkeypatch):
    monkeypatch.setattr("onnx.save", enospc)
    result = invoke("export", TINY, "-o", tmp_path / "m.onnx", "--input-shape", "1x3x16x16")
    assert_user_error(result, f"{tmp_path / 'm.onnx'}: no space left on the device (ENOSPC)", "free some space")
    assert list(tmp_path.iterdir()) == []


def test_disk_full_build(exported, tmp_path, monkeypatch):
    monkeypatch.setattr("onnx.save", enospc)
    result = invoke("build", exported, "-o", tmp_path / "b", "--backend", "ort")
    assert_user_error(result, f"{tmp_path / 'b'}: no space left on the device", "free some space")
    assert list(tmp_path.iterdir()) == []


def test_disk_full_precision_leaves_no_sidecar(exported, tmp_path, monkeypatch):
    real = Path.write_bytes

    def write_bytes(self, data):
        if self.parent == tmp_path and self.name.startswith(".p.onnx."):  # the model's work file: the disk fills
            enospc()
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", write_bytes)
    result = invoke("precision", exported, "-o", tmp_path / "p.onnx", "--precision", "fp16")
    assert_user_error(result, f"{tmp_path / 'p.onnx'}: no space left on the device")
    assert list(tmp_path.iterdir()) == []  # no plan.json without its model


def test_disk_full_triton_repo_leaves_no_folder(built, tmp_path, monkeypatch):
    def copyfile(src, dst, *a, **k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(src), str(dst))

    monkeypatch.setattr("attnx.deploy.serving.triton_repo.shutil.copyfile", copyfile)
    result = invoke("triton-repo", built, "-o", tmp_path / "repo", "--no-check")
    assert_user_error(result, f"{tmp_path / 'repo'}: no space left on the device")
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def small_tmpfs(tmp_path):
    """A real 64 KiB file system, where this user may mount one (root on Linux); else skipped."""
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    if sys.platform != "linux" or os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a tmpfs needs root on Linux")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def test_disk_full_on_a_real_tmpfs(exported, built, small_tmpfs):
    with open(small_tmpfs / "filler", "wb", buffering=0) as f:  # fill it to the last byte
        with pytest.raises(OSError):
            while True:
                f.write(bytes(1024))
    result = invoke("build", exported, "-o", small_tmpfs / "b", "--backend", "ort")
    assert_user_error(result, f"{small_tmpfs / 'b'}: no space left on the device (ENOSPC)")
    result = invoke("precision", exported, "-o", small_tmpfs / "p.onnx", "--precision", "fp16")
    assert_user_error(result, "p.onnx: no space left on the device (ENOSPC)")
    result = invoke("triton-repo", built, "-o", small_tmpfs / "repo", "--no-check")
    assert_user_error(result, f"{small_tmpfs / 'repo'}: no space left on the device (ENOSPC)")
    assert [p.name for p in small_tmpfs.iterdir()] == ["filler"]


def test_other_os_errors_stay_tracebacks():
    """Only errors the user can fix become one line; anything else is a bug to see whole."""
    assert os_error_message(OSError(errno.ENOENT, "No such file or directory", "x")) is None
    assert os_error_message(OSError(errno.EIO, "I/O error")) is None
    assert library_error_message(KeyError("x")) is None
    line = os_error_message(OSError(errno.ENOSPC, "No space left on device", "/d/x"))
    assert line.startswith("/d/x: no space left") and "\n" not in line


# --- bad files and data -----------------------------------------------------------------------------------


def test_empty_onnx(tmp_path):
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    assert_user_error(invoke("build", empty, "-o", tmp_path / "b", "--backend", "ort"), "is empty (0 bytes)")
    result = invoke("parity", empty)
    assert_user_error(result, "is empty (0 bytes)", "export it again")
    assert "not exported by attnx" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.onnx"]


def test_nan_calibration_data(exported, tmp_path):
    data = np.random.default_rng(0).standard_normal((8, *SHAPE[1:])).astype(np.float32)
    data[3, 0, 0, 0] = np.nan
    np.save(tmp_path / "nan.npy", data)
    result = invoke("build", exported, "-o", tmp_path / "b", "--backend", "ort", "--precision", "int8",
                    "--calib", f"source={tmp_path / 'nan.npy'}")  # fmt: skip
    assert_user_error(result, "nan.npy", "1 NaN or infinite value(s)", "finite")
    assert not (tmp_path / "b").exists()


def test_string_inputs(exported, tmp_path):
    np.save(tmp_path / "s.npy", np.full(SHAPE, "x"))
    result = invoke("parity", exported, "--model", TINY, "--inputs", tmp_path / "s.npy")
    assert_user_error(result, "not numbers", "float32")


def test_manifest_holding_a_list(bundle):
    (bundle / MANIFEST_NAME).write_text("[1, 2]")
    assert_user_error(invoke("bench", bundle), "holds a list, not an object", "rebuild")


@pytest.mark.parametrize(
    ("change", "said"),
    [
        (lambda m: m["inputs"][0].update(name="x"), "inputs ['x'] in the manifest, ['input'] in the engine"),
        (lambda m: m["inputs"][0].update(shape=["batch", 3, 32, 32], profile=None), "has shape ['batch', 3, 32, 32]"),
        (lambda m: m["inputs"][0].update(dtype="float16"), "is float16 in the manifest, float32 in the engine"),
    ],
)
def test_manifest_and_engine_disagree(bundle, change, said):
    """Said once, when the bundle opens: not ONNX Runtime's refusal of an input (as if the model rejected it)."""
    edit_manifest(bundle, change)
    for command in (["parity", bundle], ["bench", bundle, "--no-torch", "--iterations", "1", "--warmup", "0"]):
        assert_user_error(invoke(*command), "does not match engine.onnx", said, "rebuild the bundle")


# --- unclear messages -------------------------------------------------------------------------------------


def test_missing_bundle_path_is_not_called_a_zoo_model(tmp_path):
    result = invoke("parity", tmp_path / "nosuch" / "bundle")
    assert_user_error(result, "not found", "attnx build")
    assert "unknown model" not in result.output


def test_refused_pickle_keeps_torchs_advice(tmp_path):
    import torch

    class Payload:
        def __reduce__(self):
            return (os.getpid, ())

    torch.save({"w": Payload()}, tmp_path / "evil.pt")
    result = invoke("export", TINY, "-o", tmp_path / "m.onnx", "--weights", tmp_path / "evil.pt")
    assert_user_error(result, "refuses to load", "can run any code", "Only if you trust its source")
    assert not (tmp_path / "m.onnx").exists()


def test_float64_and_int64_inputs_are_said(exported, tmp_path):
    np.save(tmp_path / "f64.npy", np.zeros(SHAPE, np.float64))
    np.save(tmp_path / "i64.npy", np.zeros(SHAPE, np.int64))
    result = invoke("parity", exported, "--model", TINY, "--batch", "1", "--inputs", tmp_path / "f64.npy")
    assert result.exit_code == 0, result.output
    assert "is float64; rounded to the model's float32" in result.stderr
    result = invoke("parity", exported, "--model", TINY, "--batch", "1", "--inputs", tmp_path / "i64.npy")
    assert result.exit_code == 0, result.output
    assert "is int64; cast to the model's float32" in result.stderr
    # a float64 array of the wrong shape is a shape problem, and said as one
    np.save(tmp_path / "f64bad.npy", np.zeros((1, 3, 8, 8), np.float64))
    result = invoke("parity", exported, "--model", TINY, "--inputs", tmp_path / "f64bad.npy")
    assert_user_error(result, "axis 2", "fixed at 16")


# --- silently wrong ---------------------------------------------------------------------------------------


def test_bench_batch_beyond_every_bundle(built):
    result = invoke("bench", built, "--batch", "100", "--no-torch", "--iterations", "1", "--warmup", "0")
    assert_user_error(result, "no bundle was timed", "skipped at batch 100", "--max-batch")


def test_openvino_fp16_is_refused(exported, tmp_path):
    result = invoke("build", exported, "-o", tmp_path / "b", "--backend", "openvino", "--precision", "fp16")
    assert_user_error(result, "OpenVINO's CPU plugin has no fp16 path", "--backend ort")
    assert not (tmp_path / "b").exists()


def test_zero_classes(tmp_path):
    result = invoke("export", TINY, "-o", tmp_path / "m.onnx", "--num-classes", "0")
    assert_user_error(result, "--num-classes must be ≥ 1, got 0")


def test_grayscale_calibration_images_are_said(exported, tmp_path):
    from PIL import Image

    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 255, (20, 20), dtype=np.uint8), "L").save(images / f"g{i}.png")
    Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(images / "c.png")
    result = invoke("build", exported, "-o", tmp_path / "b", "--backend", "ort", "--precision", "int8",
                    "--calib", f"source={images}")  # fmt: skip
    assert result.exit_code in (0, 1), result.output  # built (its parity verdict is not the point here)
    assert result.stderr.count("4 of 5 images") == 1, result.stderr
    assert "grayscale; converted to RGB" in result.stderr
    manifest = json.loads((tmp_path / "b" / MANIFEST_NAME).read_text())
    assert "4 of 5 images converted to RGB" in json.dumps(manifest["calibration"])


# --- work folders of killed runs --------------------------------------------------------------------------


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_stale_work_folders_are_swept_and_live_ones_kept(tmp_path):
    dead, now = dead_pid(), time.time()
    old = now - STALE_AFTER_S - 60
    folders = {
        "killed": tmp_path / f"attnx-build-{dead}-abc12345",
        "killed_qdq": tmp_path / f"attnx-ort-qdq-{dead}-abc12345",
        "live": tmp_path / f"{owned_prefix('attnx-build-')}abc12345",
        "young": tmp_path / f"attnx-parity-{dead}-young123",
        "no_pid": tmp_path / "attnx-build-abc12345",  # made before attnx named its owner: never swept
        "other": tmp_path / f"someone-else-{dead}-abc12345",
    }
    for name, folder in folders.items():
        folder.mkdir()
        (folder / "model.onnx").write_text("x")
        if name != "young":
            os.utime(folder, (old, old))
    removed = sweep_stale(tmp_path, ("attnx-build-", "attnx-ort-qdq-", "attnx-parity-"))
    assert sorted(removed) == sorted([folders["killed"], folders["killed_qdq"]])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(folders[k].name for k in
                                                                ("live", "young", "no_pid", "other"))  # fmt: skip


def test_a_build_sweeps_what_a_killed_build_left(exported, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    dead = dead_pid()
    old = time.time() - STALE_AFTER_S - 60
    left = [tmp_path / "tmp" / f"attnx-build-{dead}-abcdefgh", tmp_path / "tmp" / f"attnx-ort-qdq-{dead}-abcdefgh",
            tmp_path / f".b.best-{dead}-abcdefgh", tmp_path / f".b.{dead}-abcdefgh"]  # fmt: skip
    for folder in left:
        folder.mkdir()
        os.utime(folder, (old, old))
    result = invoke("build", exported, "-o", tmp_path / "b", "--backend", "ort")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b", "tmp"]
    assert list((tmp_path / "tmp").iterdir()) == []
    assert sweep_build_leftovers(tmp_path / "b") == []


def test_parity_of_a_model_that_fails_to_export_leaves_no_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    result = invoke("parity", "tests.fixtures:unexportable_net")
    assert result.exit_code == 2, result.output
    no_traceback(result)
    assert list(tmp_path.iterdir()) == []
