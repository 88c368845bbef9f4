"""`edgecompress select`: the candidate table for a device's budgets, and the chosen StudentSpec."""

from __future__ import annotations

import json

import click

from edgecompress.cli.teacher_options import teacher_file_options
from edgecompress.errors import SelectError


def parse_input_shape(text: str) -> tuple[int, int, int]:
    """``3x32x32`` -> (3, 32, 32); anything else is one SelectError line."""
    try:
        parts = tuple(int(v) for v in text.lower().split("x"))
    except ValueError:
        parts = ()
    if len(parts) != 3 or min(parts) < 1:
        raise SelectError(f"--input {text!r} is not allowed (expected CxHxW, e.g. 3x32x32)")
    return parts  # type: ignore[return-value]


def _format_table(rows: list[dict[str, object]]) -> str:
    # latency_90 is the upper end of the calibrated 90% interval: what the budget is checked on.
    header = ("family", "arch", "MACs", "x teacher", "params", "prec", "latency_ms", "latency_90", "peak_ram_mb", "size_mb", "fits")
    body = [(str(r["family"]), str(r["label"]), f"{r['macs']:,}",
             "-" if r.get("compression_x") is None else f"{r['compression_x']:.3g}x", f"{r['params']:,}", str(r["precision"]),
             f"{r['latency_ms']:.3f}", "-" if r.get("latency_upper_ms") is None else f"{r['latency_upper_ms']:.3f}",
             f"{r['peak_ram_mb']:.2f}", f"{r['size_mb']:.3f}",
             "yes" if r["fits"] else "no (" + ",".join(r["over"]) + ")")  # type: ignore[arg-type]
            for r in rows]
    widths = [max(len(x[i]) for x in [header, *body]) for i in range(len(header))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(x, widths, strict=True)).rstrip() for x in [header, *body])


@click.command("select")
@click.option("--device", required=True, help="Device profile name or .toml path.")
@click.option("--input", "input_shape", default="3x32x32", show_default=True, help="Input shape CxHxW.")
@click.option("--classes", type=int, required=True, help="Number of classes.")
@click.option("--latency-ms", type=float, default=None, help="Latency budget (overrides the profile).")
@click.option("--memory-mb", type=float, default=None, help="Peak RAM budget (overrides the profile).")
@click.option("--size-mb", type=float, default=None, help="Model file size budget (overrides the profile).")
@click.option("--compress", default=None, metavar="RATIO",
              help="With --teacher: teacher MACs / student MACs the student must reach (default 8x).")
@click.option("--family", "families", multiple=True, help="Families to search, in preference order (repeatable).")
@teacher_file_options("Teacher file: the reference for --compress, and the pruned-teacher family.")
@click.option("--profiles-dir", type=click.Path(file_okay=False), default=None, help="Extra folder of device profiles.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None, help="Write the chosen StudentSpec JSON here.")
@click.option("--json", "as_json", is_flag=True, help="Print the table and the choice as JSON.")
def select(device: str, input_shape: str, classes: int, latency_ms: float | None, memory_mb: float | None,
           size_mb: float | None, compress: str | None, families: tuple[str, ...], teacher: str | None, entry_point: str | None,
           trust_checkpoint: bool | None, profiles_dir: str | None, output: str | None, as_json: bool) -> None:
    """Choose the student that fits DEVICE's latency, RAM and size budgets.

    With --teacher, the student must also be smaller than the teacher (MACs, parameters,
    predicted latency) and at least --compress times cheaper in MACs (default 8x); of the
    candidates left, the largest of the first family in preference order wins.
    """
    from edgecompress.profiles import load_profile
    from edgecompress.select import finalize, run_selection

    profile = load_profile(device, profiles_dir)
    shape = parse_input_shape(input_shape)
    module, ref = None, None
    if compress is not None and not teacher:
        raise SelectError("--compress needs --teacher (the ratio is teacher MACs / student MACs)")
    if teacher:
        from edgecompress.cost.reference import teacher_reference
        from edgecompress.distill.teacher_load import load_teacher

        t = load_teacher(teacher, entry_point=entry_point, trust_checkpoint=bool(trust_checkpoint))
        module = t.module
        if module is None and "pruned-teacher" in families:
            why = getattr(t, "lift_note", None) or f"a {t.format} teacher has no eager module"
            raise SelectError(f"{teacher}: pruned-teacher cannot be cut from this teacher ({why}); choose another --family")
        ref = teacher_reference(t, shape)
    sel = run_selection(profile, shape, classes, latency_ms=latency_ms, memory_mb=memory_mb, size_mb=size_mb,
                        families=families or None, teacher=module, teacher_cost=ref, compress=compress)
    spec = finalize(sel, profile)
    if output:
        spec.save(output)
    rows = [c.row() for c in sel.candidates]
    if as_json:
        click.echo(json.dumps({"device": profile.name, "budget": spec.selection.budget if spec.selection else None,
                               "latency_source": sel.latency_source, "candidates": rows, "choice": spec.to_dict()}, indent=2))
        return
    b = sel.budget
    click.echo(f"device {profile.name} ({profile.runtime.kind}), latency from {sel.latency_source}; "
               f"budgets: {b.latency_budget_ms:g} ms, {b.peak_ram_budget_mb:g} MB peak RAM, {b.model_size_budget_mb:g} MB file")
    click.echo(_format_table(rows))
    if sel.teacher is not None:
        t = sel.teacher
        click.echo(f"teacher: {t.cost.macs:,} MACs, {t.cost.params:,} params"
                   + (f", predicted {t.latency_ms:.3f} ms" if t.latency_ms is not None else "")
                   + f"; compression target {sel.compress:g}x")
    c = sel.choice
    ratio = "" if c.compression_x is None else f"{c.compression_x:.1f}x fewer MACs than the teacher, "
    click.echo(f"chosen: {c.spec.family} {c.label} ({ratio}{c.cost.macs:,} MACs, {c.cost.params:,} params, {c.precision}, "
               f"predicted {c.latency_ms:.3f} ms, {c.ram_mb:.2f} MB peak RAM, {c.size_mb:.3f} MB)")
    click.echo(f"arch: {c.spec.arch} width {c.spec.width_mult:g}")
    if output:
        click.echo(f"wrote {output}")
