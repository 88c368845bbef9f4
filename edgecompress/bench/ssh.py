"""SshRunner: a Raspberry Pi (or any Linux board) over the system OpenSSH client.

One master connection per runner (ControlMaster + ControlPersist, so the board authenticates
once and a crashed caller leaves no ssh behind for long), BatchMode so that nothing ever
prompts, a connect timeout, and keep-alives so a board that vanishes mid-run fails instead
of hanging. The host may be a ``~/.ssh/config`` alias; ``ssh_config`` passes ``-F FILE``
(default: ``$EDGECOMPRESS_SSH_CONFIG``, which ``scripts/arm_board.sh`` prints for its boards).
Host keys are checked as the user's ssh configuration says: this tool never switches that off.

Every remote command is one ``sh -c`` string built with :func:`shlex.quote`, so paths and
arguments with spaces or quotes reach the board as they are.
"""

from __future__ import annotations

import os
import shlex
import shutil
import tempfile
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgecompress.bench.proc import CommandError, Completed, is_transient, run_command, tail, with_retries
from edgecompress.bench.remote import RemoteSession
from edgecompress.bench.runner import PythonScriptRunner
from edgecompress.errors import BenchError, DeviceError

CONNECT_TIMEOUT_S = 5  # the build's up-front reachability probe (runners.py: probe)

SHORT_TIMEOUT_S = 60.0  # mkdir, copy of a small model, cleanup


