"""Where snapshots come from. The screens talk to a Source and cannot tell live data from a replay.

LiveSource samples this host; ReplaySource (ksmtop/replay.py) yields the same Snapshot objects from a recording;
RecordingSource writes what another source yields to a recording.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from ksmtop.collect.ksm import WriteResult, write_tunable
from ksmtop.model import Event, Scope, Snapshot
from ksmtop.sampler import Sampler

if TYPE_CHECKING:
    from ksmtop.collect.libvirt import LibvirtConnection
    from ksmtop.recording import RecordingWriter

LIBVIRT_WAIT_S = 0.5
"""How long a sample waits for libvirt's answer before it shows the previous one (a hung libvirtd never stalls)."""


class Source(Protocol):
    """What the screens need from a source of snapshots."""

    description: str
    can_edit: bool
    why_read_only: str

    def sample(self) -> Snapshot: ...
    def write_tunable(self, name: str, value: str) -> WriteResult: ...
    def set_scope(self, scope: Scope) -> None: ...
    def add_event(self, event: Event) -> None: ...
    def select(self, pid: int | None) -> None: ...
    def close(self) -> None: ...


class LiveSource:
    """Samples this host through the Sampler; tunable writes go to /sys/kernel/mm/ksm and become events."""

    def __init__(self, root: str | Path = "/", scope: Scope = "qemu", libvirt: LibvirtConnection | None = None) -> None:
        self.sampler = Sampler(root=root, scope=scope)
        self.root = root
        self.description = "live" if str(root) == "/" else f"live ({root})"
        self.can_edit = self.sampler.is_root
        self.why_read_only = "" if self.can_edit else "not root: KSM tunables can only be changed by root"
        self.watcher = None
        if libvirt is not None:
            from ksmtop.collect.libvirt_watch import DomainWatcher

            self.watcher = DomainWatcher(libvirt, fault_counters=self.sampler.is_root)

    def sample(self) -> Snapshot:
        if self.watcher is None:
            return self.sampler.sample()
        ticket = self.watcher.poke()  # libvirt answers while /proc is read
        snapshot = self.sampler.sample()
        view = self.watcher.latest(ticket, LIBVIRT_WAIT_S)
        return dataclasses.replace(snapshot, domains=view.domains, libvirt_status=view.status)

    def write_tunable(self, name: str, value: str) -> WriteResult:
        result = write_tunable(name, value, self.root)
        self.sampler.add_event(
            Event(
                time=time.time(),
                kind="tunable",
                text=result.message,
                data={
                    "name": name,
                    "old": result.old_value,
                    "requested": result.requested,
                    "new": result.new_value,
                    "ok": result.ok,
                    "errno": result.errno,
                },
            )
        )
        return result

    def set_scope(self, scope: Scope) -> None:
        self.sampler.set_scope(scope)

    def add_event(self, event: Event) -> None:
        self.sampler.add_event(event)

    def select(self, pid: int | None) -> None:
        self.sampler.selected_pid = pid

    def close(self) -> None:
        if self.watcher is not None:
            self.watcher.close()
        self.sampler.close()


class RecordingSource:
    """Another Source, recorded: every snapshot it yields is written first (in the sampling thread, so the
    screen never waits on the disk). Everything else goes to the wrapped source."""

    def __init__(self, inner: Source, writer: RecordingWriter) -> None:
        self.inner = inner
        self.writer = writer

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def sample(self) -> Snapshot:
        snapshot = self.inner.sample()
        self.writer.write(snapshot)
        return snapshot

    def close(self) -> None:
        self.writer.close()
        self.inner.close()
