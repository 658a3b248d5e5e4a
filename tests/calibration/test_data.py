"""Calibration data sources: digits, photos, synthetic, image folders, .npy/.npz; shapes and errors."""

import numpy as np
import pytest
from PIL import Image

from attnx.calibration.config import IMAGENET_MEAN, IMAGENET_STD, CalibrationConfig
from attnx.calibration.data import image_input, load_split
from attnx.calibration.graph import InputInfo
from attnx.core.errors import UserError

NCHW = [InputInfo("input", 1, ["batch", 3, 32, 24])]
DYNAMIC = [InputInfo("input", 1, ["batch", 3, "h", "w"])]
GRAY = [InputInfo("input", 1, ["batch", 1, 28, 28])]


def split(inputs, **options):
    return load_split(inputs, CalibrationConfig.from_dict(options))


def test_digits_fill_the_model_shape_train_split_for_calibration_test_split_for_checks():
    from attnx.calibration.data import DIGITS_MEAN, DIGITS_STD

    calib, held = split(NCHW, count=10, eval_count=6)
    x, y = calib.arrays["input"], held.arrays["input"]
    assert x.shape == (10, 3, 32, 24) and y.shape == (6, 3, 32, 24) and x.dtype == np.float32
    assert not calib.synthetic and "train split" in calib.description and "test split" in held.description
    assert calib.labels.shape == (10,) and set(held.labels) <= set(range(10))
    pixels = x * DIGITS_STD + DIGITS_MEAN  # normalised with the digits' own statistics, as in training
    assert np.allclose(pixels[:, 0], pixels[:, 1]) and pixels.min() > -1e-5 and pixels.max() < 1 + 1e-5
    assert not any(np.array_equal(a, b) for a in x for b in y)
    again, _ = split(NCHW, count=10, eval_count=6)
    assert calib.sha256() == again.sha256()
    other, _ = split(NCHW, count=10, eval_count=6, seed=1)
    assert other.sha256() != calib.sha256()
    imagenet, _ = split(NCHW, count=2, eval_count=0, mean=IMAGENET_MEAN, std=IMAGENET_STD)
    assert not np.allclose(imagenet.arrays["input"][:, 0], imagenet.arrays["input"][:, 1])


def test_digits_match_the_training_pipeline():
    """Same split, upsampling and normalisation as attnx.exporters.digits (which trains the zoo on digits)."""
    digits = pytest.importorskip("attnx.exporters.digits")
    calib, held = split(NCHW, count=1347, eval_count=450)
    x_test, y_test = digits.digits("test", (3, 32, 24))
    order = np.random.default_rng(0).permutation(len(y_test))
    assert np.allclose(held.arrays["input"], x_test[order], atol=1e-5)
    assert np.array_equal(held.labels, y_test[order])
    x_train, _ = digits.digits("train", (3, 32, 24))
    assert np.allclose(calib.arrays["input"], x_train[np.random.default_rng(0).permutation(len(x_train))], atol=1e-5)


def test_photos_are_real_crops_and_synthetic_is_flagged():
    calib, _ = split(NCHW, source="photos", count=4, eval_count=2)
    assert calib.arrays["input"].shape == (4, 3, 32, 24) and not calib.synthetic
    assert calib.arrays["input"].std(axis=(1, 2, 3)).min() > 0.05  # crops of photographs, not flat images
    syn, held = split(NCHW, source="synthetic", count=4, eval_count=2)
    assert syn.synthetic and held.synthetic and "SYNTHETIC" in syn.description
    assert abs(float(syn.arrays["input"].std()) - 1.0) < 0.1


def test_dynamic_hw_needs_a_shape():
    with pytest.raises(UserError, match="dynamic dimensions .* pass a calibration input_shape"):
        split(DYNAMIC, count=2)
    calib, _ = split(DYNAMIC, count=2, eval_count=0, input_shape="3x20x28")
    assert calib.arrays["input"].shape == (2, 3, 20, 28)


def test_shape_that_contradicts_the_model_is_rejected():
    with pytest.raises(UserError, match="does not match input 'input'"):
        split(NCHW, input_shape="3x64x64")
    with pytest.raises(UserError, match=r"shape 3x16x16 does not match .*drop input_shape/crop"):
        split(NCHW, crop=16)


