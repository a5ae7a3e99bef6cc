"""Screenshots of the screens, fed from a session recorded on a real host with ksmtop's own recorder
(tests/tui/data/session.jsonl, made by `python -m tests.support.make_session`: three stand-ins, KSM off, then
tunables written and KSM merging) and replayed through the real ReplaySource, so the pictures are deterministic.

Regenerate after an intended change: .venv/bin/pytest tests/tui/test_snapshots.py --snapshot-update
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from ksmtop.recording import read_recording
from ksmtop.replay import ReplaySource
from ksmtop.tui.app import KsmTopApp

SESSION = Path(__file__).parent / "data" / "session.jsonl"
SIZE = (170, 46)


@pytest.fixture(autouse=True)
def utc(monkeypatch):
    """Event times and the replay clock are shown in local time: pin it."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def replay_app() -> KsmTopApp:
    return KsmTopApp(ReplaySource(SESSION), interval=1.0)


async def _play_to_end(pilot) -> None:
    """Jump to the last sample (G): the replay pauses there, whatever the speed of this machine."""
    app = pilot.app
    while not app.history:  # the first sample, shown at start-up
        await pilot.pause(0.01)
    await pilot.press("G")
    while len(app.history) < len(app.source.snapshots) or not app.paused:
        await pilot.pause(0.01)
    await settled(pilot)


async def settled(pilot) -> None:
    """Every worker done (the diagnosis of the selected guest lands after the sample) and its result drawn."""
    await pilot.app.workers.wait_for_complete()
    await pilot.pause(0.2)


def test_recorded_session_is_readable():
    recording = read_recording(SESSION)
    assert recording.warnings == [] and recording.complete
    assert len(recording.snapshots) == 24
    first, last = recording.snapshots[0], recording.snapshots[-1]
    assert first.ksm.get("run") == 0 and last.ksm.get("run") == 1
    merged = {g.name: g.ksm_merging_pages for g in last.guests}
    assert merged["guest-a"] > 0 and merged["guest-b"] > 0 and merged["random-c"] == 0
    assert [e.kind for e in recording.events] == ["note", "tunable", "tunable"]


def test_main_screen(snap_compare):
    assert snap_compare(replay_app(), terminal_size=SIZE, run_before=_play_to_end)


def test_main_screen_sorted_by_rss_with_a_filter(snap_compare):
    async def run_before(pilot) -> None:
        await _play_to_end(pilot)
        await pilot.press("M", "slash", *"guest", "enter")
        await settled(pilot)

    assert snap_compare(replay_app(), terminal_size=SIZE, run_before=run_before)


def test_help_screen(snap_compare):
    async def run_before(pilot) -> None:
        await _play_to_end(pilot)
        await pilot.press("question_mark")

    assert snap_compare(replay_app(), terminal_size=SIZE, run_before=run_before)


def test_libvirt_session_with_a_shut_off_domain_selected(snap_compare):
    """tests/tui/data/libvirt-session.jsonl: three running lab domains merging and one shut off (lab-4)."""

    async def run_before(pilot) -> None:
        await _play_to_end(pilot)
        await pilot.press("N")  # sort by name: lab-1 .. lab-4, the shut-off one last
        await pilot.press("down", "down", "down")
        await settled(pilot)

    app = KsmTopApp(ReplaySource(Path(__file__).parent / "data" / "libvirt-session.jsonl"), interval=1.0)
    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
