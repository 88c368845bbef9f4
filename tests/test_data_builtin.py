"""Built-in data: digits, shapes (+ pool), the on-disk cache."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgecompress.data import load_task, shapes
from edgecompress.data.cache import cache_root
from edgecompress.errors import DataError

torch.set_num_threads(1)

SMALL = "shapes:train=240,val=48,test=48"
POOL = "shapes-pool:n=120,ood=0.25"


def test_digits_default_shape_and_values() -> None:
    task = load_task("digits")
    assert task.num_classes == 10 and task.input_shape == (1, 16, 16)
    total = len(task.labeled) + len(task.val) + len(task.test)
    assert total == 1797
    x, y = task.test[0]
    assert x.shape == (1, 16, 16) and x.dtype == torch.float32 and y.dtype == torch.int64
    raw = task.test.raw(0)
    assert 0.0 <= float(raw.min()) and float(raw.max()) <= 1.0
    # Normalized with the stats it records: the labeled set is ~zero-mean, unit-std.
    xs, _ = task.labeled.tensors()
    assert abs(float(xs.mean())) < 0.1 and abs(float(xs.std()) - 1.0) < 0.1
    assert task.augment.flip is False  # a mirrored digit is not a digit


def test_digits_rgb_at_other_resolution() -> None:
    task = load_task("digits", input_shape=(3, 24, 24))
    x, _ = task.val[0]
    assert x.shape == (3, 24, 24)
    raw = task.val.raw(0)
    assert torch.equal(raw[0], raw[1]) and torch.equal(raw[1], raw[2])  # gray repeated


def test_shapes_generation_is_deterministic_and_balanced() -> None:
    x1, y1 = shapes.generate("train", 300, 32, seed=3)
    x2, y2 = shapes.generate("train", 300, 32, seed=3)
    assert np.array_equal(x1, x2) and np.array_equal(y1, y2)
    x3, _ = shapes.generate("train", 300, 32, seed=4)
    assert not np.array_equal(x1, x3)
    assert x1.shape == (300, 3, 32, 32) and x1.dtype == np.uint8
    counts = np.bincount(y1, minlength=len(shapes.CLASSES))
    assert counts.max() - counts.min() <= 1 and len(shapes.CLASSES) >= 10
    # Not trivially blank: images vary within and between classes.
    assert x1.std() > 20


def test_shapes_any_resolution() -> None:
    task = load_task(SMALL, input_shape=(3, 48, 48))
    assert task.test[0][0].shape == (3, 48, 48)
    task = load_task(SMALL, input_shape=(1, 20, 28))
    assert task.test[0][0].shape == (1, 20, 28)


def test_shapes_pool_is_shifted_and_has_hidden_out_of_class() -> None:
    task = load_task(SMALL, unlabeled=POOL)
    pool = task.unlabeled_pool
    assert pool is not None and len(pool) == 120
    assert all(int(pool[i][1]) == -1 for i in range(5))  # served unlabeled
    hidden = pool.hidden_labels
    assert (hidden < 0).sum() == 30 and set(hidden[hidden >= 0]) <= set(range(12))
    # The style differs measurably: pool images are darker / more washed out than curated ones.
    cur = task.test.raw_batch(np.arange(48))
    shifted = pool.raw_batch(np.arange(48))
    assert abs(float(cur.mean()) - float(shifted.mean())) > 0.05


def test_shapes_cache_is_reused_and_rebuilt_when_incomplete() -> None:
    load_task(SMALL)
    entries = list((cache_root() / "shapes").glob("*/params.json"))
    assert entries, "generated data was not cached"
    before = {p: p.stat().st_mtime_ns for p in entries}
    task = load_task(SMALL)
    assert isinstance(task.labeled.source.x, np.memmap)  # served from disk, not regenerated
    assert {p: p.stat().st_mtime_ns for p in entries} == before
    # An interrupted write (no params.json marker) is regenerated, not trusted.
    for p in entries:
        p.unlink()
    again = load_task(SMALL)
    assert np.array_equal(np.asarray(again.test.source.x), np.asarray(task.test.source.x))


def test_builtin_name_errors() -> None:
    with pytest.raises(DataError, match=r"known: digits, shapes"):
        load_task("cifar")
    with pytest.raises(DataError, match="unknown option 'trian'"):
        load_task("shapes:trian=10")
    with pytest.raises(DataError, match="cannot pair with 'digits'"):
        load_task("digits", unlabeled="shapes-pool:n=20")
    with pytest.raises(DataError, match=r"ood=1.5"):
        load_task(SMALL, unlabeled="shapes-pool:n=20,ood=1.5")
    with pytest.raises(DataError, match="too small"):
        load_task("shapes:train=5")
