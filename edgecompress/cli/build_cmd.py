"""`edgecompress build`: the whole pipeline in one command."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from edgecompress.cli.teacher_options import gather, teacher_file_options, teacher_options
from edgecompress.methods import METHODS

if TYPE_CHECKING:
    from edgecompress.build_report import BuildSummary, Compression


def parse_loss_weights(values: tuple[str, ...]) -> dict[str, float] | None:
    """``("align=0.3", "kd=0")`` -> ``{"align": 0.3, "kd": 0.0}``; the term names are checked
    against the loss registry later, with the registered names listed."""
    out: dict[str, float] = {}
    for item in values:
        name, sep, value = item.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep or not name.strip():
            raise click.BadParameter(f"{item!r} is not TERM=WEIGHT, e.g. align=0.3", param_hint="--loss-weight")
    return out or None


@click.command()
@click.option("--device", default=None, help="Device profile name or .toml path (default pixel7).")
@teacher_file_options("Teacher: .pt2, TorchScript .pt, state_dict .pt (with --entry-point) or .onnx. Omit (with --data) "
                      "for the built-in demo.")
@click.option("--data", default=None, help="Labeled data: built-in name (digits, shapes) or a folder / .npz / CIFAR folder.")
@click.option("--unlabeled", default=None, help="Unlabeled pool: a folder of images or a built-in pool (shapes-pool).")
@click.option("--labeled-fraction", type=float, default=None, help="Share of the labeled training set to use, in (0, 1]; the rest becomes unlabeled.")
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Run directory (default runs/<device>-<data>).")
@click.option("--method", default=None, help=f"Distillation method: {', '.join(METHODS)} (default: see docs/distill.md).")
@click.option("--loss-weight", "loss_weights", multiple=True, metavar="TERM=W",
              callback=lambda _c, _p, v: parse_loss_weights(v),
              help="Override one loss term's weight (repeatable), e.g. --loss-weight align=0.3; 0 switches a term "
                   "off. Terms: ce, kd, fitnet, data, adv, align and any registered one (docs/ARCHITECTURE.md).")
@click.option("--epochs", type=int, default=None, help="Training epochs (default: the method's).")
@click.option("--steps-per-epoch", type=int, default=None, help="Fixed optimizer steps per epoch (default: one pass over the larger data stream).")
@click.option("--seed", type=int, default=None, help="Seed for splits, initialization and training (default 0).")
@click.option("--latency-ms", type=float, default=None, help="Override the profile's latency budget.")
@click.option("--memory-mb", type=float, default=None, help="Override the profile's peak-RAM budget.")
@click.option("--compress", default=None, metavar="RATIO",
              help="Compression target: teacher MACs / student MACs, e.g. 8x (default 8x). The student must meet it "
                   "AND fit the device budgets; the largest such candidate is chosen.")
@click.option("--family", "families", multiple=True, metavar="NAME",
              callback=lambda _c, _p, v: tuple(v) or None,
              help="Student family to search (repeatable, in preference order), e.g. --family mobilenet. Default: the "
                   "pruned teacher when it can be pruned, then mobilenet and resnet. `edgecompress select --help` lists them.")
@click.option("--profiles-dir", type=click.Path(file_okay=False), default=None, help="Extra folder of device profiles.")
@click.option("--serial", default=None, help="Android device serial: also benchmark on the phone over adb.")
@click.option("--host", default=None, help="ssh host or ~/.ssh/config alias: also benchmark on the board.")
@click.option("--runs", type=int, default=None, help="Counted benchmark runs per artifact (default 100).")
@click.option("--warmup", type=int, default=None, help="Warm-up runs per artifact (default 10).")
@click.option("--sustained", type=float, default=None, metavar="SECONDS",
              help="Measure each artifact by running it back to back for SECONDS (latency over time, plotted in the report).")
@click.option("--cooldown", type=float, default=None, metavar="SECONDS", help="Let the device idle SECONDS before each artifact.")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None, help="run.toml holding any of these options; the command line overrides it.")
@click.option("--strict", is_flag=True, default=None, help="Fail on an unreadable image, a symlink loop, a FIFO or a device "
              "file in the data folders instead of skipping it (skips are counted in the output).")
@click.option("--require", default=None, metavar="PRECISION",
              help="Fail (exit 2) unless the deployed artifact has this precision, e.g. int8. Default: deploy int8 "
                   "when it passes the parity gate, else the smallest artifact that passes, and say why.")
@click.option("--qat", is_flag=True, default=None, help="Build int8 from a quantization-aware fine-tune of the student "
              "instead of post-training quantization first (default: QAT only as the last automatic step when PTQ misses).")
@click.option("--force", is_flag=True, help="Start over instead of resuming finished stages.")
@click.option("--quiet", is_flag=True, help="No progress output.")
@click.option("--json", "as_json", is_flag=True, help="Print the BuildReport JSON at the end.")
@teacher_options
def build(config_file: str | None, force: bool, quiet: bool, as_json: bool, **options: Any) -> None:
    """Profile -> select -> distill -> export + parity -> benchmark -> report.

    With no --teacher and no --data it runs the built-in demo: the procedural `shapes` task,
    10% of its labels, its style-shifted unlabeled pool, and the shipped demo teacher.
    Re-running the same command resumes after the last finished stage.

    \b
    Which student: every candidate must (1) fit the device's latency, peak-RAM and size
    budgets, (2) be smaller than the teacher in MACs, parameters and predicted latency, and
    (3) have at least --compress times fewer MACs than the teacher (default 8x). Of those, the
    pruned teacher is preferred (it inherits the teacher's weights), then the families; within
    a family the largest one wins.
    """
    from edgecompress.pipeline import build as run_build
    from edgecompress.runconfig import load_run_config

    cfg = load_run_config(config_file, gather(options))
    report = run_build(cfg, force=force, quiet=quiet)
    if as_json:
        click.echo(report.to_json())
        return
    assert report.summary is not None  # a fresh build always carries its summary
    click.echo(one_screen(report.summary, report.report_html))


def _x(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}x"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _compression_lines(c: Compression | None) -> list[str]:
    if not c:
        return []
    t, st = c.teacher, c.student
    delta = c.acc_delta_pt
    return [
        f"compress   {_x(c.macs_x)} fewer MACs than the teacher (target {_x(c.target_x)}: "
        f"{t.macs / 1e6:.1f} M -> {st.macs / 1e6:.2f} M), {_x(c.params_x)} params, "
        f"{_x(c.size_x)} file size, {_x(c.latency_x)} predicted latency",
        f"accuracy   student {100 * (st.test_acc or 0):.1f}% vs teacher {100 * (t.test_acc or 0):.1f}%"
        + ("" if delta is None else f" ({delta:+.1f} pt)"),
    ]


def _mark(ok: bool | None) -> str:
    return {True: "ok", False: "OVER BUDGET", None: "not measured"}[ok]


def _num(v: float | None, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def one_screen(s: BuildSummary, html: str) -> str:
    """The few numbers a person wants first; everything else is in the report."""
    v, tr, b = s.verdict, s.training.final, s.profile.budgets
    chosen = s.selection.chosen
    lines = [
        f"student    {chosen.family} {chosen.display}: test accuracy {_pct(tr.get('test_acc'))} "
        f"(teacher {_pct(tr.get('teacher_test_acc'))}, agreement {_pct(tr.get('test_agreement'))})",
        *_compression_lines(s.compression),
        f"deployed   {Path(v.deployed_artifact or '-').name}, {_num(v.size_mb, '.3f')} MB "
        f"(budget {b.model_size_budget_mb:g}) {_mark(v.size_ok)}",
        *([f"why        {v.deployed_reason}"] if v.deployed_reason else []),
        f"latency    {_num(v.latency_ms, '.3f')} ms (budget {b.latency_budget_ms:g}) {_mark(v.latency_ok)} - {v.latency_source}",
        f"peak RAM   {_num(v.peak_ram_mb, '.2f')} MB (budget {b.peak_ram_budget_mb:g}) {_mark(v.ram_ok)} - {v.peak_ram_source}",
    ]
    for a in s.artifacts:
        p = a.parity
        lines.append(
            f"parity     {Path(a.path).name}: top-1 agreement {_pct(p and p.top1_agreement)}, "
            f"accuracy {p.acc_delta_pt if p else 0:+.2f} pt vs PyTorch ({'passed' if p and p.passed else 'FAILED'})"
        )
    for r in s.benchmarks:
        dp = r.device_parity
        if dp:  # the gate re-run on the board's own kernels (build --host)
            lines.append(
                f"parity     {Path(r.artifact).name} on {r.device}{' (emulated cpu)' if r.emulated else ''}: "
                f"top-1 agreement {_pct(dp.top1_agreement)}, accuracy {dp.acc_delta_pt:+.2f} pt vs PyTorch "
                f"({'passed' if dp.passed else 'FAILED'})"
            )
    for r in s.benchmarks:
        lines.append(
            f"measured   {Path(r.artifact).name} on {r.device} ({r.runner}, {r.runtime}): "
            f"p50 {r.latency.p50_ms:.3f} ms, p90 {r.latency.p90_ms:.3f} ms"
            + (" - emulated: latency is not a device latency" if r.emulated else "")
        )
    resumed = s.resumed_stages
    lines.append(f"time       {s.wall_s:.0f} s" + (f" (resumed: {', '.join(resumed)})" if resumed else ""))
    lines.append(f"report     {html}  (numbers: summary.json)")
    return "\n".join(lines)
