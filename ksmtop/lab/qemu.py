"""Starting one lab guest's qemu process, and telling whether a PID is still that process.

qemu runs with -daemonize and -pidfile: the call returns once qemu has set up (or failed with its own error
message), and the guest is never a child of ksmtop, so a CLI run can exit and leave the lab running. The guest's
directory is 0700 and checked first; qemu runs with umask 077 and its sockets are checked and set to 0600 before
anyone uses them, whatever the caller's umask.
"""

from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

import psutil

from ksmtop.lab.guest_init import AGENT_PORT
from ksmtop.lab.paths import RUNTIME_MODE, LabError, ensure_dir

QEMU_BINARY = "qemu-system-x86_64"
GUEST_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
_UNIX_PATH_MAX = 107


@dataclass(frozen=True, slots=True)
class GuestFiles:
    """One guest's files in the runtime directory."""

    directory: Path

    @property
    def agent_socket(self) -> Path:
        return self.directory / "qga.sock"

    @property
    def qmp_socket(self) -> Path:
        return self.directory / "qmp.sock"

    @property
    def serial_log(self) -> Path:
        return self.directory / "serial.log"

    @property
    def pidfile(self) -> Path:
        return self.directory / "qemu.pid"

    @property
    def state_file(self) -> Path:
        return self.directory / "state.json"


@dataclass(frozen=True, slots=True)
class MemoryBackend:
    """Guest RAM from an explicit qemu memory backend instead of qemu's default.

    ``mem_path`` set: a file in that directory, a hugetlbfs mount (memory-backend-file, share=off): KSM never
    scans hugetlbfs memory. ``mem_path`` None: anonymous memory (memory-backend-ram), which qemu marks for
    transparent huge pages (MADV_HUGEPAGE) like its default RAM. ``prealloc`` touches every page at start: the
    hugetlbfs pages are taken (qemu fails to start if the pool is short) and THP are allocated up front."""

    mem_path: Path | None = None
    prealloc: bool = True

    def object_option(self, memory_mib: int) -> str:
        options = [f"size={memory_mib}M", f"prealloc={'on' if self.prealloc else 'off'}"]
        if self.mem_path is None:
            return ",".join(["memory-backend-ram", f"id={BACKEND_ID}", *options])
        return ",".join(
            ["memory-backend-file", f"id={BACKEND_ID}", f"mem-path={_opt(self.mem_path)}", "share=off", *options]
        )


BACKEND_ID = "ram0"


def check_name(name: str) -> str:
    if not GUEST_NAME.fullmatch(name):
        raise LabError(f"invalid guest name {name!r}: use letters, digits, '.', '_' and '-' (at most 63)")
    return name


def qemu_argv(
    name: str,
    files: GuestFiles,
    kernel: Path,
    initramfs: Path,
    memory_mib: int,
    accel: str,
    qemu: str = QEMU_BINARY,
    mem_merge: bool = True,
    memory_backend: MemoryBackend | None = None,
) -> list[str]:
    """The qemu command line of a lab guest: direct kernel boot, agent and QMP sockets, mergeable RAM (unless
    ``mem_merge`` is False: qemu's mem-merge=off, as libvirt's <nosharepages/> does), and with
    ``memory_backend`` its RAM from that backend (hugetlbfs, or anonymous memory allocated up front)."""
    check_name(name)
    for socket_path in (files.agent_socket, files.qmp_socket):
        if len(str(socket_path)) > _UNIX_PATH_MAX:
            raise LabError(f"socket path too long for a unix socket: {socket_path}")
    machine = f"pc,mem-merge={'on' if mem_merge else 'off'}"
    backend: list[str] = []
    if memory_backend is not None:
        machine += f",memory-backend={BACKEND_ID}"
        backend = ["-object", memory_backend.object_option(memory_mib)]
    return [
        qemu,
        "-name", f"guest={name}",
        *backend,
        "-machine", machine,
        "-accel", accel,
        "-m", str(memory_mib),
        "-smp", "1",
        "-kernel", str(kernel),
        "-initrd", str(initramfs),
        "-append", f"console=ttyS0 quiet panic=-1 ksmtop.name={name}",
        "-no-reboot",
        "-display", "none",
        "-serial", f"file:{_opt(files.serial_log)}",
        "-monitor", "none",
        "-qmp", f"unix:{_opt(files.qmp_socket)},server=on,wait=off",
        "-device", "virtio-serial",
        "-chardev", f"socket,path={_opt(files.agent_socket)},server=on,wait=off,id=qga0",
        "-device", f"virtserialport,chardev=qga0,name={AGENT_PORT}",
        "-nic", "none",
        "-daemonize",
        "-pidfile", str(files.pidfile),
    ]  # fmt: skip


