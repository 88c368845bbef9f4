"""`edgecompress calibrate`: measure probe models on a device and fit its latency predictor."""

from __future__ import annotations

import json
from pathlib import Path

import click

from edgecompress.cost.rounds import AGREE_PCT, GATE_BLOCK, GATE_PCT


@click.command("calibrate")
@click.option("--device", required=True, help="Device profile name or .toml path.")
@click.option("--probes", type=int, default=20, show_default=True, help="New probe models to measure.")
@click.option("--runtime", "runtimes", multiple=True,
              help="RUNTIME:PRECISION to calibrate, e.g. onnxruntime-cpu:fp32 or tflite-xnnpack:int8 "
                   "(repeatable; default: the profile's runtime at each of its precisions).")
@click.option("--input", "input_shape", default="3x32x32", show_default=True, help="Probe input shape CxHxW.")
@click.option("--runs", type=int, default=200, show_default=True, help="Counted runs per measurement.")
@click.option("--warmup", type=int, default=20, show_default=True, help="Warmup runs per measurement.")
@click.option("--repeats", type=int, default=3, show_default=True, help="Interleaved rounds; the fastest median is kept.")
@click.option("--extra-rounds", type=int, default=3, show_default=True,
              help=f"At most this many more rounds for a probe whose two fastest clean rounds are over {AGREE_PCT:g}% "
                   "apart or that has fewer than two clean rounds (interference on a shared or throttling device); "
                   "0 turns it off.")
@click.option("--no-gate", is_flag=True,
              help=f"Do not time a sentinel model before every {GATE_BLOCK} measurements. By default a round measured "
                   f"while the sentinel ran over {GATE_PCT:g}% slower than its best is not clean: it does not count (a "
                   f"slow state lasting minutes). Costs one measurement in {GATE_BLOCK + 1}; a quiet, dedicated device "
                   "can skip it.")
@click.option("--serial", default=None, help="adb serial (adb devices).")
@click.option("--host", default=None, help="ssh host or ~/.ssh/config alias (ssh devices).")
@click.option("--output", type=click.Path(dir_okay=False), default=None,
              help="Calibration file (default: <profile>.calibration.json beside the profile).")
@click.option("--profiles-dir", type=click.Path(file_okay=False), default=None, help="Extra folder of device profiles.")
@click.option("--no-kernels", is_flag=True, help="Skip kernel profiling (ONNX Runtime): whole-model probes only.")
@click.option("--json", "as_json", is_flag=True, help="Print the accuracy as JSON.")
@click.option("--no-progress", is_flag=True, help="No progress bars.")
def calibrate(device: str, probes: int, runtimes: tuple[str, ...], input_shape: str, runs: int, warmup: int, repeats: int,
              extra_rounds: int, no_gate: bool, serial: str | None, host: str | None, output: str | None, profiles_dir: str | None,
              no_kernels: bool, as_json: bool, no_progress: bool) -> None:
    """Export and measure probe models on DEVICE, refit its latency predictor, save it beside the profile.

    Where the runtime times kernels apart (ONNX Runtime), each probe's kernels are profiled and
    a predictor per kernel type is fitted first; the whole probes then refine it. Re-running
    adds new probes to the existing measurements. Prints held-out (leave-one-out) accuracy,
    the 90% interval's half-width and the device time spent.
    """
    from edgecompress.cli.select_cmd import parse_input_shape
    from edgecompress.cost.calibrate import calibrate as run
    from edgecompress.cost.calibration import layout_label, parse_runtime_key
    from edgecompress.errors import CalibrationError
    from edgecompress.profiles import load_profile

    profile = load_profile(device, profiles_dir)
    keys = [parse_runtime_key(r) for r in runtimes] or [(profile.runtime.kind, p) for p in profile.runtime.precisions
                                                         if p in ("fp32", "int8")]
    for name, v, lo in (("--runs", runs, 1), ("--warmup", warmup, 0), ("--repeats", repeats, 1),
                        ("--extra-rounds", extra_rounds, 0)):
        if v < lo:
            raise CalibrationError(f"{name} {v} is not allowed (must be >= {lo})")
    kw = {k: v for k, v in (("serial", serial), ("host", host)) if v}
    cal, info = run(profile, keys, probes=probes, input_shape=parse_input_shape(input_shape), runs=runs, warmup=warmup,
                    repeats=repeats, extra_rounds=extra_rounds, progress=False if no_progress else None, path=Path(output) if output else None,
                    kernels=not no_kernels, gate=not no_gate, **kw)
    acc = info["accuracy"]
    if as_json:
        click.echo(json.dumps({"device": profile.name, "path": info["path"], "new_probes": info["new_probes"],
                               "measurements": len(cal.measurements), "device_s": round(info["device_s"], 1),
                               "kernel_samples": info["kernel_samples"], "gate": info["gate"],
                               "interval_halfwidth": {k: cal.fits[k]["interval"]["halfwidth"] for k in acc},
                               "fits": {k: {f: cal.fits[k][f] for f in ("prior", "channel_block", "padding")} for k in acc},
                               "held_out": {k: vars(a) for k, a in acc.items()}}, indent=2))
        return
    click.echo(f"calibrated {profile.name}: {info['new_probes']} new probes, {len(cal.measurements)} measurements, "
               f"{info['device_s']:.0f} s on the device, saved {info['path']}")
    for stage, g in info["gate"].items():
        if g["rounds_rejected"]:
            click.echo(f"  {stage}: {g['rounds_rejected']} of {g['rounds']} rounds measured while the machine ran over "
                       f"{g['gate_pct']:g}% slower than its best (sentinel {g['sentinel_best_ms']}-{g['sentinel_worst_ms']} ms) "
                       "were not counted" + (f"; {g['models_without_clean_round']} models kept their fastest round anyway"
                                             if g["models_without_clean_round"] else ""))
    for k, a in acc.items():
        q = cal.fits[k]["interval"]["halfwidth"]
        kern = f", {info['kernel_samples'][k]} kernel samples" if k in info["kernel_samples"] else ", no kernel profiling"
        click.echo(f"  {k}: leave-one-out over {a.n} probes: {a.within_10pct:.0%} within ±10%, "
                   f"RMSPE {a.rmspe:.1f}%, worst {a.worst_abs_pct:.1f}%, 90% interval "
                   + (f"±{q:.1%}" if q is not None else "unbounded (too few probes)") + kern
                   + f"; fit towards the {cal.fits[k]['prior']}, conv layout {layout_label(cal.fits[k])}")
