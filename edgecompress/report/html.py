"""Render summary.json's numbers as one self-contained HTML page.

The page is built only from the summary dict, so report.html and summary.json can never
disagree: whatever the page shows is in the JSON beside it.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edgecompress.artifacts import atomic_write_text, strict_dumps
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


def _section_profile(s: dict[str, Any]) -> str:
    p = s["profile"]
    b = p["budgets"]
    hw = p["hardware"]
    cores = " + ".join(f"{c['count']}× {c['core']}" + (f" @ {c['max_clock_ghz']} GHz" if c["max_clock_ghz"] else "") for c in hw["clusters"])
    rt = p["runtime"]
    rows = [
        ["SoC", _e(hw["soc"])],
        ["cores", _e(cores)],
        ["RAM", f"{_fmt(hw['ram_gb'])} GB"],
        ["runtime", _e(f"{rt['kind']}, {rt['threads']} threads" + (f", CPU mask {rt['cpu_mask']}" if rt["cpu_mask"] else ""))],
        ["latency budget", f"{_fmt(b['latency_budget_ms'])} ms"],
        ["peak RAM budget", f"{_fmt(b['peak_ram_budget_mb'])} MB"],
        ["model size budget", f"{_fmt(b['model_size_budget_mb'])} MB"],
    ]
    return f"<h2>Device profile: {_e(p['name'])}</h2><p class='sub'>{_e(p['description'])}</p>" + _table(["", "value"], rows)


def _shortlist(cands: list[dict[str, Any]], per_family: int = 4) -> list[dict[str, Any]]:
    """Per family: the largest candidates that fit and the smallest that do not, plus the choice."""
    out: list[dict[str, Any]] = []
    for fam in dict.fromkeys(c["family"] for c in cands):
        sub = sorted((c for c in cands if c["family"] == fam), key=lambda c: c["macs"])
        fits = [c for c in sub if c.get("fits")]
        over = [c for c in sub if not c.get("fits")]
        keep = fits[-per_family:] + over[:2]
        out += sorted(keep, key=lambda c: c["macs"])
    chosen = [c for c in cands if c.get("chosen") and c not in out]
    return chosen + out


def _section_selection(s: dict[str, Any]) -> str:
    sel = s["selection"]
    cands = sel.get("candidates", [])
    shown = _shortlist(cands)
    headers = ["family", "student", "MMACs", "× fewer than teacher", "params", "pred. latency ms", "peak RAM MB", "size MB", "fits"]
    rows = [
        [
            _e(c["family"]),
            f"<code title='{_e(c['arch'])}'>{_e(c.get('label', c['arch']))}</code>",
            _fmt(c["macs"] / 1e6),
            "–" if c.get("compression_x") is None else f"{c['compression_x']:.3g}×",
            _fmt(c["params"]),
            _fmt(c.get("latency_ms")),
            _fmt(c.get("peak_ram_mb")),
            _fmt(c.get("size_mb")),
            "yes" if c.get("fits") else "no: " + ", ".join(c.get("over", [])),
        ]
        for c in shown
    ]
    classes = ["chosen" if c.get("chosen") else "" for c in shown]
    chosen = sel["chosen"]
    budget = s["profile"]["budgets"]["latency_budget_ms"]
    label = chosen.get("extra", {}).get("label", chosen["arch"])
    return (
        "<h2>Student selection</h2>"
        f"<p>Chosen: <b>{_e(chosen['family'])}</b> <code>{_e(label)}</code> "
        f"({_e(sel.get('criterion', ''))}; latency from {_e(sel.get('latency_source', 'the predictor'))}).</p>"
        + _img(plots.candidates_plot(cands, budget), "candidates")
        + f"<p class='sub'>{len(shown)} of {len(cands)} candidates shown: per family the largest that fit and the "
        "smallest that do not (all of them are in summary.json).</p>"
        + _table(headers, rows, classes)
    )


def _section_compression(s: dict[str, Any]) -> str:
    c = s.get("compression")
    if not c:
        return ""
    t, st = c["teacher"], c["student"]

    def x(v: Any) -> str:
        return "–" if v is None else f"{v:.1f}×"

    def mb(v: Any) -> str:
        return "–" if v is None else _fmt(v / 2**20)

    def pct(v: Any) -> str:
        return "–" if v is None else f"{100 * v:.1f}%"

    rows = [
        ["MACs", _fmt(t["macs"]), _fmt(st["macs"]), x(c["macs_x"])],
        ["parameters", _fmt(t["params"]), _fmt(st["params"]), x(c["params_x"])],
        [f"file size MB ({_e(t.get('precision'))}, predicted)", mb(t.get("size_bytes")), mb(st.get("size_bytes")), x(c["size_x"])],
        ["predicted latency ms", _fmt(t.get("predicted_latency_ms")), _fmt(st.get("predicted_latency_ms")), x(c["latency_x"])],
        ["test accuracy", pct(t.get("test_acc")), pct(st.get("test_acc")),
         "–" if c.get("acc_delta_pt") is None else f"{c['acc_delta_pt']:+.2f} pt"],
        ["top-1 agreement with the teacher", "", pct(st.get("test_agreement")), ""],
    ]
    return (
        "<h2>Student vs teacher</h2>"
        f"<p>Compression target {x(c.get('target_x'))} in MACs (teacher / student); ratios are teacher over student.</p>"
        + _table(["", "teacher", "student", "ratio"], rows)
    )


def _section_training(s: dict[str, Any]) -> str:
    tr = s["training"]
    final = tr.get("final", {})
    rows = [[_e(k), _fmt(v, 4)] for k, v in sorted(final.items())]
    cfg = tr.get("config", {})
    return (
        "<h2>Distillation</h2>"
        f"<p>Method <b>{_e(cfg.get('method', '?'))}</b> from teacher <code>{_e(tr.get('teacher', '?'))}</code>.</p>"
        + _img(plots.training_plot(tr.get("history", [])), "training curves")
        + _table(["metric", "value"], rows)
    )


def _section_parity(s: dict[str, Any]) -> str:
    headers = ["artifact", "format", "precision", "size KB", "samples", "max |diff|", "top-1 agreement", "acc PyTorch %", "acc artifact %", "Δacc pt", "passed"]
    rows = []
    for a in s["artifacts"]:
        p = a.get("parity") or {}
        rows.append(
            [
                _e(Path(a["path"]).name),
                _e(a["format"]),
                _e(a["precision"]),
                _fmt(a["size_bytes"] / 1024),
                _fmt(p.get("n_samples")),
                _fmt(p.get("max_abs_diff")),
                _fmt(p.get("top1_agreement"), 4),
                _fmt(p.get("acc_reference"), 4),
                _fmt(p.get("acc_artifact"), 4),
                _fmt(p.get("acc_delta_pt")),
                "<span class='ok'>yes</span>" if p.get("passed") else "<span class='bad'>no</span>",
            ]
        )
    return "<h2>Parity against PyTorch (real runtimes)</h2>" + _table(headers, rows) + _section_board_parity(s) + _section_attempts(s)


def _section_attempts(s: dict[str, Any]) -> str:
    """Which artifact is deployed and why; every quantization attempt of every target."""
    v = s.get("verdict", {})
    reason = f"<p><b>Deployed:</b> {_e(v['deployed_reason'])}</p>" if v.get("deployed_reason") else ""
    attempts = s.get("export_attempts") or []
    if not any(a["step"] != "export" or not a["passed"] for a in attempts):
        return reason  # every target passed as built: the parity table says it all
    headers = ["artifact", "step", "what", "top-1 agreement", "Δacc pt", "size KB", "weights in float", "passed", "kept"]
    rows = [[_e(a["file"]), _e(a["step"]), _e(a["description"] + (f" (failed: {a['error']})" if a.get("error") else "")), _fmt(a["top1_agreement"], 4), _fmt(a["acc_delta_pt"]),
             _fmt(None if a["size_bytes"] is None else a["size_bytes"] / 1024), _fmt(a["float_share"]),
             "<span class='ok'>yes</span>" if a["passed"] else "<span class='bad'>no</span>",
             "yes" if a["written"] else ""] for a in attempts]
    return reason + "<h3>Quantization attempts (accuracy-aware int8)</h3>" + _table(headers, rows)


def _section_latency(s: dict[str, Any]) -> str:
    headers = ["artifact", "runner", "runtime", "threads", "runs", "p50 ms", "p90 ms", "p99 ms", "std ms", "init ms", "peak MB"]
    rows = []
    for b in s["benchmarks"]:
        lat = b["latency"]
        rows.append(
            [
                _e(Path(b["artifact"]).name),
                _e(b["runner"]) + (" <span class='bad'>emulated</span>" if b.get("emulated") else ""),
                _e(f"{b['runtime']} {b['runtime_version']}"),
                _fmt(b["threads"]),
                _fmt(b["num_runs"]),
                _fmt(lat["p50_ms"]),
                _fmt(lat["p90_ms"]),
                _fmt(lat["p99_ms"]),
                _fmt(lat["std_ms"]),
                _fmt(b.get("init_ms")),
                _fmt(b.get("peak_mem_mb")),
            ]
        )
    budget = s["profile"]["budgets"]["latency_budget_ms"]
    pvm = s.get("predicted_vs_measured", [])
    pvm_rows = [
        [_e(p["label"]), _fmt(p["predicted_ms"]), _fmt(p["measured_p50_ms"]), _fmt(p.get("error_pct"))] for p in pvm
    ]
    note = s.get("latency_note", "")
    emulated = sorted({b["emulated"] for b in s["benchmarks"] if b.get("emulated")})
    if emulated:
        note = (note + " " if note else "") + f"Rows marked emulated ran under {'; '.join(emulated)}: emulated: latency is not a device latency."
    return (
        "<h2>Measured latency</h2>"
        + (f"<p class='sub'>{_e(note)}</p>" if note else "")
        + _table(headers, rows)
        + _img(plots.latency_plot(s["benchmarks"], budget), "latency distributions")
        + _section_sustained(s["benchmarks"])
        + "<h3>Predicted vs measured</h3>"
        + (_table(["artifact", "predicted ms", "measured p50 ms", "error %"], pvm_rows) if pvm_rows else "<p class='sub'>No measurement on the profile's own runtime and device to compare with.</p>")
        + _img(plots.predicted_vs_measured_plot(pvm), "predicted vs measured")
    )


def _section_sustained(benchmarks: list[dict[str, Any]]) -> str:
    """Sustained runs (bench --sustained): first vs last window, device state before / after."""
    from edgecompress.artifacts import DeviceState
    from edgecompress.bench.thermal import describe_state

    rows = []
    for b in benchmarks:
        su = b.get("sustained")
        if not su:
            continue
        drift = (su["last"]["p50_ms"] / su["first"]["p50_ms"] - 1) * 100 if su["first"]["p50_ms"] else None
        states = [describe_state(DeviceState(**st)) if st else "not read" for st in (b.get("state_before"), b.get("state_after"))]
        rows.append([_e(Path(b["artifact"]).name), _e(b["runner"]) + (" (emulated)" if b.get("emulated") else ""),
                     _fmt(su["duration_s"]), _fmt(su["window_s"]), _fmt(su["first"]["p50_ms"]), _fmt(su["first"]["p99_ms"]),
                     _fmt(su["last"]["p50_ms"]), _fmt(su["last"]["p99_ms"]), _fmt(drift), _e(states[0]), _e(states[1])])  # fmt: skip
    if not rows:
        return ""
    headers = ["artifact", "runner", "seconds", "window s", "first p50", "first p99", "last p50", "last p99", "p50 drift %", "before", "after"]
    return "<h3>Sustained latency</h3>" + _table(headers, rows) + _img(plots.sustained_plot(benchmarks), "sustained latency over time")


def _section_board_parity(s: dict[str, Any]) -> str:
    """The parity gate re-run on the board (build --host), next to the host's numbers."""
    host = {Path(a["path"]).name: a.get("parity") or {} for a in s["artifacts"]}
    rows = []
    for b in s["benchmarks"]:
        p = b.get("device_parity")
        if not p:
            continue
        h = host.get(Path(b["artifact"]).name, {})
        rows.append([_e(Path(b["artifact"]).name), _e(b["device"]) + (" (emulated cpu)" if b.get("emulated") else ""),
                     _fmt(h.get("top1_agreement"), 4), _fmt(p["top1_agreement"], 4), _fmt(h.get("acc_artifact"), 4),
                     _fmt(p["acc_artifact"], 4), _fmt(p["acc_delta_pt"]),
                     "<span class='ok'>yes</span>" if p["passed"] else "<span class='bad'>no</span>"])  # fmt: skip
    if not rows:
        return ""
    headers = ["artifact", "board", "agreement host", "agreement board", "acc host %", "acc board %", "Δacc board pt", "passed on board"]
    return "<h3>Parity on the board's own kernels</h3>" + _table(headers, rows)


