"""A throwaway OpenSSH server on 127.0.0.1, for the ssh runner's tests and benchmarks.

It runs as the current user with a host key, a user key and an ``authorized_keys`` made in a
temporary folder, plus a client config with host aliases and a ``known_hosts`` that holds the
server's key -- so host-key checking stays on exactly as it would against a real board.

    with loopback_sshd(folder) as server:
        SshRunner(server.alias, ssh_config=str(server.config), remote_python=sys.executable)
"""

from __future__ import annotations

import contextlib
import dataclasses
import getpass
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from edgecompress.errors import BenchError

SSHD = "/usr/sbin/sshd"


@dataclasses.dataclass(frozen=True)
class LoopbackSshd:
    port: int
    config: Path  # client config holding the aliases below
    folder: Path
    alias: str = "ecloop"  # the right key, a known host key
    alias_wrong_key: str = "ecloop-wrongkey"  # a key the server does not know
    alias_unknown_host: str = "ecloop-unknownhost"  # an empty known_hosts


def available() -> bool:
    """True where the OpenSSH server and client are installed (scripts/setup.sh does it)."""
    return os.path.exists(SSHD) and shutil.which("ssh") is not None and shutil.which("ssh-keygen") is not None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True, timeout=30, capture_output=True)


def _wait_listening(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"loopback sshd exited: {log.read_text() if log.exists() else 'no log'}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise BenchError(f"loopback sshd did not listen on 127.0.0.1:{port} within 15 s")


def _alias(name: str, port: int, user: str, key: Path, known_hosts: Path) -> str:
    return (
        f"Host {name}\n  HostName 127.0.0.1\n  Port {port}\n  User {user}\n  IdentityFile {key}\n"
        f"  IdentitiesOnly yes\n  IdentityAgent none\n  UserKnownHostsFile {known_hosts}\n  GlobalKnownHostsFile /dev/null\n"
    )


@contextlib.contextmanager
def loopback_sshd(folder: Path) -> Iterator[LoopbackSshd]:
    """Start ``sshd -D`` on a free port of 127.0.0.1 with keys made in ``folder``; stop it on exit."""
    if not available():
        raise BenchError(f"{SSHD} or ssh / ssh-keygen not found (apt-get install openssh-server openssh-client)")
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("host_key", "user_key", "wrong_key"):
        _keygen(folder / name)
    shutil.copy(folder / "user_key.pub", folder / "authorized_keys")
    port, user = free_port(), getpass.getuser()
    server_cfg = folder / "sshd_config"
    server_cfg.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {folder / 'host_key'}\nPidFile {folder / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {folder / 'authorized_keys'}\nAllowUsers {user}\n"
        "PubkeyAuthentication yes\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
        # The keys live under /tmp (world-writable), which StrictModes would refuse.
        "StrictModes no\n" + ("PermitRootLogin prohibit-password\n" if os.geteuid() == 0 else "")
    )
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege-separation folder
    log = folder / "sshd.log"
    proc = subprocess.Popen([SSHD, "-D", "-f", str(server_cfg), "-E", str(log)])
    try:
        _wait_listening(port, proc, log)
        host_pub = " ".join((folder / "host_key.pub").read_text().split()[:2])
        (folder / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_pub}\n")
        (folder / "empty_known_hosts").write_text("")
        cfg = folder / "ssh_config"
        cfg.write_text(
            _alias("ecloop", port, user, folder / "user_key", folder / "known_hosts")
            + _alias("ecloop-wrongkey", port, user, folder / "wrong_key", folder / "known_hosts")
            + _alias("ecloop-unknownhost", port, user, folder / "user_key", folder / "empty_known_hosts")
        )
        yield LoopbackSshd(port=port, config=cfg, folder=folder)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
