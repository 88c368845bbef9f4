"""SshRunner against a real OpenSSH server on 127.0.0.1 (throwaway keys, started per module).

The server runs as the current user with its own host key, an authorized_keys holding a key
made here, and nothing else; the client side gets a config file with host aliases and a
known_hosts holding the server's key, so host-key checking stays on throughout.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakes.bench_models import python_without_runtimes, write_script

from edgecompress.bench import BenchRunError, SshRunner, benchmark, loopback
from edgecompress.errors import BenchError

pytest_plugins = ["fakes.bench_fixtures"]  # tiny_onnx / tiny_tflite fixtures, shared by the bench tests

pytestmark = pytest.mark.skipif(
    not loopback.available(), reason="needs openssh-server and openssh-client (bash scripts/setup.sh installs them)"
)
Sshd = loopback.LoopbackSshd


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    with loopback.loopback_sshd(tmp_path_factory.mktemp("sshd")) as server:
        yield server


def _runner(s: Sshd, tmp_path: Path, *, alias: str | None = None, python: str = sys.executable, **kw: object) -> SshRunner:
    remote = tmp_path / "remote"
    remote.mkdir(exist_ok=True)
    kw.setdefault("retries", 2)
    kw.setdefault("backoff_s", 0.05)
    return SshRunner(alias or s.alias, ssh_config=str(s.config), remote_python=python, remote_dir=str(remote), **kw)  # type: ignore[arg-type]


def _remote_left(tmp_path: Path) -> list[Path]:
    return list((tmp_path / "remote").iterdir())


def test_benchmark_onnx_over_ssh_alias(sshd: Sshd, tiny_onnx: Path, tmp_path: Path) -> None:
    with _runner(sshd, tmp_path) as runner:
        r = benchmark(tiny_onnx, "rpi5", runner=runner, threads=1, runs=40, warmup=2, out_dir=tmp_path / "out")
        # The master connection is up and shared by every command of this runner.
        check = subprocess.run([*runner.ssh_argv("-O", "check"), runner.host], capture_output=True, timeout=20)
        assert check.returncode == 0, check.stderr
        control_dir = runner._control_dir
    assert control_dir is not None and not control_dir.exists()  # close() stopped it and cleaned up
    assert (r.device, r.runner, r.runtime, r.num_runs, r.threads) == ("rpi5", "ssh", "onnxruntime", 40, 1)
    assert 0 < r.latency.p50_ms <= r.latency.max_ms and len(r.samples_ms) == 40
    assert r.environment["cpu_mask"] == "0xf"  # the rpi5 profile's mask was applied
    assert _remote_left(tmp_path) == []  # the pushed model and runner are gone


def test_push_pull_quote_awkward_names(sshd: Sshd, tmp_path: Path) -> None:
    src = tmp_path / "it's a \"model\" $(rm -rf x).bin"
    src.write_bytes(os.urandom(4096))
    with _runner(sshd, tmp_path) as runner:
        runner.check()
        remote = runner.push(src, src.name)
        assert Path(remote).read_bytes() == src.read_bytes()  # loopback: the 'device' is here
        back = runner.pull(remote, tmp_path / "back.bin")
        assert back.read_bytes() == src.read_bytes()
        runner.cleanup()
    assert _remote_left(tmp_path) == []


def test_unreachable_port_is_retried_then_named(sshd: Sshd, tmp_path: Path, tiny_onnx: Path) -> None:
    runner = _runner(sshd, tmp_path, port=loopback.free_port(), retries=3, connect_timeout_s=3)
    with pytest.raises(BenchError) as info, runner:
        benchmark(tiny_onnx, "rpi5", runner=runner, runs=5)
    msg = str(info.value)
    assert "device rpi5" in msg and "unreachable" in msg and "Connection refused" in msg
    assert "gave up after 3 attempts" in msg
    assert runner._control_dir is None


def test_wrong_key_is_refused_without_retries(sshd: Sshd, tmp_path: Path, tiny_onnx: Path) -> None:
    runner = _runner(sshd, tmp_path, alias=sshd.alias_wrong_key, retries=3)
    with pytest.raises(BenchError) as info, runner:
        benchmark(tiny_onnx, "rpi5", runner=runner, runs=5)
    msg = str(info.value)
    assert "authentication refused" in msg and "Permission denied" in msg
    assert "attempts" not in msg  # an auth failure is not transient


def test_unknown_host_key_is_never_bypassed(sshd: Sshd, tmp_path: Path, tiny_onnx: Path) -> None:
    runner = _runner(sshd, tmp_path, alias=sshd.alias_unknown_host)
    with pytest.raises(BenchError, match="host key not trusted.*never turns host-key checking off"), runner:
        benchmark(tiny_onnx, "rpi5", runner=runner, runs=5)
    assert not any("StrictHostKeyChecking" in a for a in runner.ssh_argv())
    assert runner._control_dir is None  # close() removed the control folder of the failed connection


def test_remote_command_failure_has_stderr_tail_and_cleans_up(sshd: Sshd, tmp_path: Path, tiny_onnx: Path) -> None:
    py = write_script(tmp_path / "python-broken", "echo 'ImportError: libatlas.so.3: cannot open shared object file' >&2; exit 1")
    with pytest.raises(BenchError) as info, _runner(sshd, tmp_path, python=py) as runner:
        benchmark(tiny_onnx, "rpi5", runner=runner, runs=5)
    assert "benchmark failed (exit 1)" in str(info.value) and "libatlas.so.3" in str(info.value)
    assert _remote_left(tmp_path) == []


def test_timeout_mid_run_stops_remote_and_cleans_up(sshd: Sshd, tmp_path: Path, tiny_onnx: Path) -> None:
    py = write_script(tmp_path / "python-hangs", "echo 'loading...' >&2; sleep 60")
    with pytest.raises(BenchRunError) as info, _runner(sshd, tmp_path, python=py, timeout_s=2) as runner:
        benchmark(tiny_onnx, "rpi5", runner=runner, runs=5, out_dir=tmp_path / "out")
    assert "timed out after" in str(info.value) and "loading..." in str(info.value)
    assert info.value.partial_path is not None and info.value.partial_path.is_file()
    assert _remote_left(tmp_path) == []
    left = subprocess.run(["pgrep", "-f", str(tmp_path / "python-hangs")], capture_output=True, text=True)
    assert left.stdout.strip() == ""  # the remote process was killed through its pid file


def test_remote_python_without_runtime(sshd: Sshd, tmp_path: Path, tiny_onnx: Path) -> None:
    py = python_without_runtimes(tmp_path)
    with pytest.raises(BenchError) as info, _runner(sshd, tmp_path, python=py) as runner:
        benchmark(tiny_onnx, "rpi5", runner=runner, runs=5)
    msg = str(info.value)
    assert "device rpi5 (ssh ecloop)" in msg and "runtime missing on the device" in msg and "pip install onnxruntime" in msg
    assert _remote_left(tmp_path) == []


def test_missing_host_is_rejected_before_connecting(tiny_onnx: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EDGECOMPRESS_RPI5_HOST", raising=False)
    with pytest.raises(BenchError, match=r"no ssh host given \(pass --host HOST or set \$EDGECOMPRESS_RPI5_HOST"):
        benchmark(tiny_onnx, "rpi5")
    with pytest.raises(BenchError, match="not allowed"):
        SshRunner("-oProxyCommand=evil")


def test_cli_over_ssh(sshd: Sshd, tiny_onnx: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from edgecompress.artifacts import BenchmarkResult
    from edgecompress.cli.main import cli

    out = tmp_path / "rpi5.json"
    args = ["bench", "--artifact", str(tiny_onnx), "--device", "rpi5", "--host", sshd.alias, "--ssh-config", str(sshd.config),
            "--remote-python", sys.executable, "--threads", "1", "--runs", "20", "--json", str(out)]  # fmt: skip
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    r = BenchmarkResult.load(out)
    assert (r.device, r.runner, r.num_runs) == ("rpi5", "ssh", 20)


def test_remote_python_not_found(sshd: Sshd, tmp_path: Path, tiny_onnx: Path) -> None:
    with pytest.raises(BenchError, match=r"python not found on the device: .*not found") as info, _runner(sshd, tmp_path, python="/opt/no/python3") as runner:
        benchmark(tiny_onnx, "rpi5", runner=runner, runs=5)
    assert "device rpi5" in str(info.value)
    assert _remote_left(tmp_path) == []
