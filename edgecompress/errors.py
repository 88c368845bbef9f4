"""Error types.

A *user* error is something the person running the tool can fix (a bad file, a bad value, an
unreachable device). It carries one line of text that names the file, field or value and what
is allowed; the CLI prints that line and exits with ``exit_code`` (2), never a traceback.

Anything else is a bug in edgecompress and surfaces as :class:`InternalError`, whose message
asks to report it.
"""

from __future__ import annotations


class EdgeCompressError(Exception):
    """Base class for user errors: one line, non-zero exit, no traceback."""

    exit_code: int = 2
    stage: str = "edgecompress"

    def __init__(self, message: str) -> None:
        # One line only: a multi-line message would break the "one clear line" contract.
        super().__init__(" ".join(str(message).split("\n")).strip())

    def __str__(self) -> str:
        return self.args[0] if self.args else self.stage


class ConfigError(EdgeCompressError):
    stage = "config"


class ProfileError(EdgeCompressError):
    stage = "profile"


class DataError(EdgeCompressError):
    stage = "data"


class SelectError(EdgeCompressError):
    stage = "select"


class CalibrationError(EdgeCompressError):
    stage = "calibrate"


class TeacherError(EdgeCompressError):
    stage = "teacher"


class DistillError(EdgeCompressError):
    stage = "distill"


class ExportError(EdgeCompressError):
    stage = "export"


class ParityError(ExportError):
    """An exported artifact disagrees with eager PyTorch beyond the configured thresholds."""

    stage = "parity"


class BenchError(EdgeCompressError):
    stage = "bench"


class BuildError(EdgeCompressError):
    stage = "build"


class MissingExtraError(EdgeCompressError):
    """An optional dependency stack is not installed; the message says what to pip install."""

    stage = "install"

    def __init__(self, what: str, extra: str) -> None:
        super().__init__(f'{what} is not installed: pip install "edgecompress[{extra}]"')


class InternalError(Exception):
    """A bug in edgecompress, not something the user did."""

    exit_code: int = 1

    def __init__(self, message: str) -> None:
        super().__init__(f"internal error: {message} (this is a bug in edgecompress, please report it)")
