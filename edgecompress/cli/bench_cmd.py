"""`edgecompress bench`: measure one exported model on one device and write the JSON result."""

from __future__ import annotations

import sys
from typing import Any

import click

from edgecompress.runners import list_runners


def _fmt(value: float | None, unit: str = "ms") -> str:
    return "n/a" if value is None else f"{value:.3f} {unit}" if value < 10 else f"{value:.1f} {unit}"


def summary(result: Any) -> str:
    """A one-screen, human summary of a BenchmarkResult."""
    r, lat, env = result, result.latency, result.environment
    pin = env.get("affinity") or (f"cpu mask {env['cpu_mask']}" if env.get("cpu_mask") else "not pinned")
    lines = [
        f"{r.artifact.rsplit('/', 1)[-1]} on {r.device} ({r.runner}, {r.runtime} {r.runtime_version}, "
        f"{r.threads} thread{'s' if r.threads != 1 else ''}, {pin})",
        f"  runs         {r.num_runs} counted after {r.warmup_runs} warmup, precision {r.precision}",
        f"  latency      p50 {_fmt(lat.p50_ms)}  p90 {_fmt(lat.p90_ms)}  p99 {_fmt(lat.p99_ms)}",
        f"               mean {_fmt(lat.mean_ms)} ± {_fmt(lat.std_ms)}  min {_fmt(lat.min_ms)}  max {_fmt(lat.max_ms)}",
        f"  init         {_fmt(r.init_ms)}, first inference {_fmt(r.first_inference_ms)}",
        f"  peak memory  {_fmt(r.peak_mem_mb, 'MB')} added by the model"
        + (f" (process peak {env['process_peak_rss_mb']} MB)" if env.get("process_peak_rss_mb") else ""),
        f"  cpu          {env.get('cpu_model') or env.get('ro.soc.model') or 'unknown'}, governor {env.get('governor', 'unreadable')}",
    ]
    if r.sustained is not None or r.state_before is not None:
        from edgecompress.bench.thermal import describe_state, describe_sustained

        if r.sustained is not None:
            lines.append(f"  sustained    {describe_sustained(r.sustained)}")
        cool = f" (after {r.cooldown_s:g} s cool-down)" if r.cooldown_s else ""
        lines.append(f"  device       before{cool}: {describe_state(r.state_before)}")
        lines.append(f"               after: {describe_state(r.state_after)}")
    if env.get("latency_note"):
        lines.append(f"  note         {env['latency_note']}")
    return "\n".join(lines)


@click.command()
@click.option("--artifact", required=True, help="The .onnx / .tflite file (or an export_artifact .json) to measure.")
@click.option("--device", default="host", show_default=True, help="Device profile name (host, pixel7, rpi5, ...) or a .toml path.")
@click.option("--serial", default=None, help="adb device serial (else $ANDROID_SERIAL).")
@click.option("--host", default=None, help="ssh host, user@host or ~/.ssh/config alias (else the profile's $..._HOST).")
@click.option("--runner", type=click.Choice(list_runners()), default=None, help="Override the profile's runner.")
@click.option("--runs", default=100, show_default=True, type=int, help="Counted runs.")
@click.option("--warmup", default=10, show_default=True, type=int, help="Warmup runs before counting.")
@click.option("--threads", default=None, type=int, help="Threads (default: the profile's).")
@click.option("--max-seconds", default=None, type=float, help="Stop counting after this many seconds.")
@click.option("--sustained", "sustained_s", default=None, type=float, metavar="SECONDS",
              help="Run back to back for SECONDS and report latency over time (first vs last minute, p50 and p99).")
