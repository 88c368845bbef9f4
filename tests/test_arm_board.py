"""The ssh harness and parity against a real aarch64 user space (scripts/arm_board.sh).

Marker ``arm_board``: these run only where the arm64 root is already built (building it takes
many minutes under qemu, far beyond CI's suite budget) and this process may start boards (root,
qemu-user with binfmt_misc). Run them with

    sudo bash scripts/arm_board.sh build
    .venv/bin/python -m pytest -q -m arm_board tests/test_arm_board.py
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from edgecompress.bench import SshRunner, benchmark
from edgecompress.bench.arm_board import Board, board_running, root_built, root_dir, start_board, stop_board
from edgecompress.bench.device_parity import device_logits

pytest_plugins = ["fakes.bench_fixtures"]

pytestmark = [
    pytest.mark.arm_board,
    pytest.mark.skipif(not root_built(), reason="no arm64 root (sudo bash scripts/arm_board.sh build)"),
    pytest.mark.skipif(os.geteuid() != 0, reason="starting a board needs root (chroot, mounts)"),
]


@pytest.fixture(scope="module")
def a72() -> Iterator[Board]:
    was_running = board_running("cortex-a72")
    yield start_board("cortex-a72")
    if not was_running:  # leave the machine as we found it
        stop_board("cortex-a72")
        assert not board_running("cortex-a72")


def _leftovers() -> list[str]:
    return sorted(p.name for p in (root_dir() / "tmp").glob("edgecompress.*"))


def test_board_runs_aarch64_and_says_it_is_emulated(a72: Board, tiny_tflite: Path) -> None:
    before = _leftovers()
    with SshRunner(a72.alias, ssh_config=a72.ssh_config, device="rpi4") as board:
        r = benchmark(tiny_tflite, "rpi4", runner=board, runs=20, warmup=2, threads=1)
    assert (r.runner, r.runtime, r.environment["machine"]) == ("ssh", "litert", "aarch64")
    assert "QEMU_CPU=cortex-a72" in r.emulated and "arm_board.sh root" in r.emulated
    assert r.environment["latency_note"].startswith("emulated: latency is not a device latency")
    assert _leftovers() == before  # the runner removed its folder on the board


def test_sustained_on_the_board(a72: Board, tiny_tflite: Path) -> None:
    with SshRunner(a72.alias, ssh_config=a72.ssh_config, device="rpi4") as board:
        r = benchmark(tiny_tflite, "rpi4", runner=board, sustained_s=3.0, cooldown_s=0.5, warmup=2, threads=1)
    assert r.sustained is not None and r.sustained.first.num_runs > 0 and r.sustained.last.num_runs > 0
    assert r.emulated and r.state_before is not None


def test_parity_on_the_board_matches_x86_for_fp32(a72: Board, tiny_onnx: Path) -> None:
    import onnxruntime as ort

    x = np.random.default_rng(0).standard_normal((16, 3, 32, 32)).astype(np.float32)
    with SshRunner(a72.alias, ssh_config=a72.ssh_config, device="rpi4") as board:
        got = device_logits(board, tiny_onnx, x)
    sess = ort.InferenceSession(str(tiny_onnx), providers=["CPUExecutionProvider"])
    want = np.concatenate([sess.run(None, {"input": x[i : i + 1]})[0] for i in range(len(x))])
    assert got.environment["qemu_cpu"] == "cortex-a72" and got.emulated
    np.testing.assert_allclose(got.logits, want, rtol=1e-4, atol=1e-4)


def test_bench_cli_reaches_the_board_by_alias(a72: Board, tiny_tflite: Path, tmp_path: Path) -> None:
    env = dict(os.environ, EDGECOMPRESS_SSH_CONFIG=a72.ssh_config)
    exe = Path(os.sys.executable).with_name("edgecompress")
    done = subprocess.run([str(exe), "bench", "--artifact", str(tiny_tflite), "--device", "rpi4", "--host", a72.alias,
                           "--runs", "10", "--threads", "1", "--json", str(tmp_path / "r.json")],
                          capture_output=True, text=True, env=env, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "emulated: latency is not a device latency" in done.stdout
