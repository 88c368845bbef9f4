"""Command-line options that describe a user's teacher beyond its file: how to build it, which
output is the logits, and the input preprocessing it was trained with (defined once here)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click

from edgecompress.preprocess_options import CHANNEL_ORDERS, KEYS, NORMALIZE, PIXEL_RANGES, RESIZE_MODES

_OPTIONS = [
    click.option("--entry-point-kwargs", default=None, metavar="JSON",
                 help="Keyword arguments for the --entry-point factory as a JSON object, e.g. '{\"width\": 64}'. "
                      "A factory taking num_classes gets the data's class count unless given."),
    click.option("--teacher-output", default=None, metavar="NAME|INDEX",
                 help="Which output is the logits when the teacher returns a tuple, list or dict "
                      "(default: the only one, a 'logits' key, or the one with as many columns as classes)."),
    click.option("--teacher-feature", default=None, metavar="MODULE",
                 help="Module whose output is the teacher's embedding (default: the input of its last Linear, "
                      "found on any layout); a wrong name lists the nearest ones."),
    click.option("--student-feature", default=None, metavar="MODULE",
                 help="The same for the student (default: the input of its classifier / last Linear / 1x1-conv head)."),
    click.option("--normalize", default=None, type=click.Choice(NORMALIZE, case_sensitive=False),
                 help="Normalization the teacher was trained with: data (statistics of the labeled images), "
                      "half (0.5/0.5), imagenet, unit (raw). Default: the teacher file's "
                      "<stem>.preprocessing.json, else data."),
    click.option("--mean", default=None, metavar="M[,M,M]", help="Per-channel mean (in the --pixel-range units); with --std."),
    click.option("--std", default=None, metavar="S[,S,S]", help="Per-channel std (in the --pixel-range units); with --mean."),
    click.option("--pixel-range", default=None, type=click.Choice(tuple(PIXEL_RANGES)),
                 help="Pixel values the teacher expects before normalization: 0-1 (default) or 0-255."),
    click.option("--channel-order", default=None, type=click.Choice(CHANNEL_ORDERS, case_sensitive=False),
                 help="Channel order the teacher expects: rgb (default) or bgr."),
    click.option("--input-size", default=None, metavar="H|HxW",
                 help="Input size the teacher takes; the data is resized to it (default: what the teacher file "
                      "declares, else the data's size)."),
    click.option("--resize", default=None, type=click.Choice(RESIZE_MODES), help="Resize policy: bilinear (default) or nearest."),
    click.option("--raw-input", is_flag=True, default=None,
                 help="Also write each ONNX artifact with the preprocessing folded in: it takes uint8 RGB "
                      "pixels (N, H, W, 3) as a camera gives them; checked on raw pixels (export/raw_input.json)."),
    click.option("--auto-normalize", is_flag=True, default=None,
                 help="When the preflight check finds a clearly better normalization for the teacher, use it "
                      "(and say so) instead of stopping."),
]


def teacher_file_options(teacher_help: str, *, required: bool = False, dest: str = "teacher") -> Callable[..., Any]:
    """``--teacher``, ``--entry-point`` and ``--trust-checkpoint``, the same in every command
    that loads a teacher (``select`` also answers to its old ``--teacher-entry-point``)."""
    options = [
        click.option("--teacher", dest, type=click.Path(dir_okay=False), required=required, default=None, help=teacher_help),
        click.option("--entry-point", "--teacher-entry-point", "entry_point", default=None, metavar="MODULE:FACTORY",
                     help="module:factory building the teacher network for a state_dict file (the module is found "
                          "in the current folder or beside the weights)."),
        click.option("--trust-checkpoint", is_flag=True, default=None,
                     help="Allow a pickled whole-module teacher (runs code from the file!)."),
    ]

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(options):
            fn = option(fn)
        return fn

    return deco


def teacher_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Add the options above to a command."""
    for option in reversed(_OPTIONS):
        fn = option(fn)
    return fn


def gather(options: dict[str, Any]) -> dict[str, Any]:
    """Fold the preprocessing options into one ``preprocessing`` mapping (as the run config
    holds it) and decode ``--entry-point-kwargs``; bad JSON is one line, exit 2."""
    out = dict(options)
    out["preprocessing"] = {k: out.pop(k) for k in KEYS if k in out}
    text = out.get("entry_point_kwargs")
    if isinstance(text, str):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise click.BadParameter(f"{text!r} is not JSON ({exc.msg}); e.g. '{{\"num_classes\": 20}}'",
                                     param_hint="--entry-point-kwargs") from None
        if not isinstance(value, dict):
            raise click.BadParameter(f"{text!r} must be a JSON object", param_hint="--entry-point-kwargs")
        out["entry_point_kwargs"] = value
    return out

