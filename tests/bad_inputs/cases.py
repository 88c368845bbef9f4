"""The catalogue's table: shared types and helpers for the case lists.

A case is a command line (``{ws}``: the session's workspace of bad files, ``{tmp}``: the case's
own empty folder and working directory, ``{teacher}``: a small trained teacher), the exit code,
the words the one stderr line must contain, and the paths that must not exist afterwards. The
case id starts with its class (``value-``, ``profile-``, ``config-``, ``out-``, ``device-``,
``data-``, ``model-``, ``teacher-``, ``rerun-``, ``cli-``).
"""

from __future__ import annotations

import dataclasses

USER, DEVICE = 2, 3


@dataclasses.dataclass(frozen=True)
class Case:
    id: str
    argv: tuple[str, ...]
    code: int = USER
    words: tuple[str, ...] = ()
    absent: tuple[str, ...] = ("{tmp}/run", "{tmp}/runs")
    needs: frozenset[str] = frozenset()  # "teacher", "adb", "tflite"
    env: tuple[tuple[str, str], ...] = ()

    @property
    def klass(self) -> str:
        return self.id.split("-", 1)[0]


def case(id: str, argv: list[str] | tuple[str, ...], *words: str, code: int = USER, needs: tuple[str, ...] = (),
         env: dict[str, str] | None = None, absent: tuple[str, ...] | None = None) -> Case:
    extra = {} if absent is None else {"absent": absent}
    return Case(id, tuple(argv), code, tuple(words), needs=frozenset(needs), env=tuple((env or {}).items()), **extra)


def build(*args: str) -> list[str]:
    """A build that would write to {tmp}/run if it got that far."""
    return ["build", "--quiet", "--out", "{tmp}/run", *args]


def teacher_build(*args: str) -> list[str]:
    """A build with the session's small trained teacher on the digits data unless overridden."""
    return build("--teacher", "{teacher}", "--device", "host", *args)
