"""The `edgecompress` command line: a thin click layer over the library."""

from edgecompress.cli.main import main

__all__ = ["main"]
