"""libvirtd and virtlogd for tests, without systemd: started when they are not running (libvirtd then also
listens on 127.0.0.1 TCP without auth, so a remote URI can be tested for real), stopped only if started here."""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ksmtop.collect.libvirt import LibvirtConnection, LibvirtError
from ksmtop.lab import Lab
from ksmtop.lab.domains import define_lab_domains
from tests.conftest import wait_for

TCP_PORT = 16509
REMOTE_URI = f"qemu+tcp://127.0.0.1:{TCP_PORT}/system"
TEST_CONFIG = f"""# written by ksmtop's tests: TCP on loopback only, for as long as the tests run
listen_tls = 0
listen_tcp = 1
listen_addr = "127.0.0.1"
tcp_port = "{TCP_PORT}"
auth_tcp = "none"
"""


def installed() -> bool:
    return shutil.which("libvirtd") is not None or Path("/usr/sbin/libvirtd").exists()


def running(daemon: str) -> bool:
    return subprocess.run(["pgrep", "-x", daemon], capture_output=True).returncode == 0


def _binary(daemon: str) -> str:
    return shutil.which(daemon) or f"/usr/sbin/{daemon}"


class Daemons:
    """The daemons this test session started (and how), so that it can restart and stop exactly those."""

    def __init__(self, config_dir: Path) -> None:
        self.config = config_dir / "libvirtd-test.conf"
        self.config.write_text(TEST_CONFIG)
        self.started: list[str] = []
        self.listening = False
        self.foreign = running("libvirtd")  # someone else's libvirtd: used as it is

    def start_missing(self) -> None:
        for daemon in ("virtlogd", "libvirtd"):
            if not running(daemon):
                self.start(daemon)
                self.started.append(daemon)
        self.listening = tcp_open()

    def start(self, daemon: str) -> None:
        """Start one daemon; a libvirtd of ours listens on loopback TCP (one that was already there is
        restarted as it is usually started, without --listen)."""
        command = [_binary(daemon), "-d"]
        if daemon == "libvirtd" and (daemon in self.started or not running("libvirtd")) and not self.foreign:
            command += ["--listen", "-f", str(self.config)]
        subprocess.run(command, check=True, timeout=30)

    def stop(self, daemon: str, signal: str = "TERM") -> None:
        """Stop a daemon (signal KILL: as a crash would, leaving its pid file and socket behind)."""
        subprocess.run(["pkill", f"-{signal}", "-x", daemon], capture_output=True)
        wait_for(lambda: not running(daemon), timeout=20)

    def stop_started(self) -> None:
        for daemon in reversed(self.started):
            self.stop(daemon)


def tcp_open() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", TCP_PORT), timeout=2):
            return True
    except OSError:
        return False


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
