"""The lab: N identical qemu guests with a guest agent, started, listed and stopped.

Each guest has a directory in the runtime directory with its agent socket, QMP socket, serial log, pidfile and a
small state.json (name, pid, start time, sockets, memory, accelerator). A guest counts as running while its PID
is alive, has the recorded start time and still carries ``-name guest=NAME``, so a reused PID is never taken for
a lab guest. Any process can manage the lab: a `ksmtop lab up` that has exited, the TUI, or a test.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ksmtop.collect.agent import AgentError, GuestAgent
from ksmtop.collect.qmp import QmpClient, QmpError
from ksmtop.lab.accel import AccelChoice, choose_accel
from ksmtop.lab.image import LabImage, build_image
from ksmtop.lab.paths import LabError, check_dir, runtime_dir, runtime_path
from ksmtop.lab.qemu import (
    QEMU_BINARY,
    GuestFiles,
    MemoryBackend,
    check_name,
    is_guest_process,
    launch,
    qemu_argv,
    send_signal,
    start_ticks,
    wait_gone,
)

DEFAULT_MEMORY_MIB = 256
READY_TIMEOUT = 120.0
"""Seconds to wait for guest agents after starting guests (TCG: ~6 s for one, ~15 s for three)."""
SHUTDOWN_TIMEOUT = 20.0


@dataclass(frozen=True, slots=True)
class LabGuest:
    name: str
    pid: int
    start_ticks: int
    memory_mib: int
    accel: str
    image_id: str
    started_at: float
    directory: Path
    agent_socket: Path
    qmp_socket: Path
    serial_log: Path

    def is_running(self) -> bool:
        return is_guest_process(self.pid, self.start_ticks, self.name)

    def agent(self, timeout: float = 5.0) -> GuestAgent:
        return GuestAgent(self.agent_socket, timeout)

    def qmp(self, timeout: float = 5.0) -> QmpClient:
        return QmpClient(self.qmp_socket, timeout)

    def to_json(self) -> dict[str, Any]:
        return {key: str(value) if isinstance(value, Path) else value for key, value in asdict(self).items()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LabGuest:
        paths = ("directory", "agent_socket", "qmp_socket", "serial_log")
        return cls(**{key: Path(value) if key in paths else value for key, value in data.items()})


@dataclass(frozen=True, slots=True)
class GuestStatus:
    guest: LabGuest
    run_state: str
    """QEMU's run state ("running", "paused", ...) or "no QMP answer"."""
    agent: str
    """"ok", or why the agent did not answer."""