@click.option("--cooldown", "cooldown_s", default=0.0, type=float, metavar="SECONDS", help="Let the device idle this long before measuring.")
@click.option("--json", "json_out", default=None, type=click.Path(dir_okay=False), help="Write the BenchmarkResult JSON here (raw output beside it).")
@click.option("--no-progress", is_flag=True, help="No progress bar (it is shown only on a terminal anyway).")
@click.option("--op-profiling", is_flag=True, help="adb: per-op timings from benchmark_model.")
@click.option("--benchmark-model", default=None, type=click.Path(dir_okay=False), help="adb: local benchmark_model binary to push.")
@click.option("--use-gpu", is_flag=True, help="adb: benchmark_model --use_gpu.")
@click.option("--use-nnapi", is_flag=True, help="adb: benchmark_model --use_nnapi.")
@click.option("--remote-python", default=None, help="ssh: python on the board (default python3).")
@click.option("--ssh-config", default=None, type=click.Path(dir_okay=False), help="ssh: use this config file (ssh -F).")
@click.option("--port", default=None, type=int, help="ssh: port.")
@click.option("--identity", default=None, type=click.Path(dir_okay=False), help="ssh: private key file (ssh -i).")
def bench(
    artifact: str,
    device: str,
    serial: str | None,
    host: str | None,
    runner: str | None,
    runs: int,
    warmup: int,
    threads: int | None,
    max_seconds: float | None,
    sustained_s: float | None,
    cooldown_s: float,
    json_out: str | None,
    no_progress: bool,
    op_profiling: bool,
    benchmark_model: str | None,
    use_gpu: bool,
    use_nnapi: bool,
    remote_python: str | None,
    ssh_config: str | None,
    port: int | None,
    identity: str | None,
) -> None:
    """Benchmark one exported model on a device and print a summary.

    \b
    Examples:
      edgecompress bench --artifact m.onnx --device host --json r.json
      edgecompress bench --artifact m.tflite --device pixel7 --serial R5CT... --benchmark-model ./benchmark_model
      edgecompress bench --artifact m.tflite --device rpi5 --host pi@raspberrypi.local --json rpi5.json

    The JSON files can be fed to `edgecompress calibrate`.
    """
    from edgecompress.bench.api import benchmark, check_numbers, make_runner, resolve_artifact
    from edgecompress.errors import BenchError
    from edgecompress.profiles import DeviceProfile, load_profile

    if serial and host:
        raise BenchError("--serial (adb) and --host (ssh) cannot both be given")
    check_numbers(threads, runs, warmup, max_seconds, sustained_s, cooldown_s)
    target = resolve_artifact(artifact)  # reject a bad file before connecting to anything
    profile: DeviceProfile = load_profile(device)
    kind = runner or profile.connection.runner
    adb_opts = {"benchmark_model": benchmark_model, "use_gpu": use_gpu or None, "use_nnapi": use_nnapi or None}
    ssh_opts = {"remote_python": remote_python, "ssh_config": ssh_config, "port": port, "identity": identity}
    wrong = {"adb": ssh_opts, "ssh": adb_opts, "local": {**adb_opts, **ssh_opts}}[kind]
    given = [k for k, v in wrong.items() if v]
    if given:
        raise BenchError(f"--{given[0].replace('_', '-')} does not apply to device {profile.name} (reached by {kind})")
    options = {k: v for k, v in {**adb_opts, **ssh_opts}.items() if v}
    the_runner = make_runner(kind, profile, serial=serial, host=host, **options)
    if sys.stderr.isatty():  # a failure must stay one line on stderr for scripts and logs
        click.echo(f"benchmarking {target.path.name} on {profile.name} over {kind} ...", err=True)
    with the_runner:
        result = benchmark(
            artifact,
            profile,
            runner=the_runner,
            threads=threads,
            runs=runs,
            warmup=warmup,
            max_seconds=max_seconds,
            op_profiling=op_profiling,
            json_path=json_out,
            progress=False if no_progress else None,
            sustained_s=sustained_s,
            cooldown_s=cooldown_s,
        )
    click.echo(summary(result))
    if json_out:
        click.echo(f"  json         {json_out} (raw output: {result.raw_output})")