def test_nhwc_layout_is_detected():
    spec = image_input([InputInfo("x", 1, ["n", 32, 24, 3])], CalibrationConfig())
    assert (spec.layout, spec.channels, spec.height, spec.width) == ("nhwc", 3, 32, 24)
    calib, _ = split([InputInfo("x", 1, ["n", 32, 24, 3])], count=2, eval_count=0)
    assert calib.arrays["x"].shape == (2, 32, 24, 3)


def _write_images(folder, n, size=(40, 30)):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        sub = folder / f"class{i % 2}"
        sub.mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (size[1] + i, size[0], 3), dtype=np.uint8)).save(sub / f"{i}.png")


def test_image_folder_resizes_crops_and_normalises(tmp_path):
    _write_images(tmp_path / "imgs", 5)
    calib, held = split(NCHW, source=str(tmp_path / "imgs"), count=3, eval_count=2)
    assert calib.arrays["input"].shape == (3, 3, 32, 24) and held.arrays["input"].shape == (2, 3, 32, 24)
    assert "5 images found" in calib.description
    gray, _ = split(GRAY, source=str(tmp_path / "imgs"), count=2, eval_count=0, mean=[0.5], std=[0.5])
    assert gray.arrays["input"].shape == (2, 1, 28, 28) and gray.arrays["input"].min() >= -1.0


def test_fewer_images_than_asked_is_noted(tmp_path):
    _write_images(tmp_path / "imgs", 2)
    calib, held = split(NCHW, source=str(tmp_path / "imgs"), count=8, eval_count=4)
    assert calib.count == 2 and any("fewer than the 8" in n for n in calib.notes)
    assert held.count == 2 and any("no held-out samples" in n for n in held.notes)


def test_empty_folder_and_unreadable_image_are_user_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("not an image")
    with pytest.raises(UserError, match="has no images"):
        split(NCHW, source=str(tmp_path / "empty"))
    _write_images(tmp_path / "bad", 2)
    (tmp_path / "bad" / "broken.jpg").write_bytes(b"\xff\xd8 definitely not a jpeg")
    with pytest.raises(UserError, match=r"cannot read calibration image .*broken\.jpg"):
        split(NCHW, source=str(tmp_path / "bad"), count=8)
    with pytest.raises(UserError, match="not found"):
        split(NCHW, source=str(tmp_path / "nowhere"))


def test_npy_and_npz_are_checked_against_the_model(tmp_path):
    good = np.random.default_rng(0).standard_normal((5, 3, 32, 24)).astype(np.float32)
    np.save(tmp_path / "good.npy", good)
    calib, held = split(NCHW, source=str(tmp_path / "good.npy"), count=3, eval_count=2)
    assert np.array_equal(calib.arrays["input"], good[:3]) and np.array_equal(held.arrays["input"], good[3:])
    np.save(tmp_path / "one.npy", good[0])
    assert split(NCHW, source=str(tmp_path / "one.npy"))[0].count == 1
    np.save(tmp_path / "wrong.npy", good[:, :2])
    with pytest.raises(UserError, match="axis 1 of the model input is fixed at 3"):
        split(NCHW, source=str(tmp_path / "wrong.npy"))
    np.save(tmp_path / "rank.npy", good[:, 0, 0])
    with pytest.raises(UserError, match="rank 4"):
        split(NCHW, source=str(tmp_path / "rank.npy"))
    np.savez(tmp_path / "named.npz", input=good)
    assert split(NCHW, source=str(tmp_path / "named.npz"))[0].count == 5
    two = [InputInfo("a", 1, ["n", 4]), InputInfo("b", 1, ["n", 2])]
    np.savez(tmp_path / "partial.npz", a=np.zeros((3, 4), np.float32))
    with pytest.raises(UserError, match=r"lacks the model input\(s\) \['b'\]"):
        split(two, source=str(tmp_path / "partial.npz"))
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(UserError, match="cannot read calibration data"):
        split(NCHW, source=str(tmp_path / "junk.npz"))


def test_image_sources_need_one_image_input():
    with pytest.raises(UserError, match="feeds one image input, but the model has 2"):
        split([InputInfo("a", 1, ["n", 3, 8, 8]), InputInfo("b", 1, ["n", 3, 8, 8])])
    with pytest.raises(UserError, match="has rank 3"):
        split([InputInfo("a", 1, ["n", 16, 8])])
