"""The built-in demo teachers: ResNets trained with all labels on a built-in dataset.

``demo_teacher("shapes")`` returns the path of a cached ``torch.export`` program (``.pt2``)
trained on the whole labeled training split; beside it lie the state_dict
(``<name>.state_dict.pt``, loadable with ``weights_only=True``) and ``<name>.json`` with its
accuracy and training time. The network follows the student contract (``forward_features``,
``num_features``, ``classifier``, ``low_level_layer``) and is plain Conv/BN/ReLU with residual
adds, so the ``pruned-teacher`` student family can channel-prune it.

The shapes teacher is *giant next to the demo's budget* (80 M MACs, 2.1 M parameters: over the
Pixel 7 profile's 1 ms and 2 MB budgets), so compressing it 8x is the point of the demo. It takes
~25 minutes on 2 cores to train, so its weights ship in the package (``demo_weights/``, fp16,
4 MB, made by ``scripts/train_demo_teacher.py`` with the sha256 and command recorded beside
them) and are only turned into the cached ``.pt2`` on first use. Any other dataset string
(``digits``, ``shapes:train=2000``, another seed) is trained on first use.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from edgecompress.artifacts import atomic_write_bytes, atomic_write_text
from edgecompress.distill.eager_twin import sidecar_path, write_sidecar
from edgecompress.distill.streams import stack_dataset

TEACHER_VERSION = 2

# dataset -> architecture and schedule. Shapes: a stride-2 stem (16x16 maps from the start),
# two basic blocks per stage, 12 epochs of the 30k training images with crop + flip; the
# schedule is in epochs so a small variant ("shapes:train=240") trains in seconds. No label
# smoothing: a smoothed teacher's soft outputs carry less about class similarity, the very
# thing distillation transfers (Mueller et al. 2019). Digits (1.4k 16x16 images) is cheap enough
# to train on first use.
_RECIPES: dict[str, dict[str, Any]] = {
    "shapes": {"widths": (56, 112, 224), "blocks": (2, 2, 2), "stem_stride": 2, "epochs": 12, "batch_size": 128,
               "lr": 4e-3, "label_smoothing": 0.0},
    "digits": {"widths": (16, 32, 64), "blocks": (1, 1, 1), "stem_stride": 1, "steps": 300, "batch_size": 64, "lr": 4e-3,
               "label_smoothing": 0.05},
}
SHIPPED_DIR = Path(__file__).with_name("demo_weights")


class BasicBlock(nn.Module):
    """conv-bn-relu-conv-bn plus a (projected) shortcut, then relu: the ResNet basic block."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class DemoTeacher(nn.Module):
    """Stem + 3 residual stages (stride 1, 2, 2) + global average pool + Linear."""

    low_level_layer = "stem"

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        widths: tuple[int, ...] = (32, 64, 128),
        blocks: tuple[int, ...] = (1, 1, 1),
        stem_stride: int = 1,
    ) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, widths[0], 3, stem_stride, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU())
        stages = []
        cin = widths[0]
        for i, (w, n) in enumerate(zip(widths, blocks, strict=True)):
            layers = [BasicBlock(cin if j == 0 else w, w, (1 if i == 0 else 2) if j == 0 else 1) for j in range(n)]
            stages.append(nn.Sequential(*layers))
            cin = w
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.num_features = widths[-1]
        self.classifier = nn.Linear(widths[-1], num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.pool(self.stages(self.stem(x))), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.forward_features(x))


def build_demo_teacher(dataset: str, in_channels: int, num_classes: int) -> DemoTeacher:
    recipe = _recipe(dataset, None)
    return DemoTeacher(in_channels, num_classes, recipe["widths"], recipe["blocks"], recipe["stem_stride"])


def _cache_dir() -> Path:
    from edgecompress.data.cache import cache_root

    return cache_root() / "teachers"


def _recipe(dataset: str, steps: int | None) -> dict[str, Any]:
    base = dataset.partition(":")[0]  # "shapes:train=2000" -> the shapes recipe
    recipe = dict(_RECIPES.get(base, _RECIPES["shapes"]))
    if steps is not None:
        recipe.pop("epochs", None)
        recipe["steps"] = int(steps)
    return recipe


