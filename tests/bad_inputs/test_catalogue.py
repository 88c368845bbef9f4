"""The bad-input catalogue: every case fails fast, in one line, with nothing written.

Each case (tables in cases_values.py and cases_files.py) runs in-process through click's
CliRunner and must give: the expected exit code, exactly one non-empty stderr line starting
with ``error:``, no traceback, the named file / field / value in that line, no file created,
changed or removed in the workspace or the case's own folder, and none of its listed paths.
"""

from __future__ import annotations

import collections
import os
from pathlib import Path

import pytest
from cases import Case
from cases_files import DATA, DEVICES, MISC, MODELS, OUT, RERUNS, TEACHERS
from cases_values import CONFIGS, PROFILES, VALUES
from click.testing import CliRunner

from edgecompress.cli.main import cli

ALL: list[Case] = [*VALUES, *CONFIGS, *PROFILES, *OUT, *DEVICES, *DATA, *MODELS, *TEACHERS, *RERUNS, *MISC]
FAKES = Path(__file__).resolve().parents[1] / "fakes"


def snapshot(root: Path) -> dict[str, tuple[object, ...]]:
    """Every entry under ``root`` (links not followed, FIFOs not opened): files by size and
    mtime, links by target, folders by presence (a write probe may touch a folder's mtime)."""
    seen: dict[str, tuple[object, ...]] = {}
    for folder, dirs, files in os.walk(root, followlinks=False):
        for name in dirs + files:
            p = os.path.join(folder, name)
            st = os.lstat(p)
            if os.path.islink(p):
                seen[p] = ("link", os.readlink(p))
            elif os.path.isdir(p):
                seen[p] = ("dir",)
            else:
                seen[p] = ("file", st.st_mode, st.st_size, st.st_mtime_ns)
    return seen


def _fill(text: str, subs: dict[str, str]) -> str:
    for key, value in subs.items():
        text = text.replace("{" + key + "}", value)
    return text


def test_catalogue_size_and_ids() -> None:
    ids = [c.id for c in ALL]
    assert len(ids) == len(set(ids)), [i for i, n in collections.Counter(ids).items() if n > 1]
    assert len(ALL) >= 150, len(ALL)


@pytest.mark.parametrize("c", ALL, ids=[c.id for c in ALL])
def test_bad_input(c: Case, ws: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    subs = {"ws": str(ws), "tmp": str(tmp_path)}
    if "teacher" in c.needs:
        subs["teacher"] = str(request.getfixturevalue("teacher"))
    if "tflite" in c.needs:
        subs["tflite_truncated"] = str(request.getfixturevalue("tflite_truncated"))
    if "adb" in c.needs:
        monkeypatch.setenv("PATH", f"{FAKES}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("ANDROID_SERIAL", raising=False)
    for key, value in c.env:
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)
    argv = [_fill(a, subs) for a in c.argv]
    before = snapshot(ws), snapshot(tmp_path)

    res = CliRunner().invoke(cli, argv)

    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert res.exit_code == c.code, f"exit {res.exit_code}; stderr: {res.stderr!r}; stdout: {res.stdout!r}"
    assert len(lines) == 1, res.stderr
    line = lines[0]
    print(f"{c.id}: {line}")  # shown with -s: the catalogue's messages, for review
    assert line.startswith("error: "), line
    assert "Traceback" not in res.stderr + res.stdout
    for word in c.words:
        assert _fill(word, subs) in line, (word, line)
    assert (snapshot(ws), snapshot(tmp_path)) == before, "a bad input changed files"
    for path in c.absent:
        assert not os.path.lexists(_fill(path, subs)), path
