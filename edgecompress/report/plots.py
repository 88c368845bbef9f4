"""Matplotlib figures for the report, returned as base64 PNG so the HTML is self-contained."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display on build servers
import matplotlib.pyplot as plt  # noqa: E402


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def candidates_plot(candidates: Sequence[dict[str, Any]], budget_ms: float) -> str | None:
    """MACs vs predicted latency per candidate, the budget line, the choice marked."""
    pts = [c for c in candidates if c.get("latency_ms") is not None]
    if not pts:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    families = sorted({c["family"] for c in pts})
    for fam in families:
        sub = [c for c in pts if c["family"] == fam]
        ax.scatter(
            [c["latency_ms"] for c in sub],
            [c["macs"] / 1e6 for c in sub],
            label=fam,
            alpha=0.75,
            marker="o",
            s=22,
        )
    for c in pts:
        if c.get("chosen"):
            ax.scatter([c["latency_ms"]], [c["macs"] / 1e6], s=220, facecolors="none", edgecolors="red", linewidths=2, label="chosen")
    ax.axvline(budget_ms, color="red", linestyle="--", linewidth=1, label=f"budget {budget_ms:g} ms")
    ax.set_xlabel("predicted latency (ms)")
    ax.set_ylabel("MMACs")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("Student candidates")
    return _png(fig)


def training_plot(history: Sequence[dict[str, Any]]) -> str | None:
    """Every loss term per epoch (left) and validation accuracy / teacher agreement (right)."""
    if not history:
        return None
    epochs = [h.get("epoch", i) for i, h in enumerate(history)]
    loss_keys = sorted({k for h in history for k in h if k.startswith("loss")})
    metric_keys = [k for k in ("val_acc", "val_agreement", "train_acc") if any(k in h for h in history)]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.6))
    for k in loss_keys:
        a1.plot(epochs, [h.get(k, float("nan")) for h in history], marker=".", label=k)
    a1.set_xlabel("epoch")
    a1.set_title("loss terms")
    a1.grid(alpha=0.3)
    if loss_keys:
        a1.legend(fontsize=7)
    for k in metric_keys:
        a2.plot(epochs, [h.get(k, float("nan")) for h in history], marker=".", label=k)
    a2.set_xlabel("epoch")
    a2.set_ylim(0, 1.01)
    a2.set_title("validation")
    a2.grid(alpha=0.3)
    if metric_keys:
        a2.legend(fontsize=8)
    return _png(fig)


def latency_plot(benchmarks: Sequence[dict[str, Any]], budget_ms: float | None) -> str | None:
    """Distribution of per-run latency for every measured artifact and runtime."""
    rows = [b for b in benchmarks if b.get("samples_ms")]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(7.5, 0.55 * len(rows) + 1.6))
    labels = [f"{b['runner']}:{b['runtime']} {b['precision']} ({b['artifact'].rsplit('/', 1)[-1]})" for b in rows]
    ax.boxplot([b["samples_ms"] for b in rows], orientation="horizontal", showfliers=True, whis=(1, 99))
    ax.set_yticks(range(1, len(rows) + 1), labels, fontsize=8)
    if budget_ms:
        ax.axvline(budget_ms, color="red", linestyle="--", linewidth=1, label=f"budget {budget_ms:g} ms")
        ax.legend(fontsize=8)
    ax.set_xlabel("latency per inference (ms); whiskers p1-p99")
    ax.grid(axis="x", alpha=0.3)
    ax.set_title("Measured latency")
    return _png(fig)


def sustained_plot(benchmarks: Sequence[dict[str, Any]]) -> str | None:
    """p50 and p99 per time slice of every sustained run: throttling shows as a rising line."""
    rows = [b for b in benchmarks if (b.get("sustained") or {}).get("t_s")]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    for b in rows:
        s = b["sustained"]
        label = f"{b['runner']}:{b['precision']} ({b['artifact'].rsplit('/', 1)[-1]})" + (" emulated" if b.get("emulated") else "")
        (line,) = ax.plot(s["t_s"], s["p50_ms"], label=f"{label} p50")
        ax.plot(s["t_s"], s["p99_ms"], linestyle="--", color=line.get_color(), label=f"{label} p99")
    values = [v for b in rows for v in (*b["sustained"]["p50_ms"], *b["sustained"]["p99_ms"]) if v > 0]
    if values and max(values) / min(values) > 20:
        ax.set_yscale("log")  # a host and a (slower, or emulated) board on one axis: keep both readable
    ax.set_xlabel("time since the start of the sustained run (s)")
    ax.set_ylabel("latency (ms)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    ax.set_title("Sustained latency over time")
    return _png(fig)


def predicted_vs_measured_plot(pairs: Sequence[dict[str, Any]]) -> str | None:
    pts = [p for p in pairs if p.get("predicted_ms") and p.get("measured_p50_ms")]
    if not pts:
        return None
    fig, ax = plt.subplots(figsize=(4.6, 4.0))
    xs = [p["predicted_ms"] for p in pts]
    ys = [p["measured_p50_ms"] for p in pts]
    ax.scatter(xs, ys)
    for p in pts:
        ax.annotate(p["label"], (p["predicted_ms"], p["measured_p50_ms"]), fontsize=7)
    lo, hi = min(xs + ys) * 0.8, max(xs + ys) * 1.2
    ax.plot([lo, hi], [lo, hi], "k--", linewidth=1, label="exact")
    ax.fill_between([lo, hi], [lo * 0.9, hi * 0.9], [lo * 1.1, hi * 1.1], alpha=0.15, label="±10%")
    ax.set_xlabel("predicted (ms)")
    ax.set_ylabel("measured p50 (ms)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    ax.set_title("Latency predictor")
    return _png(fig)