def demo_teacher_paths(dataset: str, *, seed: int = 0, steps: int | None = None) -> dict[str, Path]:
    """Cache paths, keyed by everything that decides the weights (dataset string with its
    options, seed, recipe, version)."""
    import hashlib

    from edgecompress.data.shapes import GENERATOR_VERSION

    # The data generator's version is part of the key: a teacher trained on older shapes
    # renders would otherwise be reused silently after the generator changes.
    key = json.dumps(
        {"dataset": dataset, "seed": seed, "recipe": _recipe(dataset, steps), "v": TEACHER_VERSION, "data_v": GENERATOR_VERSION},
        sort_keys=True,
    )
    base = "".join(c if c.isalnum() else "-" for c in dataset.partition(":")[0])
    stem = f"demo-{base}-v{TEACHER_VERSION}-{hashlib.sha256(key.encode()).hexdigest()[:10]}"
    d = _cache_dir()
    return {"pt2": d / f"{stem}.pt2", "state_dict": d / f"{stem}.state_dict.pt", "info": d / f"{stem}.json"}


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    from edgecompress.distill.trainer import predict

    return float((predict(model, x, torch.device("cpu")) == y).float().mean())


def _train(dataset: str, seed: int, steps: int | None, progress: bool, log_every: int = 0) -> tuple[DemoTeacher, dict[str, Any]]:
    from tqdm import tqdm

    from edgecompress.data import load_task

    task = load_task(dataset, labeled_fraction=1.0, seed=seed)
    recipe = _recipe(dataset, steps)
    torch.manual_seed(seed)
    model = build_demo_teacher(dataset, task.input_shape[0], task.num_classes)
    val_x, val_y = stack_dataset(task.val)
    test_x, test_y = stack_dataset(task.test)
    n = len(task.labeled)
    bs = recipe["batch_size"]
    steps = recipe["steps"] if "steps" in recipe else max(1, round(recipe["epochs"] * n / bs))
    opt = torch.optim.AdamW(model.parameters(), lr=recipe["lr"], weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=recipe["lr"], total_steps=steps, pct_start=0.15)
    t0, c0 = time.perf_counter(), time.process_time()
    bar = tqdm(total=steps, desc=f"demo teacher ({dataset})", disable=not progress, leave=False)
    gen = torch.Generator().manual_seed(seed)
    order = torch.empty(0, dtype=torch.long)
    model.train()
    for step in range(steps):
        if len(order) < bs:  # next epoch's permutation
            order = torch.cat([order, torch.randperm(n, generator=gen)])
        idx, order = order[:bs], order[bs:]
        items = [task.labeled[int(j)] for j in idx]
        x = torch.stack([it[0] for it in items])
        y = torch.stack([torch.as_tensor(it[1]) for it in items])
        loss = F.cross_entropy(model(x), y, label_smoothing=recipe["label_smoothing"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        bar.update(1)
        if step % 10 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}")
        if not progress and log_every and (step + 1) % log_every == 0:
            print(f"demo teacher ({dataset}): step {step + 1}/{steps} loss {loss.item():.3f} "
                  f"{time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    bar.close()
    train_s, train_cpu_s = time.perf_counter() - t0, time.process_time() - c0
    info = {
        "dataset": dataset,
        "version": TEACHER_VERSION,
        "seed": seed,
        "input_shape": list(task.input_shape),
        "num_classes": task.num_classes,
        "class_names": list(task.class_names),
        # the input normalization it was trained with: feed it data normalized the same way
        "mean": list(task.preprocessing.mean),
        "std": list(task.preprocessing.std),
        "val_acc": accuracy(model, val_x, val_y),
        "test_acc": accuracy(model, test_x, test_y),
        "train_s": round(train_s, 2),
        # CPU seconds of this process: on a shared machine, the time it would take on a free core
        # (with torch at one thread)
        "train_cpu_s": round(train_cpu_s, 2),
        "threads": torch.get_num_threads(),
        "steps": steps,
        "epochs": round(steps * bs / n, 2),
        "train_size": n,
        "params": sum(p.numel() for p in model.parameters()),
        "recipe": {k: list(v) if isinstance(v, tuple) else v for k, v in recipe.items()},
    }
    return model.eval(), info


def export_teacher(model: nn.Module, input_shape: tuple[int, int, int]) -> bytes:
    """``torch.export`` with a dynamic batch dimension, serialized to bytes."""
    import io

    model.eval()
    batch = torch.export.Dim("batch", min=1, max=65536)
    ep = torch.export.export(model, (torch.zeros(2, *input_shape),), dynamic_shapes=({0: batch},))
    buf = io.BytesIO()
    torch.export.save(ep, buf)
    return buf.getvalue()


def demo_teacher(
    dataset: str = "shapes", *, seed: int = 0, steps: int | None = None, progress: bool = True, force: bool = False
) -> Path:
    """Path of the cached demo teacher ``.pt2`` for ``dataset`` (a built-in name, options
    allowed: ``"shapes:train=2000"``), training it first if needed. ``steps`` overrides the
    recipe's number of optimizer steps (tests use a few)."""
    paths = demo_teacher_paths(dataset, seed=seed, steps=steps)
    if not force and all(p.is_file() for p in paths.values()):
        if not sidecar_path(paths["pt2"]).is_file():  # cached before twins were declared
            _write_twin(paths, json.loads(paths["info"].read_text()))
        return paths["pt2"]
    import io

    shipped = None if force else load_shipped(paths["pt2"].name.removesuffix(".pt2"))
    model, info = shipped if shipped is not None else _train(dataset, seed, steps, progress)
    shape = tuple(info["input_shape"])
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    atomic_write_bytes(paths["state_dict"], buf.getvalue())
    atomic_write_bytes(paths["pt2"], export_teacher(model, shape))  # type: ignore[arg-type]
    _write_twin(paths, info)
    # The info file is written last: a cache entry without it is incomplete and retrained.
    atomic_write_text(paths["info"], json.dumps(info, indent=2) + "\n")
    return paths["pt2"]


def _write_twin(paths: dict[str, Path], info: dict[str, Any]) -> None:
    """Declare the eager module behind the ``.pt2`` (distill/eager_twin.py): pruning and the
    alignment layers then see the teacher's own module names."""
    kwargs = {"dataset": info["dataset"], "in_channels": info["input_shape"][0], "num_classes": info["num_classes"]}
    write_sidecar(paths["pt2"], "demo-teacher", kwargs, paths["state_dict"])


def shipped_paths(stem: str) -> tuple[Path, Path]:
    """The packaged weights (fp16 state_dict) and record for a cache stem."""
    return SHIPPED_DIR / f"{stem}.pt", SHIPPED_DIR / f"{stem}.json"


def load_shipped(stem: str) -> tuple[DemoTeacher, dict[str, Any]] | None:
    """The packaged teacher for this exact cache key, or None. The key hashes dataset, seed,
    recipe and data-generator version, so weights for another recipe are never picked up. A
    file whose sha256 differs from its record is ignored (retrained), never trusted."""
    import hashlib

    weights, record = shipped_paths(stem)
    if not (weights.is_file() and record.is_file()):
        return None
    info = json.loads(record.read_text())
    if hashlib.sha256(weights.read_bytes()).hexdigest() != info.get("weights_sha256"):
        return None
    model = build_demo_teacher(info["dataset"], info["input_shape"][0], info["num_classes"])
    state = torch.load(weights, map_location="cpu", weights_only=True)
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    return model.eval(), info


def demo_teacher_info(dataset: str = "shapes", *, seed: int = 0, steps: int | None = None) -> dict[str, Any]:
    """The accuracy / timing record written beside a cached demo teacher (trains it if absent)."""
    demo_teacher(dataset, seed=seed, steps=steps, progress=False)
    return json.loads(demo_teacher_paths(dataset, seed=seed, steps=steps)["info"].read_text())


def demo_teacher_module(dataset: str = "shapes", *, seed: int = 0, steps: int | None = None) -> DemoTeacher:
    """The cached demo teacher as an eager nn.Module (for channel pruning), weights_only load."""
    info = demo_teacher_info(dataset, seed=seed, steps=steps)
    paths = demo_teacher_paths(dataset, seed=seed, steps=steps)
    model = build_demo_teacher(dataset, info["input_shape"][0], info["num_classes"])
    model.load_state_dict(torch.load(paths["state_dict"], map_location="cpu", weights_only=True))
    return model.eval()
