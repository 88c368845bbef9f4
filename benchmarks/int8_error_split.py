"""Where int8 disagreement comes from: weights or activations (issue 17's agreement misses).

For each student of the fidelity set trained briefly on ``shapes`` (the hard case: near-tied
logits), the runtimes' int8 scheme is simulated in PyTorch (``export.qat.simulated_logits``:
weights per output channel on the BN-folded grid, 8-bit per-tensor asymmetric activations with
ranges observed on the 256 calibration images the exporter uses) three ways: weights only,
activations only, both. Each is scored by top-1 agreement with the float model on the 1,000
validation images, next to the share of near-tied images (top-2 logits closer than 5% of the
logits' standard deviation, as ``int8_accuracy.py`` counts them).

A simulation, not the artifact: it tells which half of the scheme to work on; the artifacts'
own agreement is in ``export_fidelity`` and ``int8_accuracy``.

    .venv/bin/python benchmarks/int8_error_split.py          # ~3 min on the shared 2-core VM

Writes ``benchmarks/results/int8_error_split.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from export_fidelity import ARCHS, _arrays, train  # noqa: E402
from int8_accuracy import near_tie_share  # noqa: E402

from edgecompress.artifacts import atomic_write_text  # noqa: E402
from edgecompress.bench.device_runner import cpu_model  # noqa: E402
from edgecompress.export.qat import model_agreement, simulated_logits  # noqa: E402

DEFAULT_ARCHS = "mobilenet d1 w0.5,mobilenet d2 w1.0,resnet d1 w0.5,resnet d2 w1.0"
MODES = {"weights only": (True, False), "activations only": (False, True), "both": (True, True)}


def split_row(name: str, epochs: int) -> dict[str, Any]:
    names = [a[0] for a in ARCHS]
    if name not in names:
        raise SystemExit(f"error: --archs: {name!r} is not a fidelity architecture (choose from: {', '.join(names)})")
    from edgecompress.data import load_task

    _, source, build = ARCHS[names.index(name)]
    seed = names.index(name)  # the fidelity run's seed for this architecture: the same model
    task = load_task(source, progress=False)
    torch.manual_seed(seed)
    model = build(task.input_shape, task.num_classes)
    acc = train(model, task, epochs, seed=seed)
    calib, _ = _arrays(task.calibration, 256)
    vx, _ = _arrays(task.val, 1000)
    with torch.no_grad():
        ref = model(torch.from_numpy(vx)).numpy()
    row: dict[str, Any] = {"arch": name, "epochs": epochs, "float_acc": round(acc, 2),
                           "near_tie_share": round(near_tie_share(model, vx), 4), "n_val": len(vx)}
    for mode, (w, a) in MODES.items():
        row[mode] = model_agreement(ref, simulated_logits(model, calib, vx, weights=w, activations=a))
    return row


def markdown(res: dict[str, Any]) -> str:
    lines = ["# int8 error split: weights vs activations (simulated)", "",
             f"Command: `{res['command']}`  ", f"CPU: {res['cpu']}; {res['wall_s']:.0f} s", "",
             "Top-1 agreement with the float model on the validation images when only the weights, only the "
             "activations, or both are put on the runtimes' int8 grid (PyTorch simulation).", "",
             "| architecture | epochs | float acc | near ties | weights only | activations only | both |",
             "|---|---|---|---|---|---|---|"]
    for r in res["rows"]:
        lines.append(f"| {r['arch']} | {r['epochs']} | {r['float_acc']:.1f}% | {r['near_tie_share']:.1%} | "
                     f"{r['weights only']:.1%} | {r['activations only']:.1%} | {r['both']:.1%} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--archs", default=DEFAULT_ARCHS, help="comma list of fidelity architectures")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    rows = []
    for name in [a.strip() for a in args.archs.split(",") if a.strip()]:
        rows.append(split_row(name, args.epochs))
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    res = {"command": " ".join([".venv/bin/python", "benchmarks/int8_error_split.py", *sys.argv[1:]]), "cpu": cpu_model(),
           "rows": rows, "wall_s": round(time.perf_counter() - t0, 1),
           "mean": {m: float(np.mean([r[m] for r in rows])) for m in MODES}}
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "int8_error_split.json", json.dumps(res, indent=1) + "\n")
    atomic_write_text(args.out / "int8_error_split.md", markdown(res))
    print(markdown(res))


if __name__ == "__main__":
    main()
