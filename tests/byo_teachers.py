"""Teachers "from outside the project", built and trained inside the tests: architectures the
project's families do not use (VGG-style with squeeze-excite and hardswish, a 1x1-conv head,
a dict output), each trained with its own input preprocessing, saved in a user's formats."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

DATA = "shapes:train=480,val=96,test=96"
SHAPE = (3, 32, 32)


class SE(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Conv2d(c, max(4, c // 4), 1), nn.Conv2d(max(4, c // 4), c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = torch.relu(self.fc1(x.mean((2, 3), keepdim=True)))
        return x * torch.sigmoid(self.fc2(w))


class VggSE(nn.Module):
    """Conv-BN-hardswish stages with squeeze-excite; the classifier is ``head.2`` in a Sequential."""

    def __init__(self, num_classes: int = 12, width: int = 12, dict_output: bool = False) -> None:
        super().__init__()
        w = width
        self.features = nn.Sequential(
            nn.Conv2d(3, w, 3, padding=1), nn.BatchNorm2d(w), nn.Hardswish(), SE(w), nn.MaxPool2d(2),
            nn.Conv2d(w, 2 * w, 3, padding=1), nn.BatchNorm2d(2 * w), nn.Hardswish(), nn.MaxPool2d(2),
            nn.Conv2d(2 * w, 4 * w, 3, padding=1), nn.BatchNorm2d(4 * w), nn.Hardswish(), SE(4 * w),
            nn.AdaptiveAvgPool2d(1),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.1), nn.Linear(4 * w, num_classes))
        self.dict_output = dict_output

    def forward(self, x: torch.Tensor) -> Any:
        f = self.features(x)
        logits = self.head(f)
        return {"features": torch.flatten(f, 1), "scores": logits} if self.dict_output else logits


def make(num_classes: int = 10, width: int = 12) -> VggSE:
    """The factory a user's module would hold (defaults to 10 classes, like many)."""
    return VggSE(num_classes, width)


def half(u: torch.Tensor) -> torch.Tensor:
    return (u - 0.5) / 0.5


def save_pt2(model: nn.Module, path: Path, batch: int = 1) -> Path:
    ep = torch.export.export(model, (torch.zeros(batch, *SHAPE),))
    torch.export.save(ep, path)
    return path


DIGITS = "digits"
DIGITS_SHAPE = (1, 16, 16)


class SmallCNN(nn.Module):
    """A BatchNorm-free CNN: like most small teachers, sensitive to the input's scale and offset."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                  nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten())
        self.head = nn.Sequential(nn.Linear(32 * 16, 64), nn.ReLU(), nn.Linear(64, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def px255(u: torch.Tensor) -> torch.Tensor:
    return u * 255.0


def digits_teacher(pre: Callable[[torch.Tensor], torch.Tensor], steps: int = 250) -> nn.Module:
    """SmallCNN trained on the digits task with its own preprocessing ``pre`` (a few seconds)."""
    from edgecompress.data import load_task

    torch.manual_seed(0)
    task = load_task(DIGITS, mean=(0.0,), std=(1.0,), augment=False, progress=False)
    x, y = task.labeled.tensors()
    model = SmallCNN()
    opt = torch.optim.Adam(model.parameters(), 2e-3)
    for _ in range(steps):
        idx = torch.randint(0, len(x), (64,))
        loss = nn.functional.cross_entropy(model(pre(x[idx])), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def accuracy_on(model: nn.Module, pre: Callable[[torch.Tensor], torch.Tensor], data: str, split: str = "test") -> float:
    """Test accuracy in the teacher's "own code": raw [0, 1] images through ``pre``."""
    from edgecompress.data import load_task

    task = load_task(data, mean=(0.0,), std=(1.0,), augment=False, progress=False)
    x, y = {"train": task.labeled, "val": task.val, "test": task.test}[split].tensors()
    with torch.no_grad():
        return float((model(pre(x)).argmax(1) == y).float().mean() * 100)


def colour_npz(path: Path, n: int = 600, seed: int = 0) -> Path:
    """A task where colour is the class (red, green, blue, gray squares on noise), NHWC uint8:
    a teacher fed BGR for RGB confuses red and blue."""
    import numpy as np

    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    x = rng.integers(0, 90, (n, 16, 16, 3)).astype(np.int32)
    colours = np.array([[230, 40, 40], [40, 230, 40], [40, 40, 230], [150, 150, 150]])
    for i in range(n):
        r, c, s = rng.integers(0, 8), rng.integers(0, 8), rng.integers(5, 9)
        x[i, r : r + s, c : c + s] = colours[y[i]] * rng.uniform(0.6, 1.0)
    np.savez(path, x=np.clip(x, 0, 255).astype(np.uint8), y=y, class_names=np.array(["red", "green", "blue", "gray"]))
    return path


class ColourNet(nn.Module):
    """Two outputs (features, scores) like many detection-style heads; trained on BGR 0-255."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
                                  nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(64, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.body(x)
        return f, self.fc(f)


def bgr_imagenet_255(u: torch.Tensor) -> torch.Tensor:
    """caffe-style: BGR, 0-255, ImageNet mean/std in 0-255 units."""
    mean = torch.tensor([0.406, 0.456, 0.485]).view(1, 3, 1, 1) * 255
    std = torch.tensor([0.225, 0.224, 0.229]).view(1, 3, 1, 1) * 255
    return (u.flip(1) * 255.0 - mean) / std


def colour_teacher(npz: Path, steps: int = 300) -> nn.Module:
    from edgecompress.data import load_task

    torch.manual_seed(0)
    task = load_task(str(npz), mean=(0.0,), std=(1.0,), augment=False, progress=False)
    x, y = task.labeled.tensors()
    model = ColourNet()
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    for _ in range(steps):
        idx = torch.randint(0, len(x), (64,))
        loss = nn.functional.cross_entropy(model(bgr_imagenet_255(x[idx]))[1], y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()
