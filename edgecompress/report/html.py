"""Render summary.json's numbers as one self-contained HTML page.

The page is built only from the typed BuildSummary, and summary.json is that same object, so
report.html and summary.json can never disagree: whatever the page shows is in the JSON beside it.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edgecompress.artifacts import BenchmarkResult, DeviceState, _encode, atomic_write_text
from edgecompress.bench.thermal import describe_state
from edgecompress.build_report import BuildSummary, CandidateRow
from edgecompress.report import plots

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
main{max-width:1100px;margin:0 auto;padding:24px}
h1{margin:0 0 4px;font-size:24px} h2{margin-top:32px;border-bottom:2px solid #d9dde4;padding-bottom:4px;font-size:18px}
.sub{color:#5a6272} table{border-collapse:collapse;margin:8px 0;background:#fff;font-size:13px}
th,td{border:1px solid #d9dde4;padding:4px 8px;text-align:right} th{background:#eef0f4}
td.l,th.l{text-align:left} tr.chosen td{background:#e7f5e9;font-weight:600}
.ok{color:#17803d;font-weight:600} .bad{color:#b42318;font-weight:600}
.cards{display:flex;gap:12px;flex-wrap:wrap;margin:16px 0}
.card{background:#fff;border:1px solid #d9dde4;border-radius:8px;padding:10px 14px;min-width:150px}
.card b{display:block;font-size:20px} img{max-width:100%;background:#fff;border:1px solid #d9dde4;border-radius:6px}
code{background:#eef0f4;padding:1px 4px;border-radius:3px}
"""