class SshRunner(RemoteSession, PythonScriptRunner):
    """Reach ``host`` (``user@host``, an alias, or ``ssh://user@host:port``) with ssh."""

    kind = "ssh"

    def __init__(
        self,
        host: str,
        *,
        port: int | None = None,
        identity: str | None = None,
        ssh_config: str | None = None,
        remote_python: str = "python3",
        remote_dir: str = "/tmp",
        connect_timeout_s: int = 10,
        control_persist_s: int = 120,
        ssh: str = "ssh",
        **kw: Any,
    ) -> None:
        super().__init__(python=remote_python, **kw)
        if not host or host.startswith("-"):
            raise BenchError(f"ssh host {host!r} is not allowed (a host name, user@host or a ~/.ssh/config alias)")
        self.host = host
        self.port = port
        self.identity = identity
        # The env variable lets `build --host ALIAS` reach boards whose aliases live outside
        # ~/.ssh/config (the emulated boards of scripts/arm_board.sh) without another option.
        self.ssh_config = ssh_config or os.environ.get("EDGECOMPRESS_SSH_CONFIG") or None
        self.remote_dir = remote_dir
        self.connect_timeout_s = connect_timeout_s
        self.control_persist_s = control_persist_s
        self.ssh = ssh
        self._control_dir: Path | None = None
        self._finalizer: weakref.finalize | None = None

    @property
    def target(self) -> str:
        return self.host + (f":{self.port}" if self.port else "")

    # ------------------------------------------------------------------ ssh plumbing

    def _make_control_dir(self) -> Path:
        if self._control_dir is None:
            # Unix socket paths are limited to ~104 bytes: keep the folder short, in /tmp.
            base = "/tmp" if Path("/tmp").is_dir() else None
            self._control_dir = Path(tempfile.mkdtemp(prefix="ec-ssh-", dir=base))
        return self._control_dir

    def ssh_argv(self, *extra: str) -> list[str]:
        """``ssh`` with this runner's options, up to (not including) the host."""
        argv = [self.ssh]
        if self.ssh_config:
            argv += ["-F", self.ssh_config]
        if self.port:
            argv += ["-p", str(self.port)]
        if self.identity:
            argv += ["-i", self.identity, "-o", "IdentitiesOnly=yes"]
        argv += [
            "-o", "BatchMode=yes",
            "-o", f"ConnectTimeout={self.connect_timeout_s}",
            "-o", "ServerAliveInterval=15",
            "-o", "ServerAliveCountMax=3",
            # Before check() (or after close()) there is no master to share: connect directly.
            *(["-o", f"ControlPath={self._control_dir / '%C'}"] if self._control_dir is not None else []),
            "-T",
            *extra,
        ]  # fmt: skip
        return argv

    def _classify(self, done: Completed, what: str) -> CommandError:
        err = tail(done.stderr) or "no output"
        low = done.stderr.lower()
        if "permission denied" in low or "too many authentication failures" in low:
            msg = f"{self.label}: authentication refused while trying to {what} (BatchMode: a key or agent is needed, passwords are never prompted for): {err}"
        elif "host key verification failed" in low or "remote host identification has changed" in low:
            msg = (
                f"{self.label}: host key not trusted while trying to {what} (add the board's key to known_hosts "
                f"with one interactive 'ssh {self.host}'; edgecompress never turns host-key checking off): {err}"
            )
        elif is_transient(done.stderr) or "could not resolve hostname" in low:
            msg = f"{self.label}: unreachable while trying to {what}: {err}"
        else:
            msg = f"{self.label}: ssh failed while trying to {what} (exit {done.returncode}): {err}"
        return CommandError(msg, done, transient=is_transient(done.stderr))

    def _ssh(self, remote: str, *, what: str, timeout_s: float = SHORT_TIMEOUT_S, stdin_path: Path | None = None, stdout_path: Path | None = None) -> Completed:
        """Run one remote shell command; CommandError (transient or not) when it fails."""

        def once() -> Completed:
            argv = [*self.ssh_argv("-o", "ControlMaster=no"), self.host, "--", remote]
            done = run_command(argv, timeout_s=timeout_s, stdin_path=stdin_path, stdout_path=stdout_path)
            if done.timed_out:
                raise CommandError(f"{self.label}: timed out after {timeout_s:.0f} s while trying to {what}: {tail(done.stderr) or 'no output'}", done, transient=True)
            if done.returncode == 255:
                raise self._classify(done, what)
            if done.returncode != 0:
                raise CommandError(f"{self.label}: could not {what} (exit {done.returncode}): {tail(done.stderr) or tail(done.stdout) or 'no output'}", done)
            return done

        return with_retries(once, attempts=self.retries, backoff_s=self.backoff_s, what=what)

    # ------------------------------------------------------------------ Runner interface

    def check(self) -> None:
        """Open (or reuse) the master connection; retried while the board is unreachable."""
        if shutil.which(self.ssh) is None:
            raise BenchError(f"{self.label}: {self.ssh!r} not found (apt-get install openssh-client)")

        def start_master() -> None:
            control_dir = self._make_control_dir()
            check = run_command([*self.ssh_argv("-O", "check"), self.host], timeout_s=SHORT_TIMEOUT_S)
            if check.returncode == 0:
                return  # a live master from an earlier call
            argv = [*self.ssh_argv("-o", "ControlMaster=yes", "-o", f"ControlPersist={self.control_persist_s}", "-f", "-N"), self.host]
            # stderr to a file: `ssh -f` leaves the background master holding it, a pipe would never close.
            errfile = control_dir / "master.err"
            done = run_command(argv, timeout_s=self.connect_timeout_s + 30.0, stderr_path=errfile)
            if done.timed_out or done.returncode != 0:
                raise self._classify(done, "connect")
            if self._finalizer is None:
                # A caller that forgets close() (or dies) still stops the master and its folder.
                self._finalizer = weakref.finalize(self, _stop_master, [*self.ssh_argv("-O", "exit"), self.host], control_dir)

        try:
            with_retries(start_master, attempts=self.retries, backoff_s=self.backoff_s, what="connect")
            if self.python.startswith("~/"):
                # Every remote argument is quoted, so the shell would not expand "~": do it here.
                home = self._ssh('printf %s "$HOME"', what="find the home folder").stdout.strip()
                self.python = f"{home}/{self.python[2:]}"
        except CommandError as exc:
            raise DeviceError(str(exc)) from None

    # ------------------------------------------------------------------ transport (bench/remote.py)

    def make_workdir(self) -> str:
        template = f"{self.remote_dir.rstrip('/') or ''}/edgecompress.XXXXXXXX"
        done = self._ssh(shlex.join(["mktemp", "-d", template]), what=f"create a folder in {self.remote_dir}")
        workdir = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
        if not workdir.startswith("/"):
            raise BenchError(f"{self.label}: mktemp printed {done.stdout!r}, expected a folder path")
        return workdir

    def copy_to(self, local: Path, remote: str) -> None:
        # `cat >` over the master connection: no scp/sftp subsystem needed on the board.
        self._ssh(f"cat > {shlex.quote(remote)}", what=f"copy {local.name}", stdin_path=local)

    def exec_script(self, script: str, *, what: str, timeout_s: float) -> Completed:
        return self._ssh(shlex.join(["sh", "-c", script]), what=what, timeout_s=timeout_s)

    def launch(self, script: str, *, timeout_s: float, on_line: Callable[[str], None] | None) -> Completed:
        # sh -c whatever the login shell is; the pid file lets cleanup() stop a run we abandoned.
        remote = shlex.join(["sh", "-c", script])

        def once() -> Completed:
            done = run_command([*self.ssh_argv("-o", "ControlMaster=no"), self.host, "--", remote], timeout_s=timeout_s, on_line=on_line)
            if done.returncode == 255 and "@@edgecompress" not in done.stdout:
                raise self._classify(done, "run the benchmark")
            return done

        try:
            return with_retries(once, attempts=self.retries, backoff_s=self.backoff_s, what="run the benchmark")
        except CommandError as exc:
            raise BenchError(str(exc)) from None

    def pull(self, remote: str, local: Path) -> Path:
        self._ssh(f"cat {shlex.quote(remote)}", what=f"copy back {remote}", stdout_path=Path(local))
        return Path(local)

    def close(self) -> None:
        if self._finalizer is not None:
            self._finalizer()
            self._finalizer = None
        elif self._control_dir is not None:
            shutil.rmtree(self._control_dir, ignore_errors=True)
        self._control_dir = None


def _stop_master(exit_argv: list[str], control_dir: Path) -> None:
    try:
        run_command(exit_argv, timeout_s=15.0)
    except BenchError:
        pass  # no ssh binary any more: nothing to stop
    shutil.rmtree(control_dir, ignore_errors=True)


def from_profile(profile: Any, host: str | None, options: dict[str, Any]) -> SshRunner:
    """The registered factory (edgecompress/runners.py): ``--host``, else the profile's host variable."""
    env_name = profile.connection.host_env
    host = host or (os.environ.get(env_name) if env_name else None)
    if not host:
        hint = f" or set ${env_name}" if env_name else ""
        raise BenchError(f"device {profile.name}: no ssh host given (pass --host HOST{hint}; a ~/.ssh/config alias works)")
    options.setdefault("remote_dir", profile.connection.remote_dir or "/tmp")
    return SshRunner(host, device=profile.name, **options)


def probe(runner: SshRunner) -> None:
    """``ssh -o BatchMode=yes -o ConnectTimeout=5 HOST true``: DeviceError unless the board answers."""
    runner.connect_timeout_s = CONNECT_TIMEOUT_S
    done = run_command([*runner.ssh_argv(), runner.host, "true"], timeout_s=CONNECT_TIMEOUT_S + 10)
    if done.timed_out or done.returncode != 0:
        raise DeviceError(str(runner._classify(done, "connect"))) from None
