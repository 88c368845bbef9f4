"""Entry point: the click group, lazy sub-command loading and the error boundary.

Sub-commands live in one module each (``edgecompress/cli/<name>.py``) and import torch and
friends inside their function bodies, so ``edgecompress --help`` stays fast and light. Every
failure leaves through :mod:`edgecompress.cli.boundary`: one line on stderr, a documented exit
code.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from edgecompress.cli.boundary import run_guarded, sigterm_as_interrupt

# command name -> "module:attribute". Add a line here to add a command.
COMMANDS: dict[str, str] = {
    "profiles": "edgecompress.cli.profiles_cmd:profiles",
    "env": "edgecompress.cli.env_cmd:env",
    "bench": "edgecompress.cli.bench_cmd:bench",
    "distill": "edgecompress.cli.distill_cmd:distill",
    "build": "edgecompress.cli.build_cmd:build",
    "export": "edgecompress.cli.export_cmd:export",
    "select": "edgecompress.cli.select_cmd:select",
    "calibrate": "edgecompress.cli.calibrate_cmd:calibrate",
    "data": "edgecompress.cli.data_cmd:data",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, attr = target.split(":")
        cmd: click.Command = getattr(importlib.import_module(module), attr)
        return cmd

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        if not standalone_mode:  # an embedding caller handles exceptions itself
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        argv = list(sys.argv[1:] if args is None else args)
        with sigterm_as_interrupt():
            code = run_guarded(lambda: super(LazyGroup, self).main(argv, prog_name, complete_var, standalone_mode=False, **extra), argv)
        sys.exit(code)


@click.group(cls=LazyGroup, context_settings={"auto_envvar_prefix": "EDGECOMPRESS", "help_option_names": ["-h", "--help"]})
@click.version_option(package_name="edgecompress")
def cli() -> None:
    """Compress a big vision model for a phone or a board.

    \b
    Typical use:
      edgecompress profiles list                 what devices are known
      edgecompress build --device pixel7         whole pipeline on the built-in demo
      edgecompress select --device rpi5 --input 3x32x32 --classes 10

    Options can also come from environment variables EDGECOMPRESS_<COMMAND>_<OPTION>.

    \b
    Exit codes: 0 success, 2 user error (bad option, value or file),
    3 device error (phone or board unreachable or failing),
    4 internal error (please report; the traceback file is named), 130 interrupted.
    """


def main(argv: list[str] | None = None) -> None:
    cli.main(args=argv, prog_name="edgecompress")


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
