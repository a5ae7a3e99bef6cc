"""The lab's pieces that need no guest: cpio writer, argument parsing, qemu command line, module order, and the
guest-agent and QMP protocols against scripted fake peers on a unix socket."""

from __future__ import annotations

import base64
import json
import socket
import stat
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ksmtop.collect.agent import AgentError, AgentTimeout, GuestAgent
from ksmtop.collect.qmp import QmpClient, QmpError
from ksmtop.lab.cli import parse_memory_mib
from ksmtop.lab.cpio import CpioWriter, list_entries
from ksmtop.lab.kernel import _load_order
from ksmtop.lab.paths import LabError
from ksmtop.lab.qemu import GuestFiles, check_name, qemu_argv
from ksmtop.lab.workloads import start_workload


def test_cpio_entries_round_trip():
    archive = CpioWriter()
    archive.directory("/bin")
    archive.file("/bin/hello", b"x" * 5, 0o755)
    archive.symlink("/bin/sh", "/bin/busybox")
    archive.char_device("/dev/console", 5, 1)
    data = archive.getvalue()
    assert len(data) % 4 == 0
    entries = list_entries(data)
    assert list(entries) == ["bin", "bin/hello", "bin/sh", "dev/console"]
    assert stat.S_ISDIR(entries["bin"]) and stat.S_ISLNK(entries["bin/sh"]) and stat.S_ISCHR(entries["dev/console"])
    assert stat.S_IMODE(entries["bin/hello"]) == 0o755
    with pytest.raises(ValueError, match="duplicate"):
        archive.file("bin/hello", b"")


@pytest.mark.parametrize(
    ("text", "mib"), [("256", 256), ("256M", 256), ("512MiB", 512), ("1G", 1024), ("2g", 2048), ("1 GiB", 1024)]
)
def test_parse_memory_sizes(text, mib):
    assert parse_memory_mib(text) == mib


@pytest.mark.parametrize("text", ["", "abc", "-1G", "1.5G", "12X"])
def test_parse_memory_rejects(text):
    with pytest.raises(Exception, match="not a memory size"):
        parse_memory_mib(text)


def test_qemu_argv_names_guest_and_keeps_ram_mergeable(tmp_path):
    files = GuestFiles(tmp_path / "odd,dir" / "lab-1")
    argv = qemu_argv("lab-1", files, Path("/k"), Path("/i"), 256, "tcg")
    assert argv[argv.index("-name") + 1] == "guest=lab-1"
    assert argv[argv.index("-machine") + 1] == "pc,mem-merge=on"
    assert argv[argv.index("-accel") + 1] == "tcg" and argv[argv.index("-m") + 1] == "256"
    assert f"path={tmp_path}/odd,,dir/lab-1/qga.sock,server=on" in argv[argv.index("-chardev") + 1]


@pytest.mark.parametrize("name", ["", "-x", "a b", "a;rm", "x" * 64, "lab/1"])
def test_guest_names_are_checked(name):
    with pytest.raises(LabError, match="invalid guest name"):
        check_name(name)


def test_socket_path_too_long_is_refused(tmp_path):
    with pytest.raises(LabError, match="too long"):
        qemu_argv("lab-1", GuestFiles(tmp_path / ("d" * 120)), Path("/k"), Path("/i"), 256, "tcg")


def test_module_load_order_follows_depends(tmp_path):
    def module(depends: str) -> bytes:
        return b"\x7fELF...\0license=GPL\0depends=" + depends.encode() + b"\0vermagic=6.1\0"

    modules = {
        "virtio_ring": module(""),
        "virtio": module("virtio_ring"),
        "virtio_pci_modern_dev": module(""),
        "virtio_pci": module("virtio_ring,virtio_pci_modern_dev,virtio"),
        "virtio_console": module("virtio,virtio_ring"),
    }
    paths = {}
    for name, data in modules.items():
        paths[name] = tmp_path / f"{name}.ko"
        paths[name].write_bytes(data)
    order = _load_order(("virtio_pci", "virtio_console"), paths, builtin={"virtio_pci_modern_dev"})
    with pytest.raises(LabError, match="no module nope"):
        _load_order(("nope",), paths, set())
    assert order == ["virtio_ring", "virtio", "virtio_pci", "virtio_console"]


# -- fake peers -----------------------------------------------------------------------------------------------


