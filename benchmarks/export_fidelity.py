"""Export fidelity: does every architecture convert, and does each artifact agree with PyTorch?

What it does:
1. trains each architecture briefly on built-in data (``shapes`` 3x32x32, ``digits`` 1x16x16):
   the registry's student families at several depths/widths, plus blocks users bring
   (squeeze-excite + hardswish, SiLU, ReLU6 + concat, bilinear/nearest upsample + skip concat,
   residual add + a hand-written ``x.mean((2, 3))`` head), defined below;
2. exports each with ``edgecompress.export.export_module`` to ONNX fp32 / fp16 / int8 (QDQ)
   and TFLite fp32 / fp16 / dynamic-int8 / full-int8 (NHWC), parity measured through ONNX
   Runtime and the LiteRT interpreter on the validation split, gate not enforced so that
   failures are measured rather than hidden;
3. measures TFLite full-int8 vs fp32 latency on this host with ``edgecompress.bench.benchmark``
   (a fresh process per measurement, 1 thread) for students big enough that per-call overhead
   does not dominate (3x128x128 input), rounds interleaved, under the shared CPU lock.

    .venv/bin/python benchmarks/export_fidelity.py            # ~15-25 min on the shared 2-core VM

Writes ``benchmarks/results/export_fidelity.json`` and ``export_fidelity.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import platform
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from edgecompress.artifacts import Preprocessing, StudentSpec, atomic_write_text
from edgecompress.bench.device_runner import cpu_model
from edgecompress.export import ExportConfig, export_module

RESULTS = Path(__file__).resolve().parent / "results"
sys.path.insert(0, str(Path(__file__).resolve().parent))
from default_build import int8_flags  # noqa: E402  (stdlib only: VNNI / AMX / AVX2 flags of this CPU)

SHAPES = "shapes:train=2000,val=1000,test=200"
TARGETS = {"conversion_rate": 1.0, "int8_min_agreement": 0.99, "int8_max_acc_drop_pt": 0.5, "tflite_int8_latency_ratio": 0.5}
INT8 = {"int8", "full-int8", "dynamic-int8"}


# --------------------------------------------------------------------------- user-style models


class SEHardswishNet(nn.Module):
    """Conv-BN-hardswish stages with a squeeze-excite gate (sigmoid) on each."""

    def __init__(self, cin: int, classes: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for c_in, c_out in ((cin, 16), (16, 32), (32, 48)):
            layers += [nn.Conv2d(c_in, c_out, 3, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.Hardswish(), SE(c_out)]
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(48, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(nn.functional.adaptive_avg_pool2d(self.features(x), 1).flatten(1))


class SE(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Conv2d(c, max(4, c // 4), 1), nn.Conv2d(max(4, c // 4), c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        return x * torch.sigmoid(self.fc2(torch.relu(self.fc1(s))))


class SiLUNet(nn.Module):
    """EfficientNet-style: SiLU everywhere, depthwise convs, residual adds."""

    def __init__(self, cin: int, classes: int) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(cin, 24, 3, 2, 1, bias=False), nn.BatchNorm2d(24), nn.SiLU())
        self.dw = nn.Sequential(nn.Conv2d(24, 24, 3, 1, 1, groups=24, bias=False), nn.BatchNorm2d(24), nn.SiLU(),
                                nn.Conv2d(24, 24, 1, bias=False), nn.BatchNorm2d(24))
        self.down = nn.Sequential(nn.Conv2d(24, 48, 3, 2, 1, bias=False), nn.BatchNorm2d(48), nn.SiLU())
        self.head = nn.Linear(48, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.stem(x)
        y = nn.functional.silu(y + self.dw(y))
        return self.head(nn.functional.adaptive_avg_pool2d(self.down(y), 1).flatten(1))


class ReLU6ConcatNet(nn.Module):
    """Inception-style: two ReLU6 branches (3x3, 5x5 via two 3x3) concatenated on channels."""

    def __init__(self, cin: int, classes: int) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(cin, 16, 3, 2, 1), nn.ReLU6())
        self.a = nn.Sequential(nn.Conv2d(16, 16, 3, 1, 1), nn.ReLU6())
        self.b = nn.Sequential(nn.Conv2d(16, 8, 3, 1, 1), nn.ReLU6(), nn.Conv2d(8, 16, 3, 1, 1), nn.ReLU6())
        self.mix = nn.Sequential(nn.Conv2d(32, 48, 3, 2, 1), nn.ReLU6())
        self.head = nn.Linear(48, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.stem(x)
        y = self.mix(torch.cat([self.a(y), self.b(y)], 1))
        return self.head(nn.functional.adaptive_avg_pool2d(y, 1).flatten(1))


class UpsampleNet(nn.Module):
    """U-Net-ish: downsample twice, upsample (nearest, then bilinear) with skip concats."""

    def __init__(self, cin: int, classes: int) -> None:
        super().__init__()
        self.e1 = nn.Sequential(nn.Conv2d(cin, 16, 3, 1, 1), nn.ReLU())
        self.e2 = nn.Sequential(nn.Conv2d(16, 32, 3, 2, 1), nn.ReLU())
        self.e3 = nn.Sequential(nn.Conv2d(32, 32, 3, 2, 1), nn.ReLU())
        self.d2 = nn.Sequential(nn.Conv2d(64, 32, 3, 1, 1), nn.ReLU())
        self.d1 = nn.Sequential(nn.Conv2d(48, 32, 3, 2, 1), nn.ReLU())
        self.head = nn.Linear(32, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s1 = self.e1(x)
        s2 = self.e2(s1)
        y = self.e3(s2)
        y = self.d2(torch.cat([nn.functional.interpolate(y, scale_factor=2.0, mode="nearest"), s2], 1))
        y = torch.cat([nn.functional.interpolate(y, scale_factor=2.0, mode="bilinear", align_corners=False), s1], 1)
        return self.head(nn.functional.adaptive_avg_pool2d(self.d1(y), 1).flatten(1))


class ResidualMeanNet(nn.Module):
    """Residual adds and a hand-written spatial mean head (``x.mean((2, 3))``), as in timm."""

    def __init__(self, cin: int, classes: int) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(cin, 32, 3, 2, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU())
        self.r1 = nn.Sequential(nn.Conv2d(32, 32, 3, 1, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
                                nn.Conv2d(32, 32, 3, 1, 1, bias=False), nn.BatchNorm2d(32))
        self.down = nn.Sequential(nn.Conv2d(32, 64, 3, 2, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU())
        self.head = nn.Linear(64, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.stem(x)
        y = torch.relu(y + self.r1(y))
        return self.head(self.down(y).mean((2, 3)))


# --------------------------------------------------------------------------- architectures


def _student(family: str, depth: int | None, width: float) -> Callable[[tuple[int, int, int], int], nn.Module]:
    def build(shape: tuple[int, int, int], classes: int) -> nn.Module:
        from edgecompress.students import create_student
        from edgecompress.students import families as fam

        arch = {
            "mobilenet": lambda: fam.mobilenet_arch(shape, depth or 1),
            "resnet": lambda: fam.resnet_arch(shape, depth or 1),
            "test_mobilenet": lambda: fam.TEST_MOBILENET,
            "test_resnet": lambda: fam.TEST_RESNET,
        }[family]()
        return create_student(StudentSpec(family=family, arch=arch, input_shape=shape, num_classes=classes, width_mult=width))

    return build


def _user(cls: type[nn.Module]) -> Callable[[tuple[int, int, int], int], nn.Module]:
    return lambda shape, classes: cls(shape[0], classes)


ARCHS: list[tuple[str, str, Callable[[tuple[int, int, int], int], nn.Module]]] = [
    ("mobilenet d1 w0.5", SHAPES, _student("mobilenet", 1, 0.5)),
    ("mobilenet d2 w1.0", SHAPES, _student("mobilenet", 2, 1.0)),
    ("resnet d1 w0.5", SHAPES, _student("resnet", 1, 0.5)),
    ("resnet d2 w1.0", SHAPES, _student("resnet", 2, 1.0)),
    ("test_mobilenet (SE, hardswish)", SHAPES, _student("test_mobilenet", None, 1.0)),
    ("test_resnet", SHAPES, _student("test_resnet", None, 1.0)),
    ("mobilenet d1 w0.5 @digits (1-ch)", "digits", _student("mobilenet", 1, 0.5)),
    ("resnet d1 w0.5 @digits (1-ch)", "digits", _student("resnet", 1, 0.5)),
    ("user: squeeze-excite + hardswish", SHAPES, _user(SEHardswishNet)),
    ("user: SiLU + depthwise + residual", SHAPES, _user(SiLUNet)),
    ("user: ReLU6 + concat", SHAPES, _user(ReLU6ConcatNet)),
    ("user: upsample + skip concat", SHAPES, _user(UpsampleNet)),
    ("user: residual add + x.mean head", SHAPES, _user(ResidualMeanNet)),
]


def _arrays(ds: Any, limit: int) -> tuple[np.ndarray, np.ndarray]:
    n = min(len(ds), limit)
    xs, ys = zip(*(ds[i] for i in range(n)), strict=True)
    return np.stack([np.asarray(x, np.float32) for x in xs]), np.asarray([int(y) for y in ys], np.int64)


def train(model: nn.Module, task: Any, epochs: int, seed: int) -> float:
    """A few epochs of Adam on the labeled split; returns the float validation accuracy."""
    torch.manual_seed(seed)
    loader = torch.utils.data.DataLoader(task.labeled, batch_size=64, shuffle=True, num_workers=0)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=epochs * len(loader))
    model.train()
    for _ in range(epochs):
        for x, y in loader:
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
            sched.step()
    model.eval()
    vx, vy = _arrays(task.val, len(task.val))
    with torch.no_grad():
        return float((model(torch.from_numpy(vx)).argmax(1).numpy() == vy).mean() * 100)


def export_rows(name: str, model: nn.Module, pre: Preprocessing, calib: np.ndarray, vx: np.ndarray, vy: np.ndarray,
                work: Path) -> list[dict[str, Any]]:
    """One row per (format, precision); a failed conversion is a row with converted=False."""
    plans = [("onnx", ("fp32", "fp16", "int8")), ("tflite", ("fp32", "fp16", "dynamic-int8", "int8"))]
    rows = []
    for fmt, precisions in plans:
        cfg = ExportConfig(formats=(fmt,), precisions=precisions, enforce_parity=False, parity_samples=len(vx))
        t0 = time.perf_counter()
        try:
            arts = export_module(model, pre, cfg, work / fmt, calib, vx, vy, progress=False)
            errors: dict[str, str] = {}
        except Exception as exc:  # a conversion failure is a result here, not a crash
            arts, errors = [], {"error": f"{type(exc).__name__}: {exc}"}
            traceback.print_exc(file=sys.stderr)
        total_s = time.perf_counter() - t0
        done = {a.precision: a for a in arts}
        for prec in precisions:
            canon = "full-int8" if (fmt, prec) == ("tflite", "int8") else prec
            a = done.get(canon)
            p = a.parity if a else None
            rows.append({
                "arch": name, "format": fmt, "precision": canon, "converted": a is not None,
                "top1_agreement": p.top1_agreement if p else None,
                "acc_reference": p.acc_reference if p else None,
                "acc_delta_pt": p.acc_delta_pt if p else None,
                "max_abs_diff": p.max_abs_diff if p else None,
                "parity_passed": p.passed if p else False,
                "export_s": a.export_s if a else None,
                "format_total_s": round(total_s, 2),
                "size_bytes": a.size_bytes if a else None,
                "transposes": (a.op_counts.get("Transpose", 0) + a.op_counts.get("TRANSPOSE", 0)) if a else None,
                "n_val": int(len(vy)),
                **(_int8_record(a) if a is not None and canon in INT8 else {}),
                **({"error": errors["error"][:500]} if errors else {}),
            })
    return rows


def _int8_record(a: Any) -> dict[str, Any]:
    """How the exporter's defaults (accuracy-aware int8, CPU-chosen ONNX weight bits) built this file."""
    qs = a.quant_settings or {}
    kept = next((t for t in a.attempts if t.chosen), None)
    return {
        "int8_steps": [t.step for t in a.attempts],  # empty: the first (plain PTQ) file passed the gate
        "int8_kept_step": kept.step if kept else ("ptq" if not a.attempts else None),
        "float_share": kept.float_share if kept else 0.0,
        "weight_bits": qs.get("weight_bits"),
        "io": qs.get("io"),
        "tuning_s": round(sum(t.seconds for t in a.attempts), 2),
    }


