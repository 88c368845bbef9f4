"""How much does the `shapes-pool` style shift cost? (issue 3)

The same small CNN is trained twice per seed, with the same number of images and the same
recipe (the toolkit's own training augmentation): once on curated `shapes` training images
with their labels, once on in-class `shapes-pool` images with the pool's hidden labels (which
the toolkit itself never trains on). Both are evaluated on the curated test set; the
difference is the accuracy a model loses when its training images come from the shifted
distribution.

It also times generating the full default `shapes` + `shapes-pool` into an empty cache
(target: under 30 s on one core). With ``--capacity`` it also trains a 2x wider CNN on the curated labels, to show how much
headroom the task leaves between a small and a large model trained the same way.

    flock /tmp/edgecompress-cpu.lock .venv/bin/python benchmarks/data_shift.py

Writes benchmarks/results/data_shift.json and .md. CPU only, one thread.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from edgecompress.artifacts import atomic_write_text
from edgecompress.bench.device_runner import cpu_model
from edgecompress.data import SplitDataset, TaskData, load_task

RESULTS = Path(__file__).parent / "results"


def small_cnn(num_classes: int, width: int = 16, in_ch: int = 3) -> nn.Module:
    """Conv-BN-ReLU stages with max-pool downsampling, global average pool, linear head."""
    w = width

    def block(i: int, o: int) -> list[nn.Module]:
        return [nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True)]

    return nn.Sequential(
        *block(in_ch, w), nn.MaxPool2d(2),
        *block(w, 2 * w), nn.MaxPool2d(2),
        *block(2 * w, 4 * w), *block(4 * w, 4 * w),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * w, num_classes),
    )  # fmt: skip


def train(model: nn.Module, ds: SplitDataset, epochs: int, seed: int) -> float:
    """SGD + one-cycle schedule; returns wall seconds."""
    torch.manual_seed(seed)
    loader = DataLoader(ds, batch_size=128, shuffle=True, generator=torch.Generator().manual_seed(seed))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=True)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=epochs * len(loader))
    t0 = time.perf_counter()
    model.train()
    for _ in range(epochs):
        for x, y in loader:
            opt.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
            sched.step()
    return time.perf_counter() - t0


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    pred = torch.cat([model(x[i : i + 512]).argmax(1) for i in range(0, len(x), 512)])
    return float((pred == y).float().mean())


@contextlib.contextmanager
def patched_env(key: str, value: str) -> Iterator[None]:
    old = os.environ.get(key)
    os.environ[key] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = old


def mean_std(v: list[float]) -> tuple[float, float]:
    return statistics.fmean(v), (statistics.stdev(v) if len(v) > 1 else 0.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n-train", type=int, default=3000, help="training images per arm")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--capacity", action="store_true", help="also train a 2x wider CNN on curated labels")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    torch.set_num_threads(1)

    t_start, cpu_start = time.perf_counter(), time.process_time()
    # The default built-in sizes: the benchmark measures the data the toolkit actually serves,
    # generated into an empty cache (timed, wall and CPU), then loaded back from that cache.
    with tempfile.TemporaryDirectory() as tmp, patched_env("EDGECOMPRESS_CACHE", tmp):
        t0, c0 = time.perf_counter(), time.process_time()
        load_task("shapes", unlabeled="shapes-pool", progress=False)
        gen_s, gen_cpu_s = time.perf_counter() - t0, time.process_time() - c0
        t0 = time.perf_counter()
        task = load_task("shapes", unlabeled="shapes-pool", progress=False)
        load_s = time.perf_counter() - t0
        run(task, args, t_start, cpu_start, gen_s, gen_cpu_s, load_s)


def run(task: TaskData, args: argparse.Namespace, t_start: float, cpu_start: float,
        gen_s: float, gen_cpu_s: float, load_s: float) -> None:  # fmt: skip
    pool = task.unlabeled_pool
    assert pool is not None
    test_x, test_y = task.test.tensors()
    pipe = task.labeled.pipeline
    hidden = pool.hidden_labels
    ood_share = float((hidden < 0).mean())

    runs = []
    for seed in range(args.seeds):
        rng = np.random.default_rng(seed)
        cur_idx = np.sort(rng.choice(task.labeled.indices, args.n_train, replace=False))
        pool_idx = np.sort(rng.choice(pool.indices[hidden >= 0], args.n_train, replace=False))
        arms = {
            "curated": SplitDataset(task.labeled.source, cur_idx, pipe, train=True),
            # The pool's hidden labels are used here, and only here, to measure the shift.
            "pool": SplitDataset(pool.source, pool_idx, pipe, train=True),
        }
        row: dict[str, float] = {"seed": seed}
        for arm, ds in arms.items():
            torch.manual_seed(seed)
            model = small_cnn(task.num_classes, args.width)
            row[f"{arm}_train_s"] = train(model, ds, args.epochs, seed)
            row[f"{arm}_test_acc"] = accuracy(model, test_x, test_y)
        if args.capacity:
            torch.manual_seed(seed)
            big = small_cnn(task.num_classes, 2 * args.width)
            row["wide_train_s"] = train(big, arms["curated"], args.epochs, seed)
            row["wide_test_acc"] = accuracy(big, test_x, test_y)
        row["drop_pt"] = 100.0 * (row["curated_test_acc"] - row["pool_test_acc"])
        runs.append(row)
        print(json.dumps(row), flush=True)

    summary = {}
    for key in ("curated_test_acc", "pool_test_acc", "drop_pt") + (("wide_test_acc",) if args.capacity else ()):
        m, s = mean_std([r[key] for r in runs])
        summary[key] = {"mean": m, "std": s}
    result = {
        "benchmark": "data_shift",
        "command": "python benchmarks/data_shift.py " + " ".join(sys.argv[1:]),
        "question": "accuracy on the curated shapes test set lost by training on the shifted pool instead",
        "setup": {
            "n_train_per_arm": args.n_train,
            "epochs": args.epochs,
            "seeds": args.seeds,
            "model": f"4-conv CNN width {args.width} (BN, ReLU, max-pool, GAP, linear)",
            "params": sum(p.numel() for p in small_cnn(task.num_classes, args.width).parameters()),
            "optimizer": "SGD nesterov momentum 0.9, wd 5e-4, one-cycle lr 0.1, batch 128",
            "augmentation": f"toolkit's shapes training augmentation ({task.augment})",
            "test_images": int(len(test_y)),
            "pool_images": len(pool),
            "pool_ood_share": ood_share,
            "preprocessing": task.preprocessing.to_dict(),
            "generate_full_default_s": gen_s,
            "generate_full_default_cpu_s": gen_cpu_s,
            "data_load_s": load_s,
        },
        "runs": runs,
        "summary": summary,
        "machine": {
            "note": "shared 2-core VM, other jobs running; 1 torch thread; wall times are indicative only",
            "python": platform.python_version(),
            "torch": torch.__version__,
            "cpu": cpu_model(),
        },
        "wall_s": time.perf_counter() - t_start,
        "cpu_s": time.process_time() - cpu_start,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "data_shift.json", json.dumps(result, indent=2) + "\n")
    atomic_write_text(args.out / "data_shift.md", to_markdown(result))
    print(to_markdown(result))


def to_markdown(r: dict) -> str:
    s, su = r["setup"], r["summary"]

    def pct(key: str) -> str:
        return f"{100 * su[key]['mean']:.1f} ± {100 * su[key]['std']:.1f} %"

    lines = [
        "# Data shift: curated `shapes` vs the `shapes-pool` style",
        "",
        f"Command: `{r['command']}` on {r['machine']['cpu']}.",
        "",
        f"Same CNN ({s['model']}, {s['params']:,} params), same recipe ({s['optimizer']}, {s['epochs']} epochs, "
        f"{s['augmentation']}), {s['n_train_per_arm']} training images per arm, {s['seeds']} seeds. "
        f"Evaluated on the {s['test_images']} curated test images. The pool holds {s['pool_images']} images, "
        f"{100 * s['pool_ood_share']:.0f}% of them out-of-class (excluded from the pool arm).",
        "",
        "| trained on | curated test accuracy (mean ± std) |",
        "| --- | --- |",
        f"| curated train, labels | {pct('curated_test_acc')} |",
        f"| pool, hidden labels | {pct('pool_test_acc')} |",
    ]
    if "wide_test_acc" in su:
        lines.append(f"| curated train, labels, 2x wider CNN | {pct('wide_test_acc')} |")
    lines += [
        "",
        f"**Accuracy lost to the shift: {su['drop_pt']['mean']:.1f} ± {su['drop_pt']['std']:.1f} points** "
        "(per seed: " + ", ".join(f"{x['drop_pt']:.1f}" for x in r["runs"]) + ").",
        "",
        "| seed | curated | pool | drop (pt) | train s (curated / pool) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for x in r["runs"]:
        lines.append(
            f"| {x['seed']} | {100 * x['curated_test_acc']:.1f} % | {100 * x['pool_test_acc']:.1f} % | "
            f"{x['drop_pt']:.1f} | {x['curated_train_s']:.0f} / {x['pool_train_s']:.0f} |"
        )
    lines += [
        "",
        f"Machine: {r['machine']['note']}. torch {r['machine']['torch']}, Python {r['machine']['python']}. "
        f"Total {r['wall_s']:.0f} s wall, {r['cpu_s']:.0f} s CPU. Generating the full default `shapes` "
        f"(30,000 + 5,000 + 5,000) and `shapes-pool` (30,000) into an empty cache took "
        f"{s['generate_full_default_cpu_s']:.1f} s CPU ({s['generate_full_default_s']:.1f} s wall on the shared machine; "
        f"target < 30 s on one core); loading them back from the cache {s['data_load_s']:.2f} s.",
        "",
        "Command: `flock /tmp/edgecompress-cpu.lock .venv/bin/python benchmarks/data_shift.py`",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