def _section_env(s: dict[str, Any]) -> str:
    env = s.get("environment", {})
    rows = [[_e(k), _e(v)] for k, v in env.items()]
    stages = s.get("stages", {})
    srows = [[_e(k), _fmt(v), "resumed" if k in s.get("resumed_stages", []) else "ran"] for k, v in stages.items()]
    return (
        "<h2>Environment</h2>"
        + _table(["package", "version"], rows)
        + "<h3>Stages</h3>"
        + _table(["stage", "seconds", ""], srows)
    )


def _cards(s: dict[str, Any]) -> str:
    v = s.get("verdict", {})
    tr = s["training"].get("final", {})
    comp = s.get("compression") or {}
    cards = [
        *([("compression", f"{comp['macs_x']:.3g}× fewer MACs<br><span class='sub'>target {comp.get('target_x') or 0:g}×</span>")]
          if comp.get("macs_x") else []),
        ("student accuracy", _fmt(tr.get("test_acc", tr.get("val_acc")), 4)),
        ("teacher accuracy", _fmt(tr.get("teacher_test_acc", tr.get("teacher_val_acc")), 4)),
        ("latency", f"{_fmt(v.get('latency_ms'))} ms<br>{_okbad(v.get('latency_ok'))}"),
        ("peak RAM", f"{_fmt(v.get('peak_ram_mb'))} MB<br>{_okbad(v.get('ram_ok'))}"),
        ("model size", f"{_fmt(v.get('size_mb'))} MB<br>{_okbad(v.get('size_ok'))}"),
    ]
    return "<div class='cards'>" + "".join(f"<div class='card'>{_e(k)}<b>{val}</b></div>" for k, val in cards) + "</div>"


def render_report(summary: dict[str, Any], out_dir: str | Path) -> Path:
    """Write ``report.html`` and ``summary.json`` into ``out_dir``; return the HTML path."""
    out = Path(out_dir)
    name = summary["profile"]["name"]
    body = (
        f"<h1>edgecompress build: {_e(name)}</h1>"
        f"<p class='sub'>{_e(summary.get('headline', ''))}</p>"
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
    atomic_write_text(out / "summary.json", strict_dumps(summary, indent=2, default=str))
    atomic_write_text(out / "report.html", page)
    return out / "report.html"
