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


class DeadFeatureHead(nn.Module):
    """The trained TinyNet with one outlier weight (1000) in every row of its linear head.

    The weight multiplies a feature that is exactly 0 for every input (``relu(-|mean|)``), so
    the float model is unchanged; per-channel int8 weights, though, get a scale of ~1000/127
    per row and round the head's real weights to 0. Better calibration cannot fix it (it is a
    weight range, not an activation range); keeping the head in float does: the case the
    sensitivity analysis and mixed precision exist for.
    """

    def __init__(self, base: TinyNet) -> None:
        super().__init__()
        self.base = base
        head = nn.Linear(17, CLASSES)
        with torch.no_grad():
            head.weight[:, :16] = base.head.weight
            head.weight[:, 16] = 1000.0
            head.bias.copy_(base.head.bias)
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = self.base
        y = b.down(b.stem(x))
        y = y + torch.relu(b.res(y))
        feat = y.mean((2, 3))
        dead = torch.relu(-feat.abs().mean(1, keepdim=True))  # always 0, but not a constant
        return self.head(torch.cat([feat, dead], 1))


def outlier_case() -> dict:
    """``case(3)`` with the outlier-weight head: plain int8 PTQ misses the gate on it."""
    c = case(3)
    c["model"] = DeadFeatureHead(trained(3)).eval()
    return c


class OutlierGemm(nn.Module):
    """Any classifier followed by one linear layer that computes the same logits in float but
    carries a 1000 weight per row on ``dead`` always-zero features: plain int8 PTQ rounds the
    real (identity) weights to zero. With many dead features the layer holds most of the
    weights, so keeping it in float costs more than the default size bound allows."""

    def __init__(self, model: nn.Module, num_classes: int, dead: int = 1) -> None:
        super().__init__()
        self.model = model
        self.dead = dead
        self.head = nn.Linear(num_classes + dead, num_classes)
        with torch.no_grad():
            self.head.weight.zero_()
            self.head.weight[:, :num_classes] = torch.eye(num_classes)
            self.head.weight[:, num_classes:] = 1000.0
            self.head.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.model(x)
        zero = torch.relu(-logits.abs().mean(1, keepdim=True))  # always 0, but not a constant
        return self.head(torch.cat([logits, zero.expand(-1, self.dead)], 1))
