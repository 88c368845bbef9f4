"""Fixtures of the bad-input catalogue: one workspace of bad files and one small trained
teacher per session, shared by every case that needs them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fakes.bench_models import cached, has_tflite_stack, make_tflite
from workspace import build_workspace


@pytest.fixture(scope="session")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_workspace(tmp_path_factory.mktemp("bad-inputs") / "ws")


@pytest.fixture(scope="session")
def teacher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    # The same cache folder the autouse fixture in tests/conftest.py gives each test (it is
    # function-scoped, so a session fixture sets it itself).
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EDGECOMPRESS_CACHE", str(tmp_path_factory.getbasetemp() / "edgecompress-cache"))
        from edgecompress.distill import demo_teacher

        yield demo_teacher("digits", steps=40, progress=False)


@pytest.fixture(scope="session")
def tflite_truncated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real TFLite file (TensorFlow's converter) cut to 60% of its bytes."""
    if not has_tflite_stack():
        pytest.skip("needs the tflite extra")
    good = cached(tmp_path_factory, "model.tflite", make_tflite)
    blob = good.read_bytes()
    cut = tmp_path_factory.mktemp("truncated") / "truncated.tflite"
    cut.write_bytes(blob[: len(blob) * 6 // 10])
    return cut
