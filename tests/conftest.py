"""Shared test set-up: keep tests light on a 2-core machine and away from the user's files."""

from __future__ import annotations

import os

import pytest

# One intra-op thread per process: tests run beside other work on small machines, and the
# distributed / subprocess tests start several processes of their own.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    # Generated data and trained demo teachers are cached; share one cache per test session
    # (not the user's ~/.cache) so tests are hermetic but do not regenerate data each time.
    cache = tmp_path_factory.getbasetemp() / "edgecompress-cache"
    monkeypatch.setenv("EDGECOMPRESS_CACHE", str(cache))
    monkeypatch.delenv("EDGECOMPRESS_PROFILES", raising=False)