def launch(argv: list[str], files: GuestFiles, timeout: float = 30.0) -> int:
    """Run qemu (which daemonizes) and return the guest's PID from its pidfile."""
    ensure_dir(files.directory, RUNTIME_MODE)
    for stale in (files.agent_socket, files.qmp_socket, files.pidfile):
        stale.unlink(missing_ok=True)
    try:
        result = subprocess.run(
            argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout, check=False, umask=0o077
        )
    except FileNotFoundError as exc:
        raise LabError(f"{argv[0]} not found: install the qemu-system-x86 package") from exc
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"qemu did not start within {timeout:g} s") from exc
    if result.returncode != 0:
        detail = " ".join(result.stderr.split())[-400:] or f"exit {result.returncode}"
        raise LabError(f"qemu failed to start: {detail}")
    try:
        pid = int(files.pidfile.read_text().strip())
    except (OSError, ValueError) as exc:
        raise LabError(f"qemu started but wrote no pidfile {files.pidfile}") from exc
    for socket_path in (files.agent_socket, files.qmp_socket):
        private_socket(socket_path)
    return pid


def private_socket(path: Path) -> None:
    """Make qemu's socket ``path`` 0600 and check it: a socket (lstat, not a symlink) owned by us."""
    try:
        info = os.lstat(path)
        if not stat.S_ISSOCK(info.st_mode) or info.st_uid != os.geteuid():
            raise LabError(f"refusing {path}: not a socket of ours")
        os.chmod(path, 0o600)  # lstat said: not a symlink, in a 0700 directory nobody else can write to
        if stat.S_IMODE(os.lstat(path).st_mode) != 0o600:
            raise LabError(f"could not make {path} private (mode 0600)")
    except OSError as exc:
        raise LabError(f"qemu made no socket {path}: {exc.strerror or exc}") from None


def start_ticks(pid: int) -> int | None:
    """The process start time (clock ticks since boot) from /proc/PID/stat; None if it is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def is_guest_process(pid: int, ticks: int, name: str) -> bool:
    """True when ``pid`` is still the qemu process that runs guest ``name`` (guards against PID reuse)."""
    if start_ticks(pid) != ticks:
        return False
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return f"guest={name}".encode() in argv


def guest_process(pid: int, ticks: int) -> psutil.Process | None:
    """The process ``pid`` while it is still the one that started at ``ticks`` (not a reused PID); psutil then
    checks its identity again (PID and creation time) before each signal or wait."""
    if start_ticks(pid) != ticks:
        return None
    try:
        return psutil.Process(pid)
    except psutil.NoSuchProcess:
        return None


def wait_gone(pid: int, ticks: int, timeout: float) -> bool:
    """Wait until the process has exited (reaped when it is our child); True if it did within ``timeout``."""
    process = guest_process(pid, ticks)
    if process is None:
        return True
    try:
        process.wait(timeout)
    except psutil.TimeoutExpired:
        return False
    except psutil.NoSuchProcess:
        pass
    return True


def send_signal(pid: int, ticks: int, signum: signal.Signals) -> None:
    process = guest_process(pid, ticks)
    if process is not None:
        try:
            process.send_signal(signum)
        except psutil.NoSuchProcess:
            pass


def _opt(path: Path) -> str:
    """A path inside a qemu option string: commas are doubled."""
    return str(path).replace(",", ",,")