class Lab:
    """Lab guests named ``{prefix}-1`` .. ``{prefix}-N`` under one runtime directory."""

    def __init__(
        self,
        runtime: Path | None = None,
        *,
        prefix: str = "lab",
        cache: Path | None = None,
        qemu: str = QEMU_BINARY,
        log: Callable[[str], None] = lambda _: None,
    ) -> None:
        self.runtime = runtime or runtime_dir()
        self.log = log
        self.prefix = check_name(prefix)
        self.cache = cache
        self.qemu = qemu
        self.accel_choice: AccelChoice | None = None
        """The last accelerator decision (what `lab up` reports)."""
        self._accel_choices: dict[str, AccelChoice] = {}
        self._image: LabImage | None = None

    # -- image and accelerator ------------------------------------------------------------------------------

    def image(self) -> LabImage:
        if self._image is None:
            self._image = build_image(self.cache, log=self.log)
        return self._image

    def accel(self, requested: str = "auto") -> AccelChoice:
        """The accelerator for new guests: "kvm"/"tcg" as asked, or "auto" (probe, cached per host boot)."""
        choice = self._accel_choices.get(requested)
        if choice is None:
            choice = choose_accel(self.runtime, self.image(), requested, self.qemu, log=self.log)
            self._accel_choices[requested] = choice
        self.accel_choice = choice
        return choice

    # -- starting -------------------------------------------------------------------------------------------

    def up(
        self,
        count: int,
        memory_mib: int = DEFAULT_MEMORY_MIB,
        *,
        accel: str = "auto",
        wait: bool = True,
        timeout: float = READY_TIMEOUT,
    ) -> list[LabGuest]:
        """Make guests 1..count run (starting the missing ones) and, with ``wait``, wait for their agents."""
        if not 1 <= count <= 64:
            raise LabError(f"guest count must be between 1 and 64, got {count}")
        running = {guest.name: guest for guest in self.guests()}
        guests = []
        for index in range(1, count + 1):
            name = self.guest_name(index)
            guests.append(running.get(name) or self.start_guest(name, memory_mib, accel=accel, wait=False))
        if wait:
            self.wait_ready(guests, timeout)
        return guests

    def start_guest(
        self,
        name: str,
        memory_mib: int = DEFAULT_MEMORY_MIB,
        *,
        accel: str = "auto",
        wait: bool = False,
        timeout: float = READY_TIMEOUT,
        mem_merge: bool = True,
        memory_backend: MemoryBackend | None = None,
    ) -> LabGuest:
        """Start one lab guest (an error if it already runs); with ``wait``, wait for its agent.

        ``mem_merge=False`` starts it with qemu's -machine mem-merge=off: its RAM is not marked mergeable.
        ``memory_backend``: its RAM from a hugetlbfs file or preallocated anonymous memory (qemu.MemoryBackend).
        """
        check_name(name)
        if not 64 <= memory_mib <= 65536:
            raise LabError(f"guest memory must be between 64 and 65536 MiB, got {memory_mib}")
        runtime_path(self.runtime)  # 0700, ours, not a symlink: refused in one line otherwise
        if self.find(name) is not None:
            raise LabError(f"guest {name} is already running")
        image = self.image()
        choice = self.accel(accel)
        files = GuestFiles(self.runtime / name)
        argv = qemu_argv(
            name,
            files,
            image.kernel,
            image.initramfs,
            memory_mib,
            choice.accel,
            self.qemu,
            mem_merge=mem_merge,
            memory_backend=memory_backend,
        )
        pid = launch(argv, files)
        ticks = start_ticks(pid)
        if ticks is None:
            raise LabError(f"guest {name} exited right after start; see {files.serial_log}")
        guest = LabGuest(
            name=name,
            pid=pid,
            start_ticks=ticks,
            memory_mib=memory_mib,
            accel=choice.accel,
            image_id=image.image_id,
            started_at=time.time(),
            directory=files.directory,
            agent_socket=files.agent_socket,
            qmp_socket=files.qmp_socket,
            serial_log=files.serial_log,
        )
        files.state_file.write_text(json.dumps(guest.to_json(), indent=1) + "\n")
        if wait:
            self.wait_ready([guest], timeout)
        return guest

    def wait_ready(self, guests: list[LabGuest], timeout: float = READY_TIMEOUT) -> dict[str, float]:
        """Wait until every guest's agent answers a ping; returns seconds since each guest's start."""
        deadline = time.monotonic() + timeout
        ready: dict[str, float] = {}
        for guest in guests:
            with guest.agent() as agent:
                ping_timeout = 1.0  # grows, so a slow but live agent is not missed on a loaded host
                while True:
                    if not guest.is_running():
                        raise LabError(f"guest {guest.name} exited during boot; see {guest.serial_log}")
                    try:
                        agent.ping(timeout=min(ping_timeout, max(0.1, deadline - time.monotonic())))
                        ready[guest.name] = time.time() - guest.started_at
                        break
                    except AgentError:
                        ping_timeout = min(ping_timeout + 0.5, 5.0)
                        if time.monotonic() >= deadline:
                            raise LabError(
                                f"guest {guest.name}'s agent did not answer within {timeout:g} s; "
                                f"see {guest.serial_log}"
                            ) from None
                        time.sleep(0.3)
        return ready

    # -- finding --------------------------------------------------------------------------------------------

    def guest_name(self, index: int) -> str:
        return f"{self.prefix}-{index}"

    def guests(self) -> list[LabGuest]:
        """Running guests of this lab (stale state files of exited guests are removed). A runtime directory that
        others could write to (or a symlink) is refused: its state files could name any process."""
        if not os.path.lexists(self.runtime):
            return []
        check_dir(self.runtime, forbidden=0o022)
        found = []
        for state_file in sorted(self.runtime.glob(f"{self.prefix}-*/state.json"), key=_natural):
            guest = _read_state(state_file)
            if guest is None or not guest.is_running():
                state_file.unlink(missing_ok=True)
                continue
            found.append(guest)
        return found

    def find(self, name: str) -> LabGuest | None:
        return next((guest for guest in self.guests() if guest.name == name), None)

    def find_by_pid(self, pid: int) -> LabGuest | None:
        """The lab guest run by process ``pid``, if this lab started it (how the TUI knows it may control it)."""
        return next((guest for guest in self.guests() if guest.pid == pid), None)

    def guest(self, name: str) -> LabGuest:
        found = self.find(name)
        if found is None:
            raise LabError(f"no running lab guest named {name}")
        return found

    def status(self, timeout: float = 2.0) -> list[GuestStatus]:
        """Each running guest with QEMU's run state and whether its agent answers (checked in parallel)."""
        guests = self.guests()
        if not guests:
            return []
        with ThreadPoolExecutor(max_workers=min(8, len(guests))) as pool:
            return list(pool.map(lambda guest: _status(guest, timeout), guests))

    # -- stopping -------------------------------------------------------------------------------------------

    def stop_guest(self, name: str, *, force: bool = False, timeout: float = SHUTDOWN_TIMEOUT) -> str:
        """Stop a guest and say how: agent shutdown first; with ``force``, QMP quit, SIGTERM, SIGKILL after it.

        Without ``force`` a guest that does not power down within ``timeout`` raises LabError and keeps running
        (the caller may confirm and call again with ``force=True``).
        """
        guest = self.find(name)
        if guest is None:
            return "not running"
        how = _stop(guest, force=force, timeout=timeout)
        _forget(guest)
        return how

    def down(self, timeout: float = SHUTDOWN_TIMEOUT) -> list[tuple[str, str]]:
        """Stop every guest of the lab in parallel (forcing those the agent cannot stop); (name, how) pairs."""
        guests = self.guests()
        if not guests:
            return []
        with ThreadPoolExecutor(max_workers=min(16, len(guests))) as pool:
            results = list(pool.map(lambda guest: (guest.name, _stop(guest, force=True, timeout=timeout)), guests))
        for guest in guests:
            _forget(guest)
        return results


