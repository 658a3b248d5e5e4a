"""Saving and loading a parity run's inputs and outputs, and replaying it elsewhere."""

import numpy as np
import pytest

from attnx.core.errors import UserError
from attnx.deploy.backends.base import TensorSpec
from attnx.deploy.parity.compare import POLICIES
from attnx.deploy.parity.saved_io import IOCase, check_io_inputs, load_io, replay, save_io

SPEC = [TensorSpec("input", np.dtype(np.float32), ("batch", 3, 4, 4))]


def cases():
    rng = np.random.default_rng(0)
    out = []
    for b in (1, 3):
        x = rng.standard_normal((b, 3, 4, 4)).astype(np.float32)
        y = x.reshape(b, -1)[:, :5].copy()
        out.append(IOCase(f"batch {b}", {"input": x}, {"reference": {"logits": y}, "candidate": {"logits": y + 1e-6}}))
    return out


def test_round_trip_keeps_every_array_and_the_header(tmp_path):
    path = save_io(tmp_path / "run.npz", cases(), {"model": "cbam_resnet", "backends": {"reference": "torch"}})
    saved = load_io(path)
    assert saved.meta["model"] == "cbam_resnet" and saved.meta["format"] == "attnx-parity-io"
    assert [c.label for c in saved.cases] == ["batch 1", "batch 3"] and saved.roles == ["candidate", "reference"]
    for a, b in zip(cases(), saved.cases):
        assert np.array_equal(a.inputs["input"], b.inputs["input"]) and b.inputs["input"].dtype == np.float32
        assert np.array_equal(a.outputs["candidate"]["logits"], b.outputs["candidate"]["logits"])
    assert [lbl for lbl, _ in saved.feeds()] == ["batch 1", "batch 3"]
    assert not list(tmp_path.glob(".*"))  # no temporary file left behind
    check_io_inputs(saved, SPEC)


def test_replay_compares_a_fresh_backend_with_the_saved_reference(tmp_path):
    saved = load_io(save_io(tmp_path / "run.npz", cases()))

    def same(feed):
        x = feed["input"]
        return {"logits": x.reshape(x.shape[0], -1)[:, :5]}

    assert all(c.passed for c in replay(saved, same, POLICIES["fp32"]))
    broken = replay(saved, lambda f: {"logits": same(f)["logits"] + 0.5}, POLICIES["fp32"])
    assert not any(c.passed for c in broken)
    with pytest.raises(UserError, match="same model"):
        replay(saved, lambda f: {"logits": np.zeros((1, 2), np.float32)}, POLICIES["fp32"])
    with pytest.raises(UserError, match="no outputs for 'torch'"):
        replay(saved, same, POLICIES["fp32"], against="torch")


def test_bad_files_and_mismatched_inputs(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_io(tmp_path / "none.npz")
    (tmp_path / "bad.npz").write_bytes(b"garbage")
    with pytest.raises(UserError, match="corrupt or truncated"):
        load_io(tmp_path / "bad.npz")
    np.savez(tmp_path / "plain.npz", input=np.zeros(3))
    with pytest.raises(UserError, match="not an attnx parity I/O file"):
        load_io(tmp_path / "plain.npz")
    with pytest.raises(UserError, match=r"\.npz"):
        save_io(tmp_path / "run.npy", cases())
    saved = load_io(save_io(tmp_path / "run.npz", cases()))
    with pytest.raises(UserError, match="axis 2"):
        check_io_inputs(saved, [TensorSpec("input", np.dtype(np.float32), ("batch", 3, 8, 8))])
    with pytest.raises(UserError, match="lack the model input"):
        check_io_inputs(saved, [TensorSpec("image", np.dtype(np.float32), ("batch", 3, 4, 4))])


def test_meta_cannot_overwrite_the_format_or_version(tmp_path):
    path = save_io(tmp_path / "run.npz", cases(), {"format": "other", "version": 999, "model": "m"})
    saved = load_io(path)
    assert saved.meta["format"] == "attnx-parity-io" and saved.meta["model"] == "m"
