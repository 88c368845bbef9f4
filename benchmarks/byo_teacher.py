"""Bring-your-own-teacher figures: a `.pt2` teacher's speed against the same network in eager
mode, and its accuracy through edgecompress against its accuracy in its own code.

* Speed: a VGG-style net with squeeze-excite and hardswish (the bring-your-own-teacher issue's
  kind), exported as users do (`torch.export`, static batch 1), run on batches of 128 with the
  embedding tap on (as distillation runs it): eager module, the lifted `.pt2` teacher, and the
  program as exported (per image through an fx interpreter, the previous path). Medians of
  interleaved repeats; the ratio to eager is measured in the same run.
* Accuracy: a small CNN trained here on `digits` with `(x - 0.5) / 0.5`, saved as `.pt2`;
  test accuracy in its own code vs through `load_task(--normalize half)` + the loaded teacher,
  and what the preflight normalization check reports with the data's statistics.

    .venv/bin/python benchmarks/byo_teacher.py     # ~1 min on 2 cores

Writes benchmarks/results/byo_teacher.{json,md}.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.default_build import int8_flags  # noqa: E402
from edgecompress.bench.device_runner import cpu_model  # noqa: E402
from tests import byo_teachers as B  # noqa: E402

REPEATS = 7
BATCH = 128


def _timed(fn: object) -> float:
    t = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - t


def speed(tmp: Path) -> dict[str, object]:
    from edgecompress.distill.teacher import ModuleTeacher
    from edgecompress.distill.teacher_exported import ExportedTeacher
    from edgecompress.distill.teacher_load import load_teacher

    torch.manual_seed(0)
    model = B.VggSE(12, 32).eval()
    path = B.save_pt2(model, tmp / "vgg.pt2")
    x = torch.randn(BATCH, *B.SHAPE)
    eager = ModuleTeacher(model, None, "module")
    lifted = load_teacher(path)
    exported = load_teacher(path)
    assert isinstance(lifted, ExportedTeacher) and isinstance(exported, ExportedTeacher)
    exported._fall_back("benchmark: the previous path")  # the program as exported, image by image
    ref = eager(x)
    for t in (lifted, exported):
        out = t(x)  # warm-up, and the three agree
        torch.testing.assert_close(out.logits, ref.logits, atol=1e-3, rtol=1e-3)
        torch.testing.assert_close(out.embedding, ref.embedding, atol=1e-3, rtol=1e-3)
    times: dict[str, list[float]] = {"eager": [], "pt2_lifted": [], "pt2_as_exported": []}
    for _ in range(REPEATS):  # interleaved, so drift on a shared machine hits all three alike
        times["eager"].append(_timed(lambda: eager(x)))
        times["pt2_lifted"].append(_timed(lambda: lifted(x)))
        if len(times["pt2_as_exported"]) < 3:  # ~10 s each: three are enough for its median
            times["pt2_as_exported"].append(_timed(lambda: exported(x)))
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "model": "VggSE(width 32): conv-BN-hardswish + squeeze-excite, head.2 classifier; .pt2 exported at batch 1",
        "batch": BATCH,
        "median_s": {k: round(v, 4) for k, v in med.items()},
        "spread_s": {k: [round(min(v), 4), round(max(v), 4)] for k, v in times.items()},
        "ratio_to_eager": {k: round(med[k] / med["eager"], 3) for k in med},
        "target_ratio": 1.2,
    }


def accuracy(tmp: Path) -> dict[str, object]:
    from edgecompress.data import load_task
    from edgecompress.distill.norm_check import check_normalization
    from edgecompress.distill.teacher_load import load_teacher
    from edgecompress.preprocess_options import PreprocessOptions

    model = B.digits_teacher(B.half, steps=400)
    own = B.accuracy_on(model, B.half, B.DIGITS)
    torch.export.save(torch.export.export(model, (torch.zeros(1, *B.DIGITS_SHAPE),)), tmp / "half.pt2")
    teacher = load_teacher(tmp / "half.pt2", num_classes=10)
    opts = PreprocessOptions.parse({"normalize": "half"}, "options")
    task = load_task(B.DIGITS, progress=False, **opts.task_kwargs())
    x, y = task.test.tensors()
    through = float((teacher(x).logits.argmax(1) == y).float().mean() * 100)
    wrong = load_task(B.DIGITS, progress=False)  # the data's statistics
    xw, yw = wrong.test.tensors()
    check = check_normalization(teacher, wrong, PreprocessOptions())
    return {
        "teacher": "SmallCNN trained on digits with (x - 0.5) / 0.5, saved as .pt2",
        "test_acc_own_code": round(own, 2),
        "test_acc_through_edgecompress": round(through, 2),
        "difference_pt": round(through - own, 2),
        "test_acc_with_data_statistics": round(float((teacher(xw).logits.argmax(1) == yw).float().mean() * 100), 2),
        "preflight_check": check.to_dict(),
    }


def main() -> None:
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        result = {
            "command": "python benchmarks/byo_teacher.py",
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs (shared VM)",
            "cpu": cpu_model(),
            "int8_flags": int8_flags(),
            "torch": torch.__version__,
            "speed": speed(tmp),
            "accuracy": accuracy(tmp),
        }
    out = ROOT / "benchmarks" / "results"
    (out / "byo_teacher.json").write_text(json.dumps(result, indent=2) + "\n")
    s, a = result["speed"], result["accuracy"]
    md = [
        "# Bring-your-own teacher", "", f"`{result['command']}` on {result['cpu']} ({result['machine']}).", "",
        f"Speed, batch {s['batch']} with the embedding tap (median of interleaved repeats, [min, max]):", "",
        "| teacher | median s | spread s | vs eager |", "|---|---|---|---|",
        *[f"| {k} | {s['median_s'][k]} | {s['spread_s'][k]} | {s['ratio_to_eager'][k]}x |" for k in s["median_s"]],
        "", f"Target: .pt2 within {s['target_ratio']}x of eager.", "",
        "Accuracy of a teacher trained with (x - 0.5) / 0.5 (digits test split):", "",
        f"- in its own code: {a['test_acc_own_code']}%",
        f"- through edgecompress with `--normalize half`: {a['test_acc_through_edgecompress']}% "
        f"({a['difference_pt']:+.2f} pt; target within 0.1 pt)",
        f"- with the data's statistics (the old default): {a['test_acc_with_data_statistics']}%; the preflight check "
        f"suggests `{a['preflight_check']['better']}`",
        "",
    ]
    (out / "byo_teacher.md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
