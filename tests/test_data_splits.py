"""Splits, transforms, recorded preprocessing, and reloading a task from its DataRef."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from edgecompress.artifacts import DataRef, Preprocessing
from edgecompress.data import Augment, Pipeline, load_task, load_task_ref
from edgecompress.data.splits import stratified_take
from edgecompress.data.transforms import channel_stats, convert_channels, resize

torch.set_num_threads(1)

SMALL = "shapes:train=600,val=60,test=60"


def test_stratified_labeled_fraction_and_rest() -> None:
    task = load_task(SMALL, labeled_fraction=0.1, seed=1)
    counts = np.bincount(task.labeled.targets, minlength=12)
    assert counts.tolist() == [5] * 12  # 10% of 50 per class
    assert task.unlabeled_rest is not None
    assert len(task.labeled) + len(task.unlabeled_rest) == 600
    assert set(task.labeled.indices).isdisjoint(task.unlabeled_rest.indices)
    assert (task.unlabeled_rest.targets == -1).all() and (task.unlabeled_rest.hidden_labels >= 0).all()
    assert task.unlabeled is task.unlabeled_rest  # no pool given: the rest is the unlabeled set
    assert set(task.calibration.indices) <= set(task.labeled.indices)


def test_seed_changes_labeled_subset_but_not_holdout() -> None:
    a = load_task("digits", labeled_fraction=0.2, seed=0)
    b = load_task("digits", labeled_fraction=0.2, seed=1)
    c = load_task("digits", labeled_fraction=0.2, seed=0)
    assert np.array_equal(a.labeled.indices, c.labeled.indices)
    assert not np.array_equal(a.labeled.indices, b.labeled.indices)
    assert np.array_equal(a.test.indices, b.test.indices) and np.array_equal(a.val.indices, b.val.indices)
    held = set(a.test.indices) | set(a.val.indices)
    assert held.isdisjoint(a.labeled.indices) and held.isdisjoint(b.labeled.indices)


def test_stratified_take_keeps_one_per_class() -> None:
    labels = np.array([0] * 100 + [1] * 3)
    taken, rest = stratified_take(labels, np.arange(103), 0.01, np.random.default_rng(0))
    assert np.bincount(labels[taken]).tolist() == [1, 1]
    assert len(taken) + len(rest) == 103


def test_calibration_size_and_no_augmentation() -> None:
    task = load_task(SMALL, calib_size=20)
    assert len(task.calibration) == 20
    x1, _ = task.calibration[3]
    x2, _ = task.calibration[3]
    assert torch.equal(x1, x2)  # deterministic: no augmentation outside training sets


def test_augmentation_only_on_training_sets() -> None:
    task = load_task(SMALL)
    torch.manual_seed(0)
    outs = [task.labeled[0][0] for _ in range(8)]
    assert any(not torch.equal(outs[0], o) for o in outs[1:])
    assert torch.equal(task.test[0][0], task.test[0][0])
    plain = load_task(SMALL, augment=False)
    assert not plain.augment.enabled and torch.equal(plain.labeled[0][0], plain.labeled[0][0])


def test_preprocessing_is_what_the_datasets_apply() -> None:
    task = load_task(SMALL)
    pre = task.preprocessing
    assert pre.input_shape == task.input_shape and len(pre.mean) == 3
    raw = task.test.raw(5)
    m = torch.tensor(pre.mean).view(3, 1, 1)
    s = torch.tensor(pre.std).view(3, 1, 1)
    assert torch.allclose(task.test[5][0], (raw - m) / s, atol=1e-6)
    # Raw = uint8 * pixel_scale, resized: a device runner can rebuild it from the record.
    img = task.test.source.image(int(task.test.indices[5]))
    assert torch.allclose(raw, torch.as_tensor(img).float() * pre.pixel_scale, atol=1e-7)
    assert Preprocessing.from_json(pre.to_json()) == pre


def test_given_stats_are_used() -> None:
    task = load_task("digits", mean=(0.5,), std=(0.25,))
    assert task.preprocessing.mean == (0.5,) and task.preprocessing.std == (0.25,)
    assert torch.allclose(task.val[0][0], (task.val.raw(0) - 0.5) / 0.25)


def test_data_ref_reloads_identically() -> None:
    task = load_task(SMALL, unlabeled="shapes-pool:n=50", labeled_fraction=0.3, seed=7, input_shape=(3, 24, 24))
    ref = DataRef.from_json(task.data_ref.to_json())
    again = load_task_ref(ref)
    assert again.preprocessing == task.preprocessing
    for name in ("labeled", "val", "test", "calibration", "unlabeled_pool", "unlabeled_rest"):
        assert np.array_equal(getattr(again, name).indices, getattr(task, name).indices), name
    assert torch.equal(again.test[3][0], task.test[3][0])


def test_dataloader_batches_with_workers_and_unlabeled_concat() -> None:
    task = load_task(SMALL, unlabeled="shapes-pool:n=40", labeled_fraction=0.5)
    assert len(task.unlabeled) == 40 + 300
    x, y = next(iter(DataLoader(task.unlabeled, batch_size=16, shuffle=True, num_workers=1)))
    assert x.shape == (16, 3, 32, 32) and x.dtype == torch.float32 and (y == -1).all()


def test_transform_helpers() -> None:
    x = torch.rand(3, 8, 8)
    assert resize(x, (16, 12)).shape == (3, 16, 12) and resize(x, (8, 8)) is x
    g = convert_channels(x, 1)
    assert torch.allclose(g[0], 0.299 * x[0] + 0.587 * x[1] + 0.114 * x[2])
    assert convert_channels(g, 3).shape == (3, 8, 8)
    mean, std = channel_stats([torch.full((2, 1, 4, 4), 0.5), torch.zeros(1, 1, 4, 4)])
    assert mean == pytest.approx((1 / 3,), abs=1e-5) and std[0] == pytest.approx(np.std([0.5, 0.5, 0]), abs=1e-5)
    pre = Preprocessing(input_shape=(1, 8, 8), mean=(0.0,), std=(1.0,))
    p = Pipeline(pre, Augment(crop_pad=2, flip=True))
    img = np.zeros((1, 8, 8), np.uint8)
    img[0, :, :2] = 255  # a bright left edge: flips and crops move it
    torch.manual_seed(0)
    outs = {tuple(p(img, train=True)[0].sum(0).tolist()) for _ in range(20)}
    assert len(outs) > 1 and p(img)[0, 0, 0] == 1.0
