"""Why the selected guest merges or not, and how many more like it fit: worked out off the UI thread for the
selected guest only, at most every few seconds (live, the source reads its smaps: about 8 ms per GiB)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual.app import App

from ksmtop.diagnose import Capacity, Diagnosis, capacity
from ksmtop.format import human_bytes
from ksmtop.history import History
from ksmtop.model import Snapshot
from ksmtop.source import Source
from ksmtop.tui.work import in_thread

DIAGNOSE_EVERY_S = 5.0

Insight = tuple[Diagnosis, Capacity | None]


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


class InsightController:
    """Diagnoses of guests by PID (``pid in insight``, ``insight[pid]``); ``changed`` is called when one lands
    that the next sample will not draw anyway (see _landed)."""

    def __init__(
        self, app: App[Any], source: Source, changed: Callable[[], None], sampling: Callable[[], bool] = lambda: False
    ) -> None:
        self._app = app
        self._source = source
        self._changed = changed
        self._sampling = sampling
        """True while samples arrive (not paused): a fresher answer is drawn with the next one."""
        self.results: dict[int, Insight] = {}
        self._asked_at: dict[int, float] = {}
        self._busy = False

    def __contains__(self, pid: object) -> bool:
        return pid in self.results

    def __getitem__(self, pid: int) -> Insight:
        return self.results[pid]

    def text_for(self, pid: int | None) -> str:
        return "" if pid is None or pid not in self.results else insight_text(*self.results[pid])

    def refresh(self, snapshot: Snapshot, pid: int | None, history: History) -> None:
        """Ask again for the selected guest when its last answer is old (one question at a time)."""
        guest = snapshot.guest(pid) if pid is not None else None
        if guest is None or self._busy:
            return
        asked = self._asked_at.get(guest.pid)
        if asked is not None and 0 <= snapshot.time - asked < DIAGNOSE_EVERY_S:
            return  # sample time, not the wall clock: a replay that jumps ahead asks again
        self._busy = True
        self._asked_at[guest.pid] = snapshot.time
        scans = full_scans_since_start(history, guest.pid)
        source = self._source

        def work() -> Insight:
            return source.diagnose(guest, snapshot, scans), capacity(guest, snapshot.host)

        in_thread(self._app, work, lambda found: self._landed(guest.pid, found), group="insight", failed=self._failed)

    def _landed(self, pid: int, found: Insight) -> None:
        """A guest's first diagnosis is drawn at once; while samples arrive, a fresher one waits for the next
        sample's redraw, so that the screen is not drawn twice in that second for it (paused, or at the end of a
        replay, it is drawn at once)."""
        self._busy = False
        first = pid not in self.results
        self.results[pid] = found
        if first or not self._sampling():
            self._changed()

    def _failed(self, exc: BaseException) -> None:
        self._busy = False  # a diagnosis is a hint: one that could not be worked out is simply not shown
