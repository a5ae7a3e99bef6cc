"""Why a guest merges or not, and how many more like it fit: worked out for the selected guest off the UI
thread (smaps costs about 8 ms per GiB, so only for that one guest, at most every few seconds)."""

from __future__ import annotations

import time

from textual import work
from textual.app import App
from textual.message import Message

from ksmtop.collect.smaps import read_smaps
from ksmtop.diagnose import Capacity, Diagnosis, capacity, diagnose
from ksmtop.format import human_bytes
from ksmtop.model import Snapshot
from ksmtop.sampler import History

DIAGNOSE_EVERY_S = 5.0


class InsightReady(Message):
    def __init__(self, pid: int, diagnosis: Diagnosis, room: Capacity | None) -> None:
        super().__init__()
        self.pid = pid
        self.diagnosis = diagnosis
        self.room = room


def full_scans_since_start(history: History, pid: int) -> int | None:
    """Full scans ksmd finished since the guest first appeared in the history."""
    first = next((s for s in history if s.guest(pid) is not None), None)
    latest = history.latest
    if first is None or latest is None:
        return None
    start, now = first.ksm.get("full_scans"), latest.ksm.get("full_scans")
    return None if start is None or now is None else now - start


def insight_text(diagnosis: Diagnosis | None, room: Capacity | None) -> str:
    if diagnosis is None:
        return ""
    lines = [f"Merging     {diagnosis.summary}"]
    if room is not None:
        lines.append(
            f"Room        {room.fit_without_ksm} more like it without KSM, {room.fit_with_ksm} with "
            f"(each {human_bytes(room.cost_without_ksm_bytes)} vs {human_bytes(room.cost_with_ksm_bytes)}; "
            f"{human_bytes(room.available_bytes)} available)"
        )
    return "\n".join(lines)


class InsightMixin(App[None]):
    """Mixed into the app; expects ``history``, ``selected_pid`` and ``root`` (where /proc is)."""

    history: History
    selected_pid: int | None

    def init_insight(self, root: str = "/") -> None:
        self.insight_root = root
        self.insight: dict[int, tuple[Diagnosis, Capacity | None]] = {}
        self._insight_at: dict[int, float] = {}
        self._insight_busy = False

    def insight_for(self, pid: int | None) -> str:
        if pid is None or pid not in self.insight:
            return ""
        return insight_text(*self.insight[pid])

    def refresh_insight(self, snapshot: Snapshot, live: bool) -> None:
        pid = self.selected_pid
        guest = snapshot.guest(pid) if pid is not None else None
        if guest is None or self._insight_busy:
            return
        if time.monotonic() - self._insight_at.get(guest.pid, 0.0) < DIAGNOSE_EVERY_S:
            return
        self._insight_busy = True
        self._insight_at[guest.pid] = time.monotonic()
        self._work_out_insight(snapshot, guest.pid, full_scans_since_start(self.history, guest.pid), live)

    @work(thread=True, group="insight")
    def _work_out_insight(self, snapshot: Snapshot, pid: int, scans: int | None, live: bool) -> None:
        try:
            guest = snapshot.guest(pid)
            if guest is None:
                return
            smaps = read_smaps(pid, self.insight_root) if live else None
            found = diagnose(guest, snapshot.ksm, smaps, snapshot.host.page_size, scans)
            self.post_message(InsightReady(pid, found, capacity(guest, snapshot.host)))
        except Exception:  # a diagnosis is a hint: never let it break the screen
            pass
        finally:
            self._insight_busy = False

    def on_insight_ready(self, message: InsightReady) -> None:
        self.insight[message.pid] = (message.diagnosis, message.room)
        self.controls_changed()

    def controls_changed(self) -> None:
        """Redraw the details (the app provides it)."""
