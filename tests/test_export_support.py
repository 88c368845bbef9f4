"""Tiny trained models and data shared by the exporter tests (no tests in this file).

The parity gate needs models with real decision margins (a random-init net has near-tied
logits, so int8 agreement would measure noise), so each model is trained for a second on a
toy task: which quadrant of the image holds a bright square.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from torch import nn

from edgecompress.artifacts import Preprocessing

torch.set_num_threads(1)

SIZE = 16
CLASSES = 4


class TinyNet(nn.Module):
    """Conv-BN-ReLU6, strided conv + hardswish, a residual add, global pool, linear head."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(channels, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU6())
        self.down = nn.Sequential(nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.Hardswish())
        self.res = nn.Conv2d(16, 16, 3, padding=1)
        self.head = nn.Linear(16, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.down(self.stem(x))
        y = y + torch.relu(self.res(y))
        return self.head(y.mean((2, 3)))


def make_data(n: int, channels: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, CLASSES, n)
    x = rng.normal(0.0, 0.3, (n, channels, SIZE, SIZE)).astype(np.float32)
    half = SIZE // 2
    for i, c in enumerate(y):
        r, q = divmod(int(c), 2)
        x[i, :, r * half : (r + 1) * half, q * half : (q + 1) * half] += 1.5
    return x, y.astype(np.int64)


@functools.cache
def trained(channels: int) -> TinyNet:
    torch.manual_seed(channels)
    model = TinyNet(channels)
    x, y = make_data(256, channels, seed=1)
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    for _ in range(15):
        for i in range(0, len(x), 64):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(torch.from_numpy(x[i : i + 64])), torch.from_numpy(y[i : i + 64]))
            loss.backward()
            opt.step()
    return model.eval()


def case(channels: int) -> dict:
    """Everything export_module needs for a trained tiny model with ``channels`` inputs."""
    calib, _ = make_data(64, channels, seed=2)
    val_x, val_y = make_data(100, channels, seed=3)
    pre = Preprocessing(input_shape=(channels, SIZE, SIZE), mean=(0.5,) * channels, std=(0.25,) * channels)
    return {"model": trained(channels), "preprocessing": pre, "calib_x": calib, "val_x": val_x, "val_y": val_y}