# --------------------------------------------------------------------------- latency


@contextlib.contextmanager
def cpu_lock(path: str = "/tmp/edgecompress-cpu.lock") -> Iterator[None]:
    """The machine-wide timing lock (same flock(2) lock as the `flock` command uses)."""
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def latency(work: Path, rounds: int, runs: int) -> dict[str, Any]:
    """TFLite full-int8 vs fp32 on host, 1 thread, for students at 3x128x128 (untrained weights:
    latency does not depend on their values), calibrated on shapes images at that size."""
    from edgecompress.bench import benchmark
    from edgecompress.cost import estimate_cost
    from edgecompress.data import load_task

    shape = (3, 128, 128)
    task = load_task("shapes:train=200,val=64,test=20", input_shape=shape, progress=False)
    calib, _ = _arrays(task.calibration, 64)
    vx, vy = _arrays(task.val, 64)
    out: dict[str, Any] = {"input_shape": list(shape), "threads": 1, "rounds": rounds, "runs_per_round": runs, "models": {}}
    models = {"mobilenet d2 w1.0": _student("mobilenet", 2, 1.0), "resnet d1 w1.0": _student("resnet", 1, 1.0)}
    paths: dict[str, dict[str, str]] = {}
    for name, build in models.items():
        torch.manual_seed(0)
        model = build(shape, task.num_classes).eval()
        cfg = ExportConfig(formats=("tflite",), precisions=("fp32", "int8"), enforce_parity=False, parity_samples=64)
        arts = export_module(model, task.preprocessing, cfg, work / "latency" / name.replace(" ", "_"), calib, vx, vy, progress=False)
        paths[name] = {a.precision: a.path for a in arts}
        i8 = next(a for a in arts if a.precision == "full-int8")
        out["models"][name] = {"macs": estimate_cost(model, shape).macs, "fp32_p50_ms": [], "int8_p50_ms": [], "ratio": [],
                               "int8_file": _int8_record(i8)}
    with cpu_lock():
        for _ in range(rounds):  # interleaved so slow drift of the shared machine hits both alike
            for name, p in paths.items():
                r32 = benchmark(p["fp32"], "host", threads=1, runs=runs, warmup=10, progress=False)
                r8 = benchmark(p["full-int8"], "host", threads=1, runs=runs, warmup=10, progress=False)
                m = out["models"][name]
                m["fp32_p50_ms"].append(r32.latency.p50_ms)
                m["int8_p50_ms"].append(r8.latency.p50_ms)
                m["ratio"].append(r8.latency.p50_ms / r32.latency.p50_ms)
                m["runtime"] = f"{r32.runtime} {r32.runtime_version}"
    for m in out["models"].values():
        m["ratio_median"] = statistics.median(m["ratio"])
        m["ratio_min"], m["ratio_max"] = min(m["ratio"]), max(m["ratio"])
    return out


