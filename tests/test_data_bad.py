"""Bad data: each case is one clear DataError line (or a counted warning where it is recoverable)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from test_data_sources import _img, make_image_folder, write_cifar10

from edgecompress.data import DataWarning, load_task
from edgecompress.errors import DataError

torch.set_num_threads(1)


def _one_line_error(match: str, *args: object, **kwargs: object) -> DataError:
    with pytest.raises(DataError, match=match) as info:
        load_task(*args, **kwargs)  # type: ignore[arg-type]
    assert "\n" not in str(info.value)
    return info.value


def test_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    _one_line_error("the folder is empty", tmp_path / "empty")


def test_no_class_subfolders(tmp_path: Path) -> None:
    for i in range(3):
        _img(tmp_path / "flat" / f"{i}.png")
    err = _one_line_error("no class subfolders", tmp_path / "flat")
    assert "--unlabeled" in str(err)  # says what to do with a flat folder


def test_class_folder_without_images(tmp_path: Path) -> None:
    root = make_image_folder(tmp_path / "pets", per_class=3)
    (root / "zebra").mkdir()
    _one_line_error("class folder.* with no images: zebra", root)


def test_truncated_image_skipped_with_count_or_strict_error(tmp_path: Path) -> None:
    root = make_image_folder(tmp_path / "pets", per_class=5)
    good = _img(root / "cat" / "big.png", seed=99)
    data = good.read_bytes()
    (root / "cat" / "trunc.png").write_bytes(data[: len(data) // 2])
    (root / "dog" / "junk.jpg").write_bytes(b"not an image at all")
    with pytest.warns(DataWarning, match=r"skipped 2 unreadable image\(s\)"):
        task = load_task(root)
    assert any("skipped 2 unreadable" in n for n in task.notes)
    paths = {p.name for p in task.labeled.source.paths}
    assert "trunc.png" not in paths and "junk.jpg" not in paths
    _one_line_error(r"(trunc\.png|junk\.jpg): unreadable or truncated image", root, strict=True)


def test_mixed_sizes_are_resized(tmp_path: Path) -> None:
    root = make_image_folder(tmp_path / "pets", per_class=4)
    _img(root / "cat" / "odd.png", size=(31, 17))
    with pytest.warns(DataWarning, match="2 different sizes; all are resized to 20x20"):
        task = load_task(root)
    for ds in (task.labeled, task.val, task.test):
        assert all(ds[i][0].shape == (3, 20, 20) for i in range(len(ds)))


def test_label_outside_class_range(tmp_path: Path) -> None:
    x = np.zeros((12, 8, 8), np.uint8)
    np.savez(tmp_path / "a.npz", x=x, y=np.array([0, 1, 2] * 3 + [0, 1, 7]), class_names=np.array(["a", "b", "c"]))
    _one_line_error(r"label 7 at index 11 is outside the class range 0\.\.2", tmp_path / "a.npz")
    np.savez(tmp_path / "b.npz", x=x, y=np.array([0, 1, 2] * 3 + [0, 1, -1]))
    _one_line_error(r"label -1 at index 11 is outside the class range", tmp_path / "b.npz")
    root = write_cifar10(tmp_path / "c")
    import pickle

    with open(root / "test_batch", "wb") as fh:
        pickle.dump({b"data": np.zeros((2, 3072), np.uint8), b"labels": [3, 10]}, fh, protocol=2)
    _one_line_error(r"test_batch: label 10 at index 1 is outside the class range 0\.\.9", root)


@pytest.mark.parametrize("fraction", [0, 0.0, -0.1, 1.5, math.nan, "abc"])
def test_fraction_outside_unit_interval(fraction: object) -> None:
    # Rejected before any data is read (a missing path would otherwise be the error).
    _one_line_error(r"labeled_fraction=.* (is outside \(0, 1\]|is not a number)", "/does/not/exist", labeled_fraction=fraction)


def test_npz_without_x(tmp_path: Path) -> None:
    np.savez(tmp_path / "d.npz", images=np.zeros((3, 4, 4)), y=np.arange(3))
    _one_line_error(r"d\.npz: no array named 'x' \(found: images, y\)", tmp_path / "d.npz")


def test_npz_bad_values_and_shapes(tmp_path: Path) -> None:
    np.savez(tmp_path / "neg.npz", x=np.full((6, 4, 4), -3.0), y=np.arange(6) % 2)
    _one_line_error(r"x values span \[-3, -3\]", tmp_path / "neg.npz")
    np.savez(tmp_path / "ch.npz", x=np.zeros((6, 5, 4, 4), np.uint8), y=np.arange(6) % 2)
    _one_line_error(r"channels \(1 or 3\)", tmp_path / "ch.npz")
    np.savez(tmp_path / "len.npz", x=np.zeros((6, 4, 4), np.uint8), y=np.arange(5) % 2)
    _one_line_error("6 images but y has 5 labels", tmp_path / "len.npz")
    np.savez(tmp_path / "noy.npz", x=np.zeros((6, 4, 4), np.uint8))
    _one_line_error("no labels 'y'", tmp_path / "noy.npz")


def test_missing_path_and_unknown_name(tmp_path: Path) -> None:
    _one_line_error(r"no_such_dir: no such file or folder", tmp_path / "no_such_dir")
    _one_line_error(r"unknown labeled data 'imagenet'.*known: digits, shapes", "imagenet")
    _one_line_error(r"unknown unlabeled data 'webpool'.*shapes-pool", "digits", unlabeled="webpool")
    # The pool is checked before the (possibly long) read of the labeled source.
    _one_line_error(r"missing_pool: no such file or folder", "shapes:train=10000000", unlabeled=tmp_path / "missing_pool")
    (tmp_path / "notes.txt").write_text("hi")
    _one_line_error(r"unsupported file type '\.txt'", tmp_path / "notes.txt")


def test_bad_input_shape_and_calib_size() -> None:
    _one_line_error("channels must be 1 or 3", "digits", input_shape=(2, 16, 16))
    _one_line_error("calib_size=0 must be a positive integer", "digits", calib_size=0)


def test_too_few_images(tmp_path: Path) -> None:
    root = make_image_folder(tmp_path / "tiny", per_class=2)
    _one_line_error("too few images", root)
