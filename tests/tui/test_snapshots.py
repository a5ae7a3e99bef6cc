"""Screenshots of the screens, fed from a session recorded on a real host (tests/tui/data/session.jsonl, made
with `ksmtop --batch --json --all` while stand-ins merged), so the pictures are deterministic.

Regenerate after an intended change: .venv/bin/pytest tests/tui/test_snapshots.py --snapshot-update
"""

from __future__ import annotations

import json
from pathlib import Path

from ksmtop.collect.ksm import WriteResult
from ksmtop.model import Snapshot, snapshot_from_dict
from ksmtop.tui.app import KsmTopApp

SESSION = Path(__file__).parent / "data" / "session.jsonl"
SIZE = (170, 46)


class RecordedSource:
    """Plays recorded snapshots in order, one per sample; read-only like a replay."""

    description = "recorded session"
    can_edit = False
    why_read_only = "a recorded session cannot change this host's tunables"

    def __init__(self, path: Path) -> None:
        self.snapshots = [snapshot_from_dict(json.loads(line)) for line in path.read_text().splitlines()]
        self.position = 0

    def sample(self) -> Snapshot:
        snapshot = self.snapshots[min(self.position, len(self.snapshots) - 1)]
        self.position += 1
        return snapshot

    def write_tunable(self, name: str, value: str) -> WriteResult:
        return WriteResult(name, None, value, None, ok=False, message=self.why_read_only)

    def set_scope(self, scope: str) -> None:
        pass

    def select(self, pid: int | None) -> None:
        pass

    def close(self) -> None:
        pass


async def _play_to_end(pilot) -> None:
    """Take exactly one sample per recorded snapshot: the app's own timer is set to an hour, so the
    picture holds the same samples however fast or slow this machine is."""
    app = pilot.app
    while not app.history:  # the sample taken at start-up
        await pilot.pause(0.01)
    while len(app.history) < len(app.source.snapshots):
        taken = len(app.history)
        app.sample_now()
        while len(app.history) == taken:
            await pilot.pause(0.01)
    await pilot.press("space")  # pause: the status line says so
    app.last_took_s = 0.0  # the one figure that depends on this machine's speed
    app._show_status()
    await pilot.pause(0.2)


def test_recorded_session_is_readable():
    source = RecordedSource(SESSION)
    assert len(source.snapshots) == 25
    last = source.snapshots[-1]
    merged = {g.name: g.ksm_merging_pages for g in last.guests}
    assert merged["guest-standin-1"] > 0 and merged["random-standin"] == 0


def test_main_screen(snap_compare):
    app = KsmTopApp(RecordedSource(SESSION), interval=3600)
    assert snap_compare(app, terminal_size=SIZE, run_before=_play_to_end)


def test_main_screen_sorted_by_rss_with_a_filter(snap_compare):
    async def run_before(pilot) -> None:
        await _play_to_end(pilot)
        await pilot.press("M", "slash", *"standin", "enter")

    app = KsmTopApp(RecordedSource(SESSION), interval=3600)
    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_help_screen(snap_compare):
    async def run_before(pilot) -> None:
        await _play_to_end(pilot)
        await pilot.press("question_mark")

    app = KsmTopApp(RecordedSource(SESSION), interval=3600)
    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
