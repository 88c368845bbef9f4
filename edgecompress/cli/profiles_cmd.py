"""`edgecompress profiles list|show`."""

from __future__ import annotations

import json

import click

from edgecompress.profiles import DeviceProfile, list_profiles, load_profile

profiles_dir_option = click.option(
    "--profiles-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Extra folder of device profile .toml files (also $EDGECOMPRESS_PROFILES).",
)


@click.group()
def profiles() -> None:
    """List and inspect device profiles (device_profiles/*.toml)."""


def _clusters(p: DeviceProfile) -> str:
    return " + ".join(f"{c.count}x{c.core}" + (f"@{c.max_clock_ghz:g}GHz" if c.max_clock_ghz else "") for c in p.hardware.clusters) or "-"


@profiles.command("list")
@profiles_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def list_cmd(profiles_dir: str | None, as_json: bool) -> None:
    """Table of every known profile and its budgets."""
    items = list_profiles(profiles_dir)
    if as_json:
        click.echo(json.dumps([p.to_dict() for p in items], indent=2))
        return
    header = ("name", "runtime", "threads", "latency_ms", "ram_mb", "size_mb", "runner", "cores")
    rows = [
        (
            p.name,
            p.runtime.kind,
            str(p.runtime.threads),
            f"{p.budgets.latency_budget_ms:g}",
            f"{p.budgets.peak_ram_budget_mb:g}",
            f"{p.budgets.model_size_budget_mb:g}",
            p.connection.runner,
            _clusters(p),
        )
        for p in items
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


@profiles.command("show")
@click.argument("name")
@profiles_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print the validated profile as JSON.")
def show_cmd(name: str, profiles_dir: str | None, as_json: bool) -> None:
    """Show one profile (NAME or a path to a .toml file)."""
    p = load_profile(name, profiles_dir)
    if as_json:
        click.echo(p.to_json())
        return
    click.echo(f"{p.name}: {p.description}")
    click.echo(f"  file        {p.source}")
    click.echo(f"  hardware    {p.hardware.soc}, {_clusters(p)}, {p.hardware.ram_gb:g} GB RAM")
    mask = f", cpu mask {p.runtime.cpu_mask}" if p.runtime.cpu_mask else ""
    click.echo(f"  runtime     {p.runtime.kind}, {p.runtime.threads} threads{mask}, precisions {','.join(p.runtime.precisions)}")
    pr = p.priors
    click.echo(
        f"  priors      fp32 {pr.fp32_gmacs_per_s:g} / fp16 {pr.fp16_gmacs_per_s:g} / int8 {pr.int8_gmacs_per_s:g} GMAC/s, "
        f"{pr.memory_bandwidth_gb_per_s:g} GB/s, {pr.per_op_overhead_us:g} us/op"
    )
    b = p.budgets
    click.echo(f"  budgets     {b.latency_budget_ms:g} ms, {b.peak_ram_budget_mb:g} MB peak RAM, {b.model_size_budget_mb:g} MB model")
    c = p.connection
    via = {"adb": f"adb (serial from --serial or ${c.serial_env})", "ssh": f"ssh (host from --host or ${c.host_env})"}
    click.echo(f"  connection  {via.get(c.runner, c.runner)}")
    cal = p.calibration_path
    click.echo(f"  calibration {cal if cal.exists() else 'none yet (edgecompress calibrate --device ' + p.name + ')'}")
