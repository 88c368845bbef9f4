"""Train a built-in demo teacher once and ship its weights in the package.

    .venv/bin/python scripts/train_demo_teacher.py [--dataset shapes] [--seed 0]

Writes ``edgecompress/distill/demo_weights/<stem>.pt`` (the state_dict in fp16: half the
bytes, and the teacher's accuracy is measured *after* the round trip, so the recorded figure is
the shipped model's) and ``<stem>.json`` (accuracy, training time, recipe, sha256 of the weights
and this command). ``<stem>`` is the demo-teacher cache key, so the package only ever serves
weights to the exact dataset / seed / recipe / data-generator version they were trained for.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import io
import json
import platform
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgecompress.artifacts import atomic_write_bytes, atomic_write_text  # noqa: E402

dt = importlib.import_module("edgecompress.distill.demo_teacher")  # the module (the package exports a function of that name)
from edgecompress.distill.streams import stack_dataset  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="shapes")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    stem = dt.demo_teacher_paths(args.dataset, seed=args.seed)["pt2"].name.removesuffix(".pt2")
    model, info = dt._train(args.dataset, args.seed, None, progress=False, log_every=100)
    half = {k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    buf = io.BytesIO()
    torch.save(half, buf)
    blob = buf.getvalue()
    # Accuracy of the weights as shipped (fp16 -> fp32), not of the fp32 model in memory.
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in half.items()})
    from edgecompress.data import load_task

    task = load_task(args.dataset, labeled_fraction=1.0, seed=args.seed, progress=False)
    for split in ("val", "test"):
        x, y = stack_dataset(getattr(task, split))
        info[f"{split}_acc"] = dt.accuracy(model, x, y)
    weights, record = dt.shipped_paths(stem)
    info.update({
        "weights_sha256": hashlib.sha256(blob).hexdigest(),
        "weights_dtype": "float16",
        "command": f"python scripts/train_demo_teacher.py --dataset {args.dataset} --seed {args.seed}",
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "torch": torch.__version__,
    })
    atomic_write_bytes(weights, blob)
    atomic_write_text(record, json.dumps(info, indent=2) + "\n")
    print(json.dumps({k: info[k] for k in ("val_acc", "test_acc", "train_s", "params", "steps", "weights_sha256")}, indent=2))
    print(f"wrote {weights} ({len(blob) / 2**20:.2f} MB) and {record}")


if __name__ == "__main__":
    main()
