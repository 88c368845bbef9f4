"""Add a benchmark runner: one file (tests/add_an_x/toy_runner.py), a profile naming it, `bench`."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest_plugins = ["fakes.bench_fixtures"]  # tiny_onnx


def _profile(tmp_path: Path) -> Path:
    from edgecompress.profiles import builtin_profiles_dir

    text = (builtin_profiles_dir() / "host.toml").read_text().replace('name = "host"', 'name = "toy-folder-board"')
    text = text.replace('runner = "local"', 'runner = "toy-folder"')
    (tmp_path / "toy-folder-board.toml").write_text(text)
    return tmp_path / "toy-folder-board.toml"


def test_a_toy_runner_measures_through_the_shared_remote_session(tmp_path: Path, tiny_onnx: Path, toy) -> None:  # type: ignore[no-untyped-def]
    toy_runner = toy("toy_runner")
    from edgecompress.bench import benchmark
    from edgecompress.bench.api import make_runner
    from edgecompress.profiles import load_profile

    board = tmp_path / "board"
    board.mkdir()
    profile = load_profile(str(_profile(tmp_path)))
    with make_runner("toy-folder", profile, host=str(board), python=sys.executable) as runner:
        assert isinstance(runner, toy_runner.FolderRunner)
        r = benchmark(tiny_onnx, profile, runner=runner, runs=5, warmup=1)
    assert r.runner == "toy-folder" and r.num_runs == 5 and r.latency.p50_ms > 0
    assert list(board.iterdir()) == []  # the work folder (model, runner script, pid) was removed


def test_a_runner_kind_nobody_registered_is_one_line(tmp_path: Path) -> None:
    from edgecompress.errors import ProfileError
    from edgecompress.profiles import load_profile

    with pytest.raises(ProfileError, match=r"toy-folder.*allowed: local, adb, ssh"):
        load_profile(str(_profile(tmp_path)))
