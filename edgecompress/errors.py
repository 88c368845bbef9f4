"""Error types.

A *user* error is something the person running the tool can fix (a bad file, a bad value, an
unreachable device). It carries one line of text that names the file, field or value and what
is allowed; the CLI prints that line and exits with ``exit_code``, never a traceback.

Anything else is a bug in edgecompress and surfaces as :class:`InternalError` (or any other
exception), which the CLI reports in one line asking to report it, with the traceback in a file.

Exit codes (documented in ``edgecompress --help`` and the README):

    0    success
    2    user error: a bad option, value or file (fix the input named in the message)
    3    device error: the phone or board cannot be reached or failed on it
    4    internal error: a bug in edgecompress, please report it with the traceback file
    130  interrupted (Ctrl-C or SIGTERM); what finished is kept, the next run resumes
"""

from __future__ import annotations

EXIT_USER = 2
EXIT_DEVICE = 3
EXIT_INTERNAL = 4
EXIT_INTERRUPTED = 130


class EdgeCompressError(Exception):
    """Base class for user errors: one line, non-zero exit, no traceback."""

    exit_code: int = EXIT_USER
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


class DeviceError(BenchError):
    """The phone or board named by --serial / --host cannot be reached, or failed on it."""

    exit_code = EXIT_DEVICE


class BuildError(EdgeCompressError):
    stage = "build"


class MissingExtraError(EdgeCompressError):
    """An optional dependency stack is not installed; the message says what to pip install."""

    stage = "install"

    def __init__(self, what: str, extra: str) -> None:
        super().__init__(f'{what} is not installed: pip install "edgecompress[{extra}]"')


class InternalError(Exception):
    """A bug in edgecompress, not something the user did."""

    exit_code: int = EXIT_INTERNAL

    def __init__(self, message: str) -> None:
        super().__init__(f"internal error: {message} (this is a bug in edgecompress, please report it)")
