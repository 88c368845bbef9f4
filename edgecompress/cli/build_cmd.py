"""`edgecompress build`: the whole pipeline in one command."""

from __future__ import annotations

import json
from typing import Any

import click


@click.command()
@click.option("--device", default=None, help="Device profile name or .toml path (default pixel7).")
@click.option("--teacher", type=click.Path(), default=None, help="Teacher: .pt2, TorchScript .pt, state_dict .pt (with --entry-point) or .onnx. Omit (with --data) for the built-in demo.")
@click.option("--entry-point", default=None, help="module:factory building the teacher for a state_dict file.")
@click.option("--trust-checkpoint", is_flag=True, default=None, help="Allow a pickled whole-module teacher (runs its code!).")
@click.option("--data", default=None, help="Labeled data: built-in name (digits, shapes) or a folder / .npz / CIFAR folder.")
@click.option("--unlabeled", default=None, help="Unlabeled pool: a folder of images or a built-in pool (shapes-pool).")
@click.option("--labeled-fraction", type=float, default=None, help="Share of the labeled training set to use, in (0, 1]; the rest becomes unlabeled.")
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Run directory (default runs/<device>-<data>).")
@click.option("--method", default=None, help="Distillation method: supervised, kd, fitnet, anc, anc+unlabeled, anc+align, anc-labelfree.")
@click.option("--epochs", type=int, default=None, help="Training epochs (default: the method's).")
@click.option("--steps-per-epoch", type=int, default=None, help="Fixed optimizer steps per epoch (default: one pass over the larger data stream).")
@click.option("--seed", type=int, default=None, help="Seed for splits, initialization and training (default 0).")
@click.option("--latency-ms", type=float, default=None, help="Override the profile's latency budget.")
@click.option("--memory-mb", type=float, default=None, help="Override the profile's peak-RAM budget.")
@click.option("--profiles-dir", type=click.Path(file_okay=False), default=None, help="Extra folder of device profiles.")
@click.option("--serial", default=None, help="Android device serial: also benchmark on the phone over adb.")
@click.option("--host", default=None, help="ssh host or ~/.ssh/config alias: also benchmark on the board.")
@click.option("--runs", type=int, default=None, help="Counted benchmark runs per artifact (default 100).")
@click.option("--warmup", type=int, default=None, help="Warm-up runs per artifact (default 10).")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None, help="run.toml holding any of these options; the command line overrides it.")
@click.option("--force", is_flag=True, help="Start over instead of resuming finished stages.")
@click.option("--quiet", is_flag=True, help="No progress output.")
@click.option("--json", "as_json", is_flag=True, help="Print the BuildReport JSON at the end.")
def build(config_file: str | None, force: bool, quiet: bool, as_json: bool, **options: Any) -> None:
    """Profile -> select -> distill -> export + parity -> benchmark -> report.

    With no --teacher and no --data it runs the built-in demo: the procedural `shapes` task,
    10% of its labels, its style-shifted unlabeled pool, and a demo teacher trained and cached
    on first use. Re-running the same command resumes after the last finished stage.
    """
    from edgecompress.pipeline import build as run_build
    from edgecompress.runconfig import load_run_config

    cfg = load_run_config(config_file, options)
    report = run_build(cfg, force=force, quiet=quiet)
    if as_json:
        click.echo(report.to_json())
    else:
        click.echo(f"report: {report.report_html}")
        click.echo(f"summary: {report.report_html.rsplit('/', 1)[0]}/summary.json")
        click.echo(json.dumps({"wall_s": report.wall_s, "stages": report.stages}))
