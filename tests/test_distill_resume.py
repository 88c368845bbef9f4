"""A run killed with SIGKILL mid-epoch and resumed ends bit-identical to an uninterrupted one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgecompress.artifacts import Checkpoint, sha256_file
from tests.test_distill_helpers import run_tiny

HELPER = Path(__file__).with_name("test_distill_helpers.py")
EPOCHS = 3


def _env() -> dict[str, str]:
    root = str(Path(__file__).resolve().parents[1])
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}


@pytest.mark.timeout(150)
@pytest.mark.parametrize("method", ["anc+align", "fm"])  # fm: mixup draws must replay exactly too
def test_sigkill_then_resume_matches_uninterrupted(tmp_path: Path, method: str) -> None:
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    proc = subprocess.Popen(
        [sys.executable, str(HELPER), str(killed), method, str(EPOCHS)],
        env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        state = killed / "train_state.pt"
        while not state.exists():  # the first epoch's state (atomic rename: complete when visible)
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:] if proc.stderr else "subprocess died"
            assert time.monotonic() < deadline, "first epoch never finished"
            time.sleep(0.05)
        # Kill a third of the way into the second epoch.
        epoch_s = json.loads((killed / "metrics.jsonl").read_text().splitlines()[0])["epoch_s"]
        time.sleep(epoch_s / 3)
        assert proc.poll() is None, "the run finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not (killed / "checkpoint.json").exists()
    done_epochs = len((killed / "metrics.jsonl").read_text().splitlines())
    assert 1 <= done_epochs < EPOCHS

    resumed = run_tiny(str(killed), method, EPOCHS, resume=True)
    reference = run_tiny(str(clean), method, EPOCHS)

    def strip(metrics: dict) -> dict:
        return {k: v for k, v in metrics.items() if k != "train_s"}

    assert strip(resumed.metrics) == strip(reference.metrics)
    assert sha256_file(killed / "student.pt") == sha256_file(clean / "student.pt")  # bit-identical weights
    rows = [[{k: v for k, v in json.loads(s).items() if k != "epoch_s"} for s in (d / "metrics.jsonl").read_text().splitlines()]
            for d in (killed, clean)]
    assert rows[0] == rows[1] and len(rows[0]) == EPOCHS
    assert Checkpoint.load(killed / "checkpoint.json").sha256 == resumed.sha256
