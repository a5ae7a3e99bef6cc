"""A private sshd on loopback for testing qemu+ssh:// URIs for real: its own host key, one authorized key,
strict host-key checking through a known_hosts file of its own (nothing is written to ~/.ssh)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import wait_for

SSHD = "/usr/sbin/sshd"


@dataclass(frozen=True)
class Sshd:
    port: int
    directory: Path

    def uri(self, key: str = "userkey") -> str:
        """A libvirt URI to this host through this sshd, logging in as root with ``key``."""
        return (
            f"qemu+ssh://root@127.0.0.1:{self.port}/system"
            f"?keyfile={self.directory / key}&command={self.directory / 'ssh'}"
        )


def installed() -> bool:
    return Path(SSHD).exists() and shutil.which("ssh") is not None and shutil.which("ssh-keygen") is not None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)


@contextmanager
def private_sshd(directory: Path) -> Iterator[Sshd]:
    """Start sshd on 127.0.0.1 (a free port), stop it afterwards, even on failure."""
    directory.mkdir(parents=True, exist_ok=True)
    for key in ("hostkey", "userkey", "otherkey"):
        _keygen(directory / key)
    shutil.copyfile(directory / "userkey.pub", directory / "authorized_keys")
    port = _free_port()
    host_key = (directory / "hostkey.pub").read_text().split()[:2]
    (directory / "known_hosts").write_text(f"[127.0.0.1]:{port} {' '.join(host_key)}\n")
    ssh = directory / "ssh"  # libvirt's `command=`: ssh with our known_hosts, strictly checked
    ssh.write_text(
        f'#!/bin/sh\nexec ssh -o UserKnownHostsFile={directory}/known_hosts -o StrictHostKeyChecking=yes "$@"\n'
    )
    ssh.chmod(0o755)
    config = directory / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {directory}/hostkey\nPidFile {directory}/sshd.pid\n"
        f"AuthorizedKeysFile {directory}/authorized_keys\nPermitRootLogin prohibit-password\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
    )
    Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege separation directory
    subprocess.run([SSHD, "-f", str(config), "-E", str(directory / "sshd.log")], check=True, timeout=30)
    pid_file = directory / "sshd.pid"
    wait_for(pid_file.exists, timeout=10)
    try:
        yield Sshd(port, directory)
    finally:
        try:
            os.kill(int(pid_file.read_text()), signal.SIGTERM)
        except (OSError, ValueError):
            pass
