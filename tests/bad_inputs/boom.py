"""A command that fails the way a bug does, to check the CLI's internal-error boundary."""

from __future__ import annotations

import click


@click.command()
@click.option("--kind", type=click.Choice(["zero", "eof", "memory"]), default="zero")
def boom(kind: str) -> None:
    """Raise an unexpected exception."""
    if kind == "eof":
        raise EOFError("ran out of input")
    if kind == "memory":
        raise MemoryError()
    print(1 / 0)
