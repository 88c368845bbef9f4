"""Train a small teacher on the built-in digits data and save it as a torch.export `.pt2`.

Stands in for "your" teacher: any model you can `torch.export` works the same way. The `.pt2`
format carries the graph and weights without pickled code, so edgecompress loads it safely.

    python make_teacher.py teacher.pt2
"""

from __future__ import annotations

import sys

import torch
from torch import nn

from edgecompress.data import load_task


class DigitsTeacher(nn.Module):
    def __init__(self, in_ch: int, classes: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_ch, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
            nn.Conv2d(64, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.classifier = nn.Linear(64, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def main(out: str) -> None:
    torch.manual_seed(0)
    task = load_task("digits")
    model = DigitsTeacher(task.input_shape[0], task.num_classes)
    loader = torch.utils.data.DataLoader(task.labeled, batch_size=64, shuffle=True)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(4):
        for x, y in loader:
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
    model.eval()
    xs, ys = zip(*[task.test[i] for i in range(len(task.test))], strict=True)
    acc = (model(torch.stack(xs)).argmax(1) == torch.as_tensor(ys)).float().mean().item()
    example = torch.zeros(1, *task.input_shape)
    program = torch.export.export(model, (example,))
    torch.export.save(program, out)
    print(f"teacher: test accuracy {acc:.3f}, input {'x'.join(map(str, task.input_shape))}, saved {out}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "teacher.pt2")
