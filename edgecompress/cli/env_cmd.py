"""`edgecompress env`: versions of everything that matters, for bug reports."""

from __future__ import annotations

import json
import sys

import click

from edgecompress.versions import versions


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def env(as_json: bool) -> None:
    """Print versions of python, torch, onnx, onnxruntime, tensorflow, onnx2tf and the TFLite interpreter."""
    v = versions()
    if as_json:
        click.echo(json.dumps(v, indent=2))
        return
    width = max(map(len, v))
    for k, val in v.items():
        click.echo(f"{k.ljust(width)}  {val}")
    click.echo(f"{'executable'.ljust(width)}  {sys.executable}")
