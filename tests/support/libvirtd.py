"""libvirtd and virtlogd for tests, without systemd: started when they are not running, stopped only if
started here. (Remote URIs are tested through a private sshd: tests/support/sshd.py.)"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ksmtop.collect.libvirt import LibvirtConnection, LibvirtError
from ksmtop.lab import Lab
from ksmtop.lab.domains import define_lab_domains
from tests.conftest import wait_for


def installed() -> bool:
    return shutil.which("libvirtd") is not None or Path("/usr/sbin/libvirtd").exists()


def running(daemon: str) -> bool:
    return subprocess.run(["pgrep", "-x", daemon], capture_output=True).returncode == 0


def _binary(daemon: str) -> str:
    return shutil.which(daemon) or f"/usr/sbin/{daemon}"


class Daemons:
    """The daemons this test session started, so that it stops exactly those."""

    def __init__(self) -> None:
        self.started: list[str] = []

    def start_missing(self) -> None:
        for daemon in ("virtlogd", "libvirtd"):
            if not running(daemon):
                self.start(daemon)
                self.started.append(daemon)

    def start(self, daemon: str) -> None:
        subprocess.run([_binary(daemon), "-d"], check=True, timeout=30)

    def stop(self, daemon: str, signal: str = "TERM") -> None:
        """Stop a daemon (signal KILL: as a crash would, leaving its pid file and socket behind)."""
        subprocess.run(["pkill", f"-{signal}", "-x", daemon], capture_output=True)
        wait_for(lambda: not running(daemon), timeout=20)

    def stop_started(self) -> None:
        for daemon in reversed(self.started):
            self.stop(daemon)


@contextmanager
def lab_domain(connection: LibvirtConnection, name: str) -> Iterator[str]:
    """A shut-off TCG lab domain (256 MiB) of that name, destroyed and undefined afterwards, even on failure."""
    define_lab_domains(connection, Lab().image(), [name], 256, "tcg", start=False)
    try:
        yield name
    finally:
        remove_domain(connection.uri, name)


def remove_domain(uri: str, name: str, timeout: float = 60) -> None:
    """Destroy and undefine, on a fresh connection (a test may have restarted libvirtd), retried until done."""

    def removed() -> bool:
        with LibvirtConnection(uri) as connection:
            try:
                domains = {domain.name: domain for domain in connection.domains()}
                if name in domains and domains[name].running:
                    connection.destroy(name)
                if name in domains:
                    connection.undefine(name)
                return True
            except LibvirtError:
                return False

    wait_for(removed, timeout=timeout, interval=1)
