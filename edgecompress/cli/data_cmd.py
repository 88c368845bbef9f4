"""`edgecompress data show NAME_OR_PATH`: sizes, class balance and a PNG grid of samples."""

from __future__ import annotations

import json
import sys
import warnings

import click


@click.group()
def data() -> None:
    """Inspect built-in and user data sets (digits, shapes, folders, .npz, CIFAR)."""


@data.command("show")
@click.argument("source")
@click.option("--unlabeled", "-u", default=None, help="Unlabeled pool: a flat image folder, a .npz with x, or shapes-pool.")
@click.option("--labeled-fraction", type=float, default=1.0, show_default=True, help="Share of training images kept labeled (0, 1].")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the labeled subset.")
@click.option("--input-shape", default=None, metavar="CxHxW", help="Serve images at this shape, e.g. 3x32x32.")
@click.option("--strict", is_flag=True, help="Fail on an unreadable image instead of skipping it.")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Write a PNG grid: labeled vs unlabeled samples.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def show_cmd(
    source: str,
    unlabeled: str | None,
    labeled_fraction: float,
    seed: int,
    input_shape: str | None,
    strict: bool,
    out: str | None,
    as_json: bool,
) -> None:
    """Print sizes and class balance of SOURCE (a built-in name or a path) and its splits."""
    from edgecompress.errors import DataError

    shape = None
    if input_shape is not None:
        try:
            shape = tuple(int(v) for v in input_shape.lower().split("x"))
        except ValueError:
            raise DataError(f"--input-shape {input_shape!r}: expected CxHxW, e.g. 3x32x32") from None

    from edgecompress.data import DataWarning, load_task
    from edgecompress.data.grid import describe, save_grid

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DataWarning)
        task = load_task(
            source, unlabeled=unlabeled, labeled_fraction=labeled_fraction, seed=seed,
            input_shape=shape, strict=strict,  # type: ignore[arg-type]
        )  # fmt: skip
    for w in caught:
        click.echo(f"warning: {w.message}", err=True)
    info = describe(task)
    if out:
        info["grid"] = str(save_grid(task, out, seed=seed))
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    _print_summary(info)
    if out:
        click.echo(f"grid        {out}", file=sys.stdout)


def _print_summary(info: dict) -> None:
    pre = info["preprocessing"]
    click.echo(f"{info['name']}: {info['num_classes']} classes, input {'x'.join(map(str, info['input_shape']))}")
    click.echo(f"  normalize  mean {pre['mean']} std {pre['std']} (resize {pre['resize']})")
    aug = info["augment"]
    click.echo(f"  augment    crop pad {aug['crop_pad']} px, flip {'on' if aug['flip'] else 'off'} (training sets only)")
    sp = info["splits"]
    for name in ("labeled", "val", "test", "calibration"):
        click.echo(f"  {name:<11}{sp[name]['n']:>7}")
    pool = sp["unlabeled_pool"]
    extra = f" ({pool['hidden_out_of_class']} out-of-class, hidden)" if "hidden_out_of_class" in pool else ""
    click.echo(f"  {'pool':<11}{pool['n']:>7}{extra}")
    click.echo(f"  {'rest':<11}{sp['unlabeled_rest']['n']:>7} (training images with labels dropped)")
    click.echo("  class balance (labeled / test):")
    width = max(len(n) for n in info["class_names"])
    for k, name in enumerate(info["class_names"]):
        click.echo(f"    {name:<{width}}  {sp['labeled']['per_class'][k]:>6} / {sp['test']['per_class'][k]:>5}")
