"""Where snapshots come from, and what the screens may ask of it.

The screens hold a Source and ask it what it can do (``limits``, ``controls``, ``clock``); they never look at
its type. LiveSource (live.py) samples this host, RemoteSource (remote.py) a remote host through libvirt alone,
ReplaySource (replay.py) plays a recording. This module is the ground floor: the protocol and the small types
it speaks, no I/O and no UI, so the screens can import it without importing a collector.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from ksmtop.diagnose import Diagnosis
from ksmtop.guest_actions import Control, WorkloadState
from ksmtop.history import History
from ksmtop.knobs import WriteResult
from ksmtop.model import Event, GuestSample, KsmState, Scope, Snapshot
from ksmtop.rows import GuestRow

if TYPE_CHECKING:
    from ksmtop.collect.pagemap import SharingReport


@dataclass(frozen=True, slots=True)
class Limits:
    """What a source cannot do, each with the reason in words ("" where it can)."""

    tunables: str = ""
    """Why the KSM tunables are read-only here (not root; a replay)."""
    widen: str = ""
    """Why the guest list cannot widen to every process using KSM (a remote host)."""
    sharing: str = ""
    """Why the sharing matrix cannot be computed (it reads this host's page tables)."""
    controls: str = ""
    """Why guests cannot be started, stopped or given workloads."""
    session: str = ""
    """Why this session cannot be recorded, noted or re-paced (a replay plays a recording at its own pace)."""


class WorkloadProgress(Protocol):
    """A workload started in a guest, as the screen follows it."""

    @property
    def label(self) -> str: ...
    @property
    def state(self) -> WorkloadState | None: ...


class StartedGuest(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def pid(self) -> int: ...
    @property
    def accel(self) -> str: ...


class Controls(Protocol):
    """Guest controls (control.py): every call blocks (agent, QMP and libvirt calls with timeouts), so the
    screen makes them from worker threads. Failures raise guest_actions.ControlError with one line."""

    local: bool
    """False on a remote host, where only libvirt domains can be controlled."""

    def control_for(self, row: GuestRow) -> Control: ...
    def controls_for(self, rows: list[GuestRow]) -> dict[str, Control]: ...
    def ping(self, row: GuestRow) -> str: ...
    def workload(self, key: str) -> WorkloadProgress | None: ...
    def poll_workload(self, row: GuestRow) -> WorkloadState | None: ...
    def start(self, name: str | None = None, memory_mib: int = ...) -> StartedGuest: ...
    def start_domain(self, row: GuestRow) -> str: ...
    def stop(self, row: GuestRow, force: bool = False) -> str: ...
    def start_workload(self, row: GuestRow, workload: str, argument: int | None = None) -> WorkloadProgress: ...


class Clock(Protocol):
    """A replay's clock: which recorded sample the next ``sample()`` gives, and how fast frames come."""

    speed: int
    index: int
    warnings: list[str]
    """What looked wrong in the recording (said once, when the replay starts)."""

    @property
    def at_end(self) -> bool: ...
    @property
    def last(self) -> int: ...
    def seek(self, index: int) -> int: ...
    def hold(self) -> None: ...
    def step(self, count: int) -> int: ...
    def next_event(self) -> int | None: ...
    def change_speed(self, direction: int) -> int: ...
    def frame_interval(self, fallback: float = 1.0) -> float: ...
    def history(self) -> History:
        """The history the screen would hold live at this position (sparklines, convergence, timeline)."""
        ...

    def position_text(self) -> str: ...


class Source(Protocol):
    """What the screens need from a source of snapshots."""

    description: str
    """Where the figures come from, in words ("live", "replay s.jsonl.gz", "remote qemu+ssh://...")."""
    limits: Limits
    controls: Controls | None
    """None: guests cannot be controlled here (``limits.controls`` says why)."""
    clock: Clock | None
    """A replay's clock; None live."""

    def sample(self) -> Snapshot: ...
    def write_tunable(self, name: str, value: str) -> WriteResult: ...
    def unavailable_knobs(self, state: KsmState) -> dict[str, str]:
        """Knobs this kernel has but this source cannot read or write, each with why."""
        ...

    def set_scope(self, scope: Scope) -> None: ...
    def add_event(self, event: Event) -> None: ...
    def select(self, pid: int | None) -> None:
        """The guest the screen shows in full (its PSS is read more often)."""
        ...

    def diagnose(self, guest: GuestSample, snapshot: Snapshot, full_scans: int | None) -> Diagnosis:
        """Why the guest merges or not (blocking: live, it reads the guest's smaps)."""
        ...

    def sharing(self, guests: Sequence[GuestSample], exact: bool = False) -> SharingReport:
        """Pages shared between every pair of guests (blocking; only where ``limits.sharing`` is empty)."""
        ...

    def close(self) -> None: ...