class FakePeer:
    """A unix-socket server that answers each received line with ``respond(line)`` (bytes to send, or None)."""

    def __init__(self, path: Path, respond: Callable[[bytes, socket.socket], bytes | None], greeting: bytes = b""):
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(path))
        self.server.listen(4)
        self.respond = respond
        self.greeting = greeting
        self.received: list[bytes] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with conn:
                if self.greeting:
                    conn.sendall(self.greeting)
                buffer = b""
                while True:
                    try:
                        chunk = conn.recv(65536)
                    except OSError:
                        break
                    if not chunk:
                        break
                    buffer += chunk
                    while b"\n" in buffer:
                        line, buffer = buffer.split(b"\n", 1)
                        self.received.append(line)
                        answer = self.respond(line, conn)
                        if answer:
                            conn.sendall(answer)

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def peer(tmp_path) -> Iterator[Callable[..., FakePeer]]:
    peers: list[FakePeer] = []

    def start(respond, greeting: bytes = b"") -> FakePeer:
        fake = FakePeer(tmp_path / f"peer{len(peers)}.sock", respond, greeting)
        peers.append(fake)
        return fake

    yield start
    for fake in peers:
        fake.close()


def fake_agent(commands: dict[str, object], silent: tuple[str, ...] = ()):
    """An agent that answers sync (after a stale answer), and ``commands`` by name; ``silent`` ones never."""

    def respond(line: bytes, conn: socket.socket) -> bytes | None:
        request = json.loads(line.lstrip(b"\xff"))
        name = request["execute"]
        if name == "guest-sync-delimited":
            stale = json.dumps({"return": 12345}).encode()
            fresh = json.dumps({"return": request["arguments"]["id"]}).encode()
            return b"garbage\xff" + stale + b"\n\xff" + fresh + b"\n"
        if name in silent:
            return None
        answer = commands[name]
        return json.dumps(answer(request) if callable(answer) else answer).encode() + b"\n"

    return respond


def test_agent_syncs_skips_stale_answers_and_decodes_exec_status(peer):
    out = base64.b64encode(b"hello\n").decode()
    fake = peer(
        fake_agent(
            {
                "guest-ping": {"return": {}},
                "guest-exec": lambda r: {"return": {"pid": 42 if r["arguments"]["arg"] == ["-c", "x; y"] else 0}},
                "guest-exec-status": {"return": {"exited": True, "exitcode": 0, "out-data": out}},
                "guest-file-open": {"error": {"class": "GenericError", "desc": "No such\nfile"}},
            }
        )
    )
    with GuestAgent(fake.server.getsockname(), timeout=2) as agent:
        agent.ping()
        assert agent.exec("/bin/sh", ["-c", "x; y"]) == 42
        status = agent.exec_status(42)
        assert status.exited and status.exitcode == 0 and status.stdout == b"hello\n"
        with pytest.raises(AgentError, match=r"refused guest-file-open: No such file$"):
            agent.file_open("/nope")
    assert fake.received[0].startswith(b"\xff") and b"guest-sync-delimited" in fake.received[0]


def test_agent_times_out_within_its_timeout_and_recovers(peer):
    fake = peer(fake_agent({"guest-ping": {"return": {}}}, silent=("guest-info",)))
    with GuestAgent(fake.server.getsockname(), timeout=5) as agent:
        started = time.monotonic()
        with pytest.raises(AgentTimeout, match=r"did not answer guest-info within 0\.5 s"):
            agent.info(timeout=0.5)
        assert 0.45 < time.monotonic() - started < 1.5
        agent.ping()  # reconnects and syncs again


def test_agent_shutdown_counts_silence_as_accepted(peer):
    fake = peer(fake_agent({}, silent=("guest-shutdown",)))
    with GuestAgent(fake.server.getsockname()) as agent:
        agent.shutdown(timeout=0.3)
    assert any(b"guest-shutdown" in line for line in fake.received)


def test_agent_on_a_missing_socket_is_one_line_error(tmp_path):
    with pytest.raises(AgentError, match="No such file"), GuestAgent(tmp_path / "none.sock") as agent:
        agent.ping()


def test_qmp_negotiates_skips_events_and_reports_errors(peer):
    def respond(line: bytes, conn: socket.socket) -> bytes | None:
        name = json.loads(line)["execute"]
        event = b'{"event": "STOP", "timestamp": {}}\n'
        if name == "qmp_capabilities":
            return b'{"return": {}}\n'
        if name == "query-status":
            return event + b'{"return": {"status": "paused", "running": false}}\n'
        return b'{"error": {"class": "CommandNotFound", "desc": "nope"}}\n'

    fake = peer(respond, greeting=b'{"QMP": {"version": {}, "capabilities": []}}\n')
    with QmpClient(fake.server.getsockname(), timeout=2) as qmp:
        assert qmp.query_status() == "paused"
        assert qmp.events[0]["event"] == "STOP"
        with pytest.raises(QmpError, match="QEMU refused bogus: nope"):
            qmp.command("bogus")


def test_workload_arguments_are_checked_before_any_agent_call(tmp_path):
    agent = GuestAgent(tmp_path / "unused.sock")
    with pytest.raises(ValueError, match="unknown workload"):
        start_workload(agent, "rm -rf /")
    with pytest.raises(ValueError, match="takes MiB"):
        start_workload(agent, "fill-same", -1)
    with pytest.raises(ValueError, match="takes no argument"):
        start_workload(agent, "release", 5)