def _e(value: Any) -> str:
    return html.escape(str(value))


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 1e5 else f"{value:.3e}"
    if isinstance(value, int) and abs(value) >= 10_000:
        return f"{value:,}"
    return str(value)


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]], row_classes: Sequence[str] | None = None) -> str:
    head = "".join(f"<th class='l'>{_e(h)}</th>" if i == 0 else f"<th>{_e(h)}</th>" for i, h in enumerate(headers))
    body = []
    for r, row in enumerate(rows):
        cls = f" class='{row_classes[r]}'" if row_classes and row_classes[r] else ""
        cells = "".join(
            f"<td class='l'>{cell}</td>" if i == 0 else f"<td>{cell}</td>" for i, cell in enumerate(row)
        )
        body.append(f"<tr{cls}>{cells}</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _img(b64: str | None, alt: str) -> str:
    if not b64:
        return f"<p class='sub'>No data for: {_e(alt)}.</p>"
    return f"<img alt='{_e(alt)}' src='data:image/png;base64,{b64}'>"


def _okbad(ok: bool | None) -> str:
    if ok is None:
        return "<span class='sub'>not measured</span>"
    return "<span class='ok'>within budget</span>" if ok else "<span class='bad'>over budget</span>"


def _section_profile(s: BuildSummary) -> str:
    p = s.profile
    b, hw, rt = p.budgets, p.hardware, p.runtime
    cores = " + ".join(f"{c.count}× {c.core}" + (f" @ {c.max_clock_ghz} GHz" if c.max_clock_ghz else "") for c in hw.clusters)
    rows = [
        ["SoC", _e(hw.soc)],
        ["cores", _e(cores)],
        ["RAM", f"{_fmt(hw.ram_gb)} GB"],
        ["runtime", _e(f"{rt.kind}, {rt.threads} threads" + (f", CPU mask {rt.cpu_mask}" if rt.cpu_mask else ""))],
        ["latency budget", f"{_fmt(b.latency_budget_ms)} ms"],
        ["peak RAM budget", f"{_fmt(b.peak_ram_budget_mb)} MB"],
        ["model size budget", f"{_fmt(b.model_size_budget_mb)} MB"],
    ]
    return f"<h2>Device profile: {_e(p.name)}</h2><p class='sub'>{_e(p.description)}</p>" + _table(["", "value"], rows)


def _shortlist(cands: Sequence[CandidateRow], per_family: int = 4) -> list[CandidateRow]:
    """Per family: the largest candidates that fit and the smallest that do not, plus the choice."""
    out: list[CandidateRow] = []
    for fam in dict.fromkeys(c.family for c in cands):
        sub = sorted((c for c in cands if c.family == fam), key=lambda c: c.macs)
        fits = [c for c in sub if c.fits]
        over = [c for c in sub if not c.fits]
        keep = fits[-per_family:] + over[:2]
        out += sorted(keep, key=lambda c: c.macs)
    chosen = [c for c in cands if c.chosen and c not in out]
    return chosen + out


def _section_selection(s: BuildSummary) -> str:
    sel = s.selection
    cands = sel.candidates
    shown = _shortlist(cands)
    headers = ["family", "student", "MMACs", "× fewer than teacher", "params", "pred. latency ms (90% upper)", "peak RAM MB", "size MB", "fits"]
    rows = [
        [
            _e(c.family),
            f"<code title='{_e(c.arch)}'>{_e(c.label)}</code>",
            _fmt(c.macs / 1e6),
            "–" if c.compression_x is None else f"{c.compression_x:.3g}×",
            _fmt(c.params),
            _fmt(c.latency_ms) + ("" if c.latency_upper_ms is None else f" (≤ {_fmt(c.latency_upper_ms)})"),
            _fmt(c.peak_ram_mb),
            _fmt(c.size_mb),
            "yes" if c.fits else "no: " + ", ".join(c.over),
        ]
        for c in shown
    ]
    classes = ["chosen" if c.chosen else "" for c in shown]
    chosen = sel.chosen
    budget = s.profile.budgets.latency_budget_ms
    return (
        "<h2>Student selection</h2>"
        f"<p>Chosen: <b>{_e(chosen.family)}</b> <code>{_e(chosen.display)}</code> "
        f"({_e(sel.criterion)}; latency from {_e(sel.latency_source or 'the predictor')}).</p>"
        + _img(plots.candidates_plot(_encode(cands), budget), "candidates")
        + f"<p class='sub'>{len(shown)} of {len(cands)} candidates shown: per family the largest that fit and the "
        "smallest that do not (all of them are in summary.json).</p>"
        + _table(headers, rows, classes)
    )


def _section_compression(s: BuildSummary) -> str:
    c = s.compression
    if not c:
        return ""
    t, st = c.teacher, c.student

    def x(v: Any) -> str:
        return "–" if v is None else f"{v:.1f}×"

    def mb(v: Any) -> str:
        return "–" if v is None else _fmt(v / 2**20)

    def pct(v: Any) -> str:
        return "–" if v is None else f"{100 * v:.1f}%"

    rows = [
        ["MACs", _fmt(t.macs), _fmt(st.macs), x(c.macs_x)],
        ["parameters", _fmt(t.params), _fmt(st.params), x(c.params_x)],
        [f"file size MB ({_e(t.precision)}, predicted)", mb(t.size_bytes), mb(st.size_bytes), x(c.size_x)],
        ["predicted latency ms", _fmt(t.predicted_latency_ms), _fmt(st.predicted_latency_ms), x(c.latency_x)],
        ["test accuracy", pct(t.test_acc), pct(st.test_acc), "–" if c.acc_delta_pt is None else f"{c.acc_delta_pt:+.2f} pt"],
        ["top-1 agreement with the teacher", "", pct(st.test_agreement), ""],
    ]
    return (
        "<h2>Student vs teacher</h2>"
        f"<p>Compression target {x(c.target_x)} in MACs (teacher / student); ratios are teacher over student.</p>"
        + _table(["", "teacher", "student", "ratio"], rows)
    )


def _section_training(s: BuildSummary) -> str:
    tr = s.training
    rows = [[_e(k), _fmt(v, 4)] for k, v in sorted(tr.final.items())]
    return (
        "<h2>Distillation</h2>"
        f"<p>Method <b>{_e(tr.config.get('method', '?'))}</b> from teacher <code>{_e(tr.teacher)}</code>.</p>"
        + _img(plots.training_plot(tr.history), "training curves")
        + _table(["metric", "value"], rows)
    )


def _passed(ok: bool | None) -> str:
    return "<span class='ok'>yes</span>" if ok else "<span class='bad'>no</span>"


def _section_parity(s: BuildSummary) -> str:
    headers = ["artifact", "format", "precision", "size KB", "samples", "max |diff|", "top-1 agreement", "acc PyTorch %", "acc artifact %", "Δacc pt", "passed"]
    rows = []
    for a in s.artifacts:
        p = a.parity
        nums = [None] * 6 if p is None else [p.n_samples, p.max_abs_diff, p.top1_agreement, p.acc_reference, p.acc_artifact, p.acc_delta_pt]
        rows.append(
            [_e(Path(a.path).name), _e(a.format), _e(a.precision), _fmt(a.size_bytes / 1024), _fmt(nums[0]), _fmt(nums[1]),
             _fmt(nums[2], 4), _fmt(nums[3], 4), _fmt(nums[4], 4), _fmt(nums[5]), _passed(p is not None and p.passed)]
        )
    return ("<h2>Parity against PyTorch (real runtimes)</h2>" + _table(headers, rows) + _section_quant_settings(s)
            + _section_board_parity(s) + _section_attempts(s))


def _setting(value: Any) -> str:
    text = ", ".join(map(str, value)) if isinstance(value, (list, tuple)) else _fmt(value)
    return text if len(text) <= 120 else text[:117] + "..."


def _section_quant_settings(s: BuildSummary) -> str:
    """How each int8 file was quantized (weight bits and why, calibration, what stayed float, I/O)."""
    rows = [[_e(Path(a.path).name), "<br>".join(f"{_e(k)}: {_e(_setting(v))}" for k, v in a.quant_settings.items())]
            for a in s.artifacts if a.quant_settings]
    return "<h3>Quantization settings</h3>" + _table(["artifact", "settings"], rows) if rows else ""


def _section_attempts(s: BuildSummary) -> str:
    """Which artifact is deployed and why; every quantization attempt of every target."""
    v = s.verdict
    reason = f"<p><b>Deployed:</b> {_e(v.deployed_reason)}</p>" if v.deployed_reason else ""
    attempts = s.export_attempts
    if not any(a.step != "export" or not a.passed for a in attempts):
        return reason  # every target passed as built: the parity table says it all
    headers = ["artifact", "step", "what", "top-1 agreement", "Δacc pt", "size KB", "weights in float",
               f"predicted ms on {_e(s.profile.name)}", "passed", "kept"]
    rows = [[_e(a.file), _e(a.step), _e((a.description or "") + (f" (failed: {a.error})" if a.error else "")),
             _fmt(a.top1_agreement, 4), _fmt(a.acc_delta_pt), _fmt(None if a.size_bytes is None else a.size_bytes / 1024),
             _fmt(a.float_share), _fmt(a.predicted_latency_ms, 4), _passed(a.passed), "yes" if a.written else ""]
            for a in attempts]
    return reason + "<h3>Quantization attempts (accuracy-aware int8)</h3>" + _table(headers, rows)


def _section_latency(s: BuildSummary) -> str:
    headers = ["artifact", "runner", "runtime", "threads", "runs", "p50 ms", "p90 ms", "p99 ms", "std ms", "init ms", "peak MB"]
    rows = []
    for b in s.benchmarks:
        lat = b.latency
        rows.append(
            [_e(Path(b.artifact).name), _e(b.runner) + (" <span class='bad'>emulated</span>" if b.emulated else ""),
             _e(f"{b.runtime} {b.runtime_version}"), _fmt(b.threads), _fmt(b.num_runs), _fmt(lat.p50_ms), _fmt(lat.p90_ms),
             _fmt(lat.p99_ms), _fmt(lat.std_ms), _fmt(b.init_ms), _fmt(b.peak_mem_mb)]
        )
    budget = s.profile.budgets.latency_budget_ms
    pvm = s.predicted_vs_measured
    pvm_rows = [[_e(p.label), _fmt(p.predicted_ms), _fmt(p.measured_p50_ms), _fmt(p.error_pct)] for p in pvm]
    note = s.latency_note
    emulated = sorted({b.emulated for b in s.benchmarks if b.emulated})
    if emulated:
        note = (note + " " if note else "") + f"Rows marked emulated ran under {'; '.join(emulated)}: emulated: latency is not a device latency."
    bench_dicts = _encode(s.benchmarks)
    return (
        "<h2>Measured latency</h2>"
        + (f"<p class='sub'>{_e(note)}</p>" if note else "")
        + _table(headers, rows)
        + _img(plots.latency_plot(bench_dicts, budget), "latency distributions")
        + _section_sustained(s.benchmarks)
        + "<h3>Predicted vs measured</h3>"
        + (_table(["artifact", "predicted ms", "measured p50 ms", "error %"], pvm_rows) if pvm_rows else "<p class='sub'>No measurement on the profile's own runtime and device to compare with.</p>")
        + _img(plots.predicted_vs_measured_plot(_encode(pvm)), "predicted vs measured")
    )


def _state(st: DeviceState | None) -> str:
    return describe_state(st) if st else "not read"


def _section_sustained(benchmarks: Sequence[BenchmarkResult]) -> str:
    """Sustained runs (bench --sustained): first vs last window, device state before / after."""
    rows = []
    for b in benchmarks:
        su = b.sustained
        if not su:
            continue
        drift = su.drift_p50_pct if su.first.p50_ms else None
        rows.append([_e(Path(b.artifact).name), _e(b.runner) + (" (emulated)" if b.emulated else ""),
                     _fmt(su.duration_s), _fmt(su.window_s), _fmt(su.first.p50_ms), _fmt(su.first.p99_ms),
                     _fmt(su.last.p50_ms), _fmt(su.last.p99_ms), _fmt(drift), _e(_state(b.state_before)), _e(_state(b.state_after))])
    if not rows:
        return ""
    headers = ["artifact", "runner", "seconds", "window s", "first p50", "first p99", "last p50", "last p99", "p50 drift %", "before", "after"]
    return "<h3>Sustained latency</h3>" + _table(headers, rows) + _img(plots.sustained_plot(_encode(benchmarks)), "sustained latency over time")


def _section_board_parity(s: BuildSummary) -> str:
    """The parity gate re-run on the board (build --host), next to the host's numbers."""
    host = {Path(a.path).name: a.parity for a in s.artifacts}
    rows = []
    for b in s.benchmarks:
        p = b.device_parity
        if not p:
            continue
        h = host.get(Path(b.artifact).name)
        rows.append([_e(Path(b.artifact).name), _e(b.device) + (" (emulated cpu)" if b.emulated else ""),
                     _fmt(h and h.top1_agreement, 4), _fmt(p.top1_agreement, 4), _fmt(h and h.acc_artifact, 4),
                     _fmt(p.acc_artifact, 4), _fmt(p.acc_delta_pt), _passed(p.passed)])
    if not rows:
        return ""
    headers = ["artifact", "board", "agreement host", "agreement board", "acc host %", "acc board %", "Δacc board pt", "passed on board"]
    return "<h3>Parity on the board's own kernels</h3>" + _table(headers, rows)


def _section_env(s: BuildSummary) -> str:
    rows = [[_e(k), _e(v)] for k, v in s.environment.items()]
    srows = [[_e(k), _fmt(v), "resumed" if k in s.resumed_stages else "ran"] for k, v in s.stages.items()]
    return (
        "<h2>Environment</h2>"
        + _table(["package", "version"], rows)
        + "<h3>Stages</h3>"
        + _table(["stage", "seconds", ""], srows)
    )


def _cards(s: BuildSummary) -> str:
    v, tr, comp = s.verdict, s.training.final, s.compression
    cards = [
        *([("compression", f"{comp.macs_x:.3g}× fewer MACs<br><span class='sub'>target {comp.target_x or 0:g}×</span>")]
          if comp and comp.macs_x else []),
        ("student accuracy", _fmt(tr.get("test_acc", tr.get("val_acc")), 4)),
        ("teacher accuracy", _fmt(tr.get("teacher_test_acc", tr.get("teacher_val_acc")), 4)),
        ("latency", f"{_fmt(v.latency_ms)} ms<br>{_okbad(v.latency_ok)}"),
        ("peak RAM", f"{_fmt(v.peak_ram_mb)} MB<br>{_okbad(v.ram_ok)}"),
        ("model size", f"{_fmt(v.size_mb)} MB<br>{_okbad(v.size_ok)}"),
    ]
    return "<div class='cards'>" + "".join(f"<div class='card'>{_e(k)}<b>{val}</b></div>" for k, val in cards) + "</div>"


def render_report(summary: BuildSummary, out_dir: str | Path) -> Path:
    """Write ``report.html`` and ``summary.json`` into ``out_dir``; return the HTML path."""
    out = Path(out_dir)
    name = summary.profile.name
    body = (
        f"<h1>edgecompress build: {_e(name)}</h1>"
        f"<p class='sub'>{_e(summary.headline)}</p>"
        + _cards(summary)
        + _section_profile(summary)
        + _section_compression(summary)
        + _section_selection(summary)
        + _section_training(summary)
        + _section_parity(summary)
        + _section_latency(summary)
        + _section_env(summary)
    )
    page = f"<!doctype html><html><head><meta charset='utf-8'><title>edgecompress: {_e(name)}</title><style>{_CSS}</style></head><body><main>{body}</main></body></html>"
    atomic_write_text(out / "summary.json", summary.to_json())
    atomic_write_text(out / "report.html", page)
    return out / "report.html"