# --------------------------------------------------------------------------- report


def summarize(rows: list[dict[str, Any]], lat: dict[str, Any] | None) -> dict[str, Any]:
    converted = sum(r["converted"] for r in rows) / len(rows)
    int8 = [r for r in rows if r["precision"] in INT8 and r["converted"]]
    agree_ok = [r for r in int8 if r["top1_agreement"] >= TARGETS["int8_min_agreement"]]
    drop_ok = [r for r in int8 if -r["acc_delta_pt"] <= TARGETS["int8_max_acc_drop_pt"]]
    ratio = statistics.median([m["ratio_median"] for m in lat["models"].values()]) if lat else None
    return {
        "conversion_rate": converted,
        "int8_rows": len(int8),
        "int8_agreement_met": f"{len(agree_ok)}/{len(int8)}",
        "int8_acc_drop_met": f"{len(drop_ok)}/{len(int8)}",
        "worst_int8_agreement": min((r["top1_agreement"] for r in int8), default=None),
        "worst_int8_acc_delta_pt": min((r["acc_delta_pt"] for r in int8), default=None),
        "fp32_worst_max_abs_diff": max((r["max_abs_diff"] for r in rows if r["precision"] == "fp32" and r["converted"]), default=None),
        "met": {
            "conversion_100pct": converted >= 1.0,
            "int8_agreement": len(agree_ok) == len(int8),
            "int8_acc_drop": len(drop_ok) == len(int8),
            "tflite_int8_latency": ratio is not None and ratio <= TARGETS["tflite_int8_latency_ratio"],
        },
    }


