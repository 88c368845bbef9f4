"""User data: ImageFolder, flat unlabeled folder, .npz arrays, CIFAR-10/100 python batches."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from edgecompress.data import load_task
from edgecompress.errors import DataError

torch.set_num_threads(1)


def _img(path: Path, size: tuple[int, int] = (20, 20), seed: int = 0, mode: str = "RGB") -> Path:
    rng = np.random.default_rng(seed)
    shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(path)
    return path


def make_image_folder(root: Path, per_class: int = 6, exts: tuple[str, ...] = (".png", ".jpg", ".webp")) -> Path:
    for k, name in enumerate(("cat", "dog", "emu")):
        for i in range(per_class):
            _img(root / name / f"{i}{exts[i % len(exts)]}", seed=10 * k + i)
    return root


def test_image_folder_png_jpg_webp(tmp_path: Path) -> None:
    root = make_image_folder(tmp_path / "pets")
    task = load_task(root, labeled_fraction=1.0)
    assert task.class_names == ("cat", "dog", "emu") and task.input_shape == (3, 20, 20)
    # 6 per class: 1 test + 1 val held out per class, 4 labeled
    assert (len(task.test), len(task.val), len(task.labeled)) == (3, 3, 12)
    assert sorted({p.suffix for p in task.labeled.source.paths}) == [".jpg", ".png", ".webp"]
    x, y = task.labeled[0]
    assert x.shape == (3, 20, 20) and 0 <= int(y) < 3
    # Lazy: the source holds paths, not pixels.
    assert not hasattr(task.labeled.source, "x")


def test_image_folder_resized_to_requested_gray_shape(tmp_path: Path) -> None:
    root = make_image_folder(tmp_path / "pets", per_class=4)
    task = load_task(root, input_shape=(1, 8, 12))
    assert task.labeled[0][0].shape == (1, 8, 12)


def test_flat_unlabeled_folder(tmp_path: Path) -> None:
    root = make_image_folder(tmp_path / "pets")
    for i in range(5):
        _img(tmp_path / "pool" / f"u{i}.png", size=(33, 27), seed=100 + i, mode="L")
    task = load_task(root, unlabeled=tmp_path / "pool", labeled_fraction=0.5)
    pool = task.unlabeled_pool
    assert pool is not None and len(pool) == 5
    x, y = pool[0]
    assert x.shape == (3, 20, 20) and int(y) == -1  # served at the task's shape and channels
    assert task.unlabeled_rest is not None and len(task.unlabeled) == 5 + len(task.unlabeled_rest)


@pytest.mark.parametrize("layout", ["nhwc", "nchw", "gray", "float01", "float255"])
def test_npz_layouts(tmp_path: Path, layout: str) -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (40, 12, 12, 3), dtype=np.uint8)
    y = np.arange(40) % 4
    arr = {
        "nhwc": x,
        "nchw": x.transpose(0, 3, 1, 2),
        "gray": x[..., 0],
        "float01": x.astype(np.float32) / 255.0,
        "float255": x.astype(np.float64),
    }[layout]
    np.savez(tmp_path / "d.npz", x=arr, y=y)
    task = load_task(tmp_path / "d.npz")
    c = 1 if layout == "gray" else 3
    assert task.input_shape == (c, 12, 12) and task.num_classes == 4
    i = int(task.test.indices[0])
    expect = x[i, ..., 0][None] if layout == "gray" else x[i].transpose(2, 0, 1)
    assert np.array_equal(task.test.source.image(i), expect)


def test_npz_class_names_and_unlabeled_npz(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.integers(0, 256, (30, 8, 8, 3), dtype=np.uint8), y=np.arange(30) % 3,
             class_names=np.array(["a", "b", "c"]))  # fmt: skip
    np.savez(tmp_path / "u.npz", x=rng.integers(0, 256, (7, 8, 8, 3), dtype=np.uint8))
    task = load_task(tmp_path / "d.npz", unlabeled=tmp_path / "u.npz")
    assert task.class_names == ("a", "b", "c") and len(task.unlabeled_pool) == 7


def _pickle(path: Path, obj: dict) -> None:
    # Protocol 2 with bytes keys: how the published CIFAR python files were written (Python 2).
    with open(path, "wb") as fh:
        pickle.dump(obj, fh, protocol=2)


def write_cifar10(root: Path, per_batch: int = 10) -> Path:
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    _pickle(root / "batches.meta", {b"label_names": names, b"num_cases_per_batch": per_batch, b"num_vis": 3072})
    for b in [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]:
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        labels = [int(v) for v in np.arange(per_batch) % 10]
        _pickle(root / b, {b"batch_label": b.encode(), b"labels": labels, b"data": data,
                           b"filenames": [f"{i}.png".encode() for i in range(per_batch)]})  # fmt: skip
    return root


def test_cifar10_batches(tmp_path: Path) -> None:
    root = write_cifar10(tmp_path / "cifar-10-batches-py")
    task = load_task(root)
    assert task.name == "cifar10" and task.num_classes == 10 and task.class_names[0] == "airplane"
    assert len(task.test) == 10  # the test_batch, as published
    assert len(task.labeled) + len(task.val) == 50
    # Row layout: 1024 red, 1024 green, 1024 blue, each a row-major 32x32 plane.
    import pickle as pk

    with open(root / "test_batch", "rb") as fh:
        raw = pk.load(fh, encoding="bytes")
    img = task.test.source.image(0)
    assert np.array_equal(img[1, 2, :], raw[b"data"][0][1024 + 2 * 32 : 1024 + 3 * 32])


def test_cifar100_fine_labels(tmp_path: Path) -> None:
    root = tmp_path / "cifar-100-python"
    root.mkdir()
    rng = np.random.default_rng(1)
    _pickle(root / "meta", {b"fine_label_names": [f"c{i}".encode() for i in range(100)],
                            b"coarse_label_names": [f"s{i}".encode() for i in range(20)]})  # fmt: skip
    for split, n in (("train", 400), ("test", 100)):
        _pickle(root / split, {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                               b"fine_labels": [i % 100 for i in range(n)], b"coarse_labels": [i % 20 for i in range(n)]})  # fmt: skip
    task = load_task(root, labeled_fraction=0.5)
    assert task.name == "cifar100" and task.num_classes == 100 and len(task.test) == 100
    assert np.bincount(task.labeled.targets, minlength=100).min() >= 1


def test_cifar_pickle_cannot_run_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write_cifar10(tmp_path / "c", per_batch=10)

    class Evil:
        def __reduce__(self):  # noqa: ANN204
            return (print, ("pwned",))

    with open(root / "test_batch", "wb") as fh:
        pickle.dump({b"data": Evil(), b"labels": [0]}, fh, protocol=2)
    with pytest.raises(DataError, match=r"test_batch: not a CIFAR python batch \(refusing to load .*print\)"):
        load_task(root)
    assert "pwned" not in capsys.readouterr().out
