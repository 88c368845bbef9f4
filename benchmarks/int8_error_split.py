"""Where int8 disagreement comes from, and how far any 8-bit-weight scheme can go (issue 17).

For each student of the fidelity set trained briefly on ``shapes`` (the hard case: near-tied
logits), every number is top-1 agreement with the float model on the 1,000 validation images,
next to the share of near-tied images (top-2 logits closer than 5% of the logits' standard
deviation, as ``int8_accuracy.py`` counts them):

- **simulated in PyTorch** (``export.qat.simulated_logits``: weights per output channel on the
  BN-folded grid, 8-bit per-tensor asymmetric activations with ranges observed on the 256
  calibration images the exporter uses): weights only, activations only, both; weights only
  after *bias correction* (Nagel et al. 2019: layer by layer, the per-channel mean shift that
  weight rounding causes at the layer's output on the calibration images is taken out of its
  bias); and the fake-quant model of the export's QAT fine-tune (``qat_finetune``, 60 steps, the
  default, and 300);
- **real LiteRT files** from one onnx2tf run of the same student: full-int8 (8-bit weights and
  activations), int16 activations with 8-bit weights (onnx2tf's ``*_with_int16_act``, TFLite's
  16x8 mode), dynamic-range int8 and fp16, with their latency over fp32 (median of single-sample
  calls, 1 thread, under the shared CPU lock).

"weights only" (and its bias-corrected variant) bounds every scheme that puts all weights on the
8-bit grid: full-int8, 16x8, a QAT'd int8 file. Dynamic-range files are not bound by it: the
TFLite converter leaves weight tensors under 1,024 elements in float there.

    .venv/bin/python benchmarks/int8_error_split.py          # ~10 min on the shared 2-core VM

Writes ``benchmarks/results/int8_error_split.{json,md}``.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from default_build import int8_flags  # noqa: E402
from export_fidelity import ARCHS, _arrays, cpu_lock, train  # noqa: E402
from int8_accuracy import near_tie_share  # noqa: E402

from edgecompress.artifacts import atomic_write_text  # noqa: E402
from edgecompress.bench.device_runner import cpu_model  # noqa: E402
from edgecompress.export.qat import (  # noqa: E402
    fake_quant_logits,
    model_agreement,
    on_weight_grid,
    qat_finetune,
    simulated_logits,
)

DEFAULT_ARCHS = "mobilenet d1 w0.5,mobilenet d2 w1.0,resnet d1 w0.5,resnet d2 w1.0"
MODES = {"weights only": (True, False), "activations only": (False, True), "both": (True, True)}
QAT_STEPS = (60, 300)
# onnx2tf's files (suffix after the ONNX stem) -> column; fp32 is the latency reference.
TFLITE_FILES = {"float32": "fp32", "full_integer_quant": "tflite W8A8", "full_integer_quant_with_int16_act": "tflite W8A16",
                "dynamic_range_quant": "tflite dynamic", "float16": "tflite fp16"}
TFLITE_COLUMNS = [c for c in TFLITE_FILES.values() if c != "fp32"]
COLUMNS = ["weights only", "weights, bias-corrected", "activations only", "both",
           *(f"QAT {n} steps" for n in QAT_STEPS), *TFLITE_COLUMNS]


def bias_corrected(model: nn.Module, calib: np.ndarray, qmax: int = 127) -> nn.Module:
    """A copy of ``model`` with empirical bias correction for the int8 weight grid.

    Layer by layer in module order (each conv-BN's BN, each bias-carrying conv without BN, each
    linear), with every layer on the grid and the layers before it already corrected, the
    per-channel mean of (its output - the float model's) on ``calib`` is subtracted from its
    bias. Weights are untouched, so the runtime's quantizer puts them on the same grid."""
    fixed = copy.deepcopy(model).eval()
    x = torch.from_numpy(np.ascontiguousarray(calib, np.float32))
    reference = _output_means(model, x, len(_bias_layers(model)))
    for i, layer in enumerate(_bias_layers(fixed)):
        shifted = _output_means(on_weight_grid(fixed, qmax), x, i + 1)[i]
        with torch.no_grad():
            layer.bias -= shifted - reference[i]
    return fixed


def _bias_layers(model: nn.Module) -> list[nn.Module]:
    mods = list(model.modules())
    out = []
    for m, nxt in zip(mods, mods[1:] + [None], strict=True):
        if getattr(m, "bias", None) is None:  # nothing to correct (a BN without affine, a bias-free layer)
            continue
        if isinstance(m, (nn.BatchNorm2d, nn.Linear)) or (isinstance(m, nn.Conv2d) and not isinstance(nxt, nn.BatchNorm2d)):
            out.append(m)
    return out


def _output_means(model: nn.Module, x: torch.Tensor, count: int) -> list[torch.Tensor]:
    """Per-channel output means of the first ``count`` bias layers of ``model`` on ``x``."""
    means: dict[int, torch.Tensor] = {}

    def hook(i: int) -> Any:
        return lambda _m, _a, out: means.__setitem__(i, out.mean(dim=[0, 2, 3] if out.dim() == 4 else [0]))

    hooks = [layer.register_forward_hook(hook(i)) for i, layer in enumerate(_bias_layers(model)[:count])]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return [means[i] for i in range(count)]


def tflite_rows(model: nn.Module, pre: Any, calib: np.ndarray, vx: np.ndarray, ref: np.ndarray, work: Path,
                runs: int) -> dict[str, Any]:
    """Agreement and latency / fp32 of onnx2tf's files for ``model``: the exporter's own fp32 graph
    and converter run (``onnx2tf_outputs``), which writes every file at once."""
    from int8_accuracy import median_ms

    from edgecompress.export import ExportConfig
    from edgecompress.export.context import ExportContext
    from edgecompress.export.formats import run
    from edgecompress.export.onnx_recipes import fp32_onnx
    from edgecompress.export.tflite_recipes import onnx2tf_outputs

    work.mkdir(parents=True, exist_ok=True)
    ctx = ExportContext(model, pre, ExportConfig(formats=("tflite",), precisions=("fp32", "dynamic-int8", "int8")),
                        work, calib)
    folder, _ = onnx2tf_outputs(ctx)
    files = {col: folder / f"{fp32_onnx(ctx).stem}_{suffix}.tflite" for suffix, col in TFLITE_FILES.items()}
    out: dict[str, Any] = {col: model_agreement(ref, run("tflite", path, vx, ctx.config.layout))
                           for col, path in files.items() if col != "fp32"}
    with cpu_lock():
        ms = {col: median_ms(str(path), "tflite", vx, runs) for col, path in files.items()}
    out["latency_ms"] = {col: round(v, 4) for col, v in ms.items()}
    out["latency_ratio"] = {col: round(v / ms["fp32"], 3) for col, v in ms.items() if col != "fp32"}
    return out


def split_row(name: str, epochs: int, work: Path, runs: int) -> dict[str, Any]:
    names = [a[0] for a in ARCHS]
    if name not in names:
        raise SystemExit(f"error: --archs: {name!r} is not a fidelity architecture (choose from: {', '.join(names)})")
    from edgecompress.data import load_task

    _, source, build = ARCHS[names.index(name)]
    seed = names.index(name)  # the fidelity run's seed for this architecture: the same model
    task = load_task(source, calib_size=1024, progress=False)
    torch.manual_seed(seed)
    model = build(task.input_shape, task.num_classes)
    acc = train(model, task, epochs, seed=seed)
    pool, _ = _arrays(task.calibration, 1024)
    calib = pool[:256]  # the exporter's calibration subset; QAT trains on the whole pool
    vx, _ = _arrays(task.val, 1000)
    with torch.no_grad():
        ref = model(torch.from_numpy(vx)).numpy()
    row: dict[str, Any] = {"arch": name, "epochs": epochs, "float_acc": round(acc, 2),
                           "near_tie_share": round(near_tie_share(model, vx), 4), "n_val": len(vx)}
    for mode, (w, a) in MODES.items():
        row[mode] = model_agreement(ref, simulated_logits(model, calib, vx, weights=w, activations=a))
    row["weights, bias-corrected"] = model_agreement(
        ref, simulated_logits(bias_corrected(model, calib), calib, vx, weights=True, activations=False))
    for steps in QAT_STEPS:
        qat_model, _ = qat_finetune(model, pool, qmax=127, steps=steps, observe=calib)
        row[f"QAT {steps} steps"] = model_agreement(ref, fake_quant_logits(qat_model, calib, vx))
    row.update(tflite_rows(model, task.preprocessing, calib, vx, ref, work / f"a{seed}", runs))
    return row


def markdown(res: dict[str, Any]) -> str:
    lines = ["# int8 error split and ceiling: weights vs activations, and how far 8-bit weights go", "",
             f"Command: `{res['command']}`  ", f"CPU: {res['cpu']} (int8 flags: {', '.join(res['cpu_int8_flags']) or 'none read'}); "
             f"{res['wall_s']:.0f} s", "",
             "Top-1 agreement with the float model on the validation images. Simulated (PyTorch): only the weights, "
             "only the activations, or both on the runtimes' int8 grid; weights after bias correction; the QAT "
             "fine-tune's fake-quant model. Real LiteRT files from one onnx2tf run: W8A8 (full-int8), W8A16 (int16 "
             "activations), dynamic-range int8, fp16; latency / fp32 below.", "",
             "| architecture | epochs | float acc | near ties | " + " | ".join(COLUMNS) + " |",
             "|---|---|---|---|" + "---|" * len(COLUMNS)]
    for r in res["rows"]:
        lines.append(f"| {r['arch']} | {r['epochs']} | {r['float_acc']:.1f}% | {r['near_tie_share']:.1%} | "
                     + " | ".join(f"{r[c]:.1%}" for c in COLUMNS) + " |")
    lines += ["", "LiteRT latency / fp32 (median of single-sample calls, 1 thread):", "",
              "| architecture | fp32 ms | " + " | ".join(TFLITE_COLUMNS) + " |",
              "|---|---|" + "---|" * len(TFLITE_COLUMNS)]
    for r in res["rows"]:
        lines.append(f"| {r['arch']} | {r['latency_ms']['fp32']:.3f} | "
                     + " | ".join(f"{r['latency_ratio'][c]:.2f}x" for c in TFLITE_COLUMNS) + " |")
    lines += ["", "Mean: " + ", ".join(f"{c} {res['mean'][c]:.1%}" for c in COLUMNS)]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--archs", default=DEFAULT_ARCHS, help="comma list of fidelity architectures")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--runs", type=int, default=300, help="timed calls per latency median")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory(prefix="int8-error-split-") as tmp:
        for name in [a.strip() for a in args.archs.split(",") if a.strip()]:
            rows.append(split_row(name, args.epochs, Path(tmp), args.runs))
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    res = {"command": " ".join([".venv/bin/python", "benchmarks/int8_error_split.py", *sys.argv[1:]]), "cpu": cpu_model(),
           "cpu_int8_flags": int8_flags(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "rows": rows, "wall_s": round(time.perf_counter() - t0, 1),
           "mean": {c: float(np.mean([r[c] for r in rows])) for c in COLUMNS}}
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "int8_error_split.json", json.dumps(res, indent=1) + "\n")
    atomic_write_text(args.out / "int8_error_split.md", markdown(res))
    print(markdown(res))


if __name__ == "__main__":
    main()