def _fmt(v: Any, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def markdown(result: dict[str, Any]) -> str:
    s = result["summary"]
    lines = [
        "# Export fidelity",
        "",
        f"Command: `{result['command']}`  ",
        f"Machine: {result['machine']}  ",
        f"CPU: {result['cpu']} (int8 flags: {', '.join(result['cpu_int8_flags']) or 'none read'})  ",
        f"Export: {result['export_config']}  ",
        f"Date: {result['date']}, total {result['wall_s'] / 60:.1f} min; architectures run: {result['architectures']}",
        "",
        "Each architecture trained briefly on built-in data, exported, and every artifact run through its own "
        "runtime (ONNX Runtime 1 thread, LiteRT interpreter) on the validation split and compared with eager PyTorch. "
        "agreement = share of samples with the same top-1 class; acc Δ = artifact accuracy minus PyTorch accuracy "
        "(points); max|d| = largest logit difference. Gate not enforced here, so failures are measured, not hidden.",
        "",
        "## Targets",
        "",
        "| target | measured | met |",
        "|---|---|---|",
        f"| 100% conversion | {s['conversion_rate']:.1%} | {'yes' if s['met']['conversion_100pct'] else 'NO'} |",
        f"| int8 agreement >= 99% (ONNX + TFLite) | {s['int8_agreement_met']} rows; worst {_fmt(s['worst_int8_agreement'], '.2%')} | "
        f"{'yes' if s['met']['int8_agreement'] else 'NO'} |",
        f"| int8 accuracy drop <= 0.5 pt | {s['int8_acc_drop_met']} rows; worst {_fmt(s['worst_int8_acc_delta_pt'], '+.2f')} pt | "
        f"{'yes' if s['met']['int8_acc_drop'] else 'NO'} |",
        f"| TFLite int8 latency <= 0.5x fp32 | {_fmt(result['int8_vs_fp32_latency_ratio'], '.2f')}x (median over models) | "
        f"{'yes' if s['met']['tflite_int8_latency'] else 'NO'} |",
        "",
        "## Per artifact",
        "",
        "| arch | format | precision | conv | agreement | acc (ref) | acc Δ pt | max abs diff | export s | KiB | Transpose "
        "| int8 kept (steps tried, float share, ONNX weight bits, TFLite I/O) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        kept = "-"
        if r.get("int8_kept_step"):
            bits = f", {r['weight_bits']}-bit weights" if r.get("weight_bits") else ""
            io = f", {r['io']} I/O" if r.get("io") else ""
            kept = (f"{r['int8_kept_step']} ({' > '.join(r['int8_steps']) or 'one attempt'}, "
                    f"{r['float_share']:.1%} float{bits}{io})")
        lines.append(
            f"| {r['arch']} | {r['format']} | {r['precision']} | {'yes' if r['converted'] else 'NO'} | "
            f"{_fmt(r['top1_agreement'], '.2%')} | {_fmt(r['acc_reference'], '.1f')} | {_fmt(r['acc_delta_pt'], '+.2f')} | "
            f"{_fmt(r['max_abs_diff'], '.2g')} | {_fmt(r['export_s'], '.2f')} | "
            f"{_fmt(r['size_bytes'] / 1024 if r['size_bytes'] else None, '.0f')} | {_fmt(r['transposes'], 'd')} | {kept} |"
        )
    errs = [r for r in result["rows"] if r.get("error")]
    if errs:
        firsts = {(r["arch"], r["format"]): r["error"] for r in reversed(errs)}  # one line per failed conversion
        lines += ["", "## Conversion errors", ""] + [f"- {a} {f}: {e}" for (a, f), e in reversed(firsts.items())]
    lat = result.get("latency")
    if lat:
        lines += [
            "",
            f"## TFLite full-int8 vs fp32 latency (host, 1 thread, input {'x'.join(map(str, lat['input_shape']))}, "
            f"{lat['rounds']} interleaved rounds x {lat['runs_per_round']} runs, p50 per round)",
            "",
            "| model | MACs | fp32 p50 ms (median, min-max) | int8 p50 ms (median, min-max) | int8/fp32 (median, min-max) "
            "| int8 file kept |",
            "|---|---|---|---|---|---|",
        ]
        for name, m in lat["models"].items():
            f32, i8 = m["fp32_p50_ms"], m["int8_p50_ms"]
            k = m.get("int8_file") or {}
            lines.append(
                f"| {name} | {m['macs'] / 1e6:.1f} M | {statistics.median(f32):.2f} ({min(f32):.2f}-{max(f32):.2f}) | "
                f"{statistics.median(i8):.2f} ({min(i8):.2f}-{max(i8):.2f}) | {m['ratio_median']:.2f} "
                f"({m['ratio_min']:.2f}-{m['ratio_max']:.2f}) | {k.get('int8_kept_step', '-')}, "
                f"{k.get('float_share', 0.0):.1%} float, io {k.get('io') or '-'} |"
            )
        lines += ["", "Export time of a TFLite row: the first TFLite precision carries the whole onnx2tf run "
                  "(all precisions are written by one conversion); the others only copy and check their file."]
    return "\n".join(lines) + "\n"


def _write(out: Path, state: dict[str, Any], t_start: float, final: bool) -> None:
    """Partial state after every architecture (so a long run can resume); the results at the end."""
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "export_fidelity.partial.json", json.dumps(state, indent=2) + "\n")
    if not final:
        return
    rows, lat = state["rows"], state.get("latency")
    ratio = statistics.median([m["ratio_median"] for m in lat["models"].values()]) if lat else None
    done = sorted({r["arch"] for r in rows}, key=[a[0] for a in ARCHS].index)
    result = {
        "command": state["command"],
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"shared 2-core VM ({platform.processor() or platform.machine()}) with other jobs running; "
                   "training and export are not timed under a lock, latency is (/tmp/edgecompress-cpu.lock)",
        "cpu": cpu_model(),
        "cpu_int8_flags": int8_flags(),
        "export_config": "ExportConfig defaults (accuracy_aware=True, onnx_reduce_range=None: weight bits chosen from "
                         "this CPU, qat=False) with enforce_parity=False",
        "architectures": f"{len(done)} of {len(ARCHS)}",
        "targets": TARGETS,
        "rows": rows,
        "int8_vs_fp32_latency_ratio": ratio,
        "latency": lat,
        "wall_s": state["wall_s"] + time.perf_counter() - t_start,
    }
    result["summary"] = summarize(rows, lat)
    atomic_write_text(out / "export_fidelity.json", json.dumps(result, indent=2) + "\n")
    atomic_write_text(out / "export_fidelity.md", markdown(result))
    (out / "export_fidelity.partial.json").unlink(missing_ok=True)
    print(markdown(result))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=5, help="interleaved latency rounds")
    ap.add_argument("--runs", type=int, default=50, help="counted runs per latency measurement")
    ap.add_argument("--only", default=None, help="substring filter on architecture names (for quick checks)")
    ap.add_argument("--no-latency", action="store_true")
    ap.add_argument("--resume", action="store_true", help="continue from export_fidelity.partial.json in --out")
    ap.add_argument("--stop-after-min", type=float, default=None,
                    help="start no new architecture after this many minutes (the report says how many ran)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    torch.set_num_threads(1)  # a shared 2-core machine: one core for us
    from tqdm import tqdm

    from edgecompress.data import load_task

    t_start = time.perf_counter()
    partial = args.out / "export_fidelity.partial.json"
    state: dict[str, Any] = (json.loads(partial.read_text()) if args.resume and partial.is_file() else
                             {"command": " ".join([".venv/bin/python", "benchmarks/export_fidelity.py", *sys.argv[1:]]),
                              "rows": [], "latency": None, "wall_s": 0.0})
    done = {r["arch"] for r in state["rows"]}
    tasks: dict[str, Any] = {}
    archs = [a for a in ARCHS if (not args.only or args.only in a[0]) and a[0] not in done]
    with tempfile.TemporaryDirectory(prefix="export-fidelity-") as tmp:
        for name, source, build in tqdm(archs, desc="architectures", file=sys.stderr):
            if args.stop_after_min is not None and (time.perf_counter() - t_start) / 60 > args.stop_after_min:
                print(f"stopping before {name!r}: --stop-after-min {args.stop_after_min} reached", file=sys.stderr)
                break
            task = tasks.setdefault(source, load_task(source, progress=False))
            seed = [a[0] for a in ARCHS].index(name)
            torch.manual_seed(seed)
            model = build(task.input_shape, task.num_classes)
            acc = train(model, task, args.epochs, seed=seed)
            calib, _ = _arrays(task.calibration, 256)
            vx, vy = _arrays(task.val, 1000)
            print(f"[{name}] float val acc {acc:.1f}%", file=sys.stderr, flush=True)
            state["rows"] += export_rows(name, model, task.preprocessing, calib, vx, vy, Path(tmp) / f"a{seed}")
            _write(args.out, {**state, "wall_s": state["wall_s"] + time.perf_counter() - t_start}, t_start, final=False)
        if not args.no_latency and state.get("latency") is None:
            state["latency"] = latency(Path(tmp), args.rounds, args.runs)
    _write(args.out, state, t_start, final=True)


if __name__ == "__main__":
    main()