def _stop(guest: LabGuest, *, force: bool, timeout: float) -> str:
    agent_error = ""
    try:
        with guest.agent(timeout=3.0) as agent:
            agent.ping(timeout=3.0)
            agent.shutdown(timeout=1.0)
        if wait_gone(guest.pid, guest.start_ticks, timeout):
            return "powered off by its agent"
        agent_error = f"still running {timeout:g} s after the agent's shutdown"
    except AgentError as exc:
        agent_error = str(exc)
    if not force:
        raise LabError(f"guest {guest.name} did not stop: {agent_error}; force it to stop it anyway")
    try:
        with guest.qmp(timeout=3.0) as qmp:
            qmp.quit(timeout=3.0)
        if wait_gone(guest.pid, guest.start_ticks, 5.0):
            return f"quit over QMP ({agent_error})"
    except QmpError:
        pass
    send_signal(guest.pid, guest.start_ticks, signal.SIGTERM)
    if wait_gone(guest.pid, guest.start_ticks, 5.0):
        return f"terminated with SIGTERM ({agent_error})"
    send_signal(guest.pid, guest.start_ticks, signal.SIGKILL)
    if wait_gone(guest.pid, guest.start_ticks, 5.0):
        return f"killed with SIGKILL ({agent_error})"
    raise LabError(f"guest {guest.name} (PID {guest.pid}) survived SIGKILL")


def _forget(guest: LabGuest) -> None:
    """Remove the state and sockets of a stopped guest; the serial log stays for a post-mortem."""
    for path in (guest.directory / "state.json", guest.agent_socket, guest.qmp_socket, guest.directory / "qemu.pid"):
        path.unlink(missing_ok=True)


def _status(guest: LabGuest, timeout: float) -> GuestStatus:
    try:
        with guest.qmp(timeout) as qmp:
            run_state = qmp.query_status()
    except QmpError as exc:
        run_state = f"no QMP answer ({exc})"
    try:
        with guest.agent(timeout) as agent:
            agent.ping()
        agent_state = "ok"
    except AgentError as exc:
        agent_state = str(exc)
    return GuestStatus(guest, run_state, agent_state)


def _read_state(state_file: Path) -> LabGuest | None:
    try:
        return LabGuest.from_json(json.loads(state_file.read_text()))
    except (OSError, ValueError, TypeError, KeyError):
        return None


def _natural(path: Path) -> tuple[str, int]:
    prefix, _, number = path.parent.name.rpartition("-")
    return (prefix, int(number)) if number.isdigit() else (path.parent.name, 0)
