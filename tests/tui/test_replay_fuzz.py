"""What the recording reader accepts, the replay screen shows: every hostile recording the reader lets through
(controls, markup, 100k-character strings, times that go back) and random mutations of a real recording
(hypothesis) are played through the real app with Pilot: to the end, back, event to event. The app must stay
up; what it shows is plain, safe text. (The reader's own fuzz, and export: tests/unit/test_recording.py.)"""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ksmtop.recording import RecordingError, read_recording
from ksmtop.replay import ReplaySource
from ksmtop.safetext import is_safe
from ksmtop.tui.app import KsmTopApp
from ksmtop.tui.widgets.guests import GuestTable
from tests.support.hostile_recordings import accepted_recordings, recording_blobs, write_base
from tests.tui.conftest import wait_until, widget_text

SIZE = (170, 48)


async def play(path) -> KsmTopApp:
    """Replay ``path`` through every time key; returns the app (closed) for the caller's checks."""
    app = KsmTopApp(ReplaySource(path), interval=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.history.latest is not None, timeout=10)
        await pilot.press("G")
        await wait_until(pilot, lambda: app.source.at_end, timeout=10)
        await pilot.press("comma", "comma", "g", "n", "n", "full_stop", "right_square_bracket", "space")
        await pilot.pause(0.3)
        await pilot.press("down", "question_mark")
        await pilot.pause(0.1)
        await pilot.press("escape")
        await pilot.pause(0.1)
        assert app.is_running
        table = app.query_one(GuestTable)
        cells = [table.get_cell(key, column) for key in table.rows for column in ("name",)]
        shown = [*cells, widget_text(app.main.summary), widget_text(app.main.details), widget_text(app.main.timeline)]
        assert all(is_safe(line, 10_000) for text in shown for line in text.split("\n")), shown
    return app


async def test_every_hostile_recording_the_reader_accepts_replays_on_the_screen(tmp_path):
    played = 0
    for case, path in accepted_recordings(tmp_path):
        app = await play(path)
        assert app.return_code in (None, 0), case.name
        played += 1
    assert played >= 5


@pytest.fixture(scope="module")
def base_lines(tmp_path_factory) -> list[bytes]:
    path = write_base(tmp_path_factory.mktemp("fuzz") / "base.jsonl", samples=8)
    return path.read_bytes().splitlines(keepends=True)


@settings(max_examples=30, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_recordings_that_read_replay_without_breaking_the_screen(tmp_path, base_lines, data):
    blob = data.draw(recording_blobs(base_lines))
    path = tmp_path / "mutated.jsonl"
    path.write_bytes(blob)
    try:
        recording = read_recording(path)
    except RecordingError:
        return  # refused in words: the reader's fuzz checks that; nothing reaches a screen
    if not recording.snapshots:
        return
    app = asyncio.run(play(path))
    assert app.return_code in (None, 0)
    PLAYED.append(path.name)


PLAYED: list[str] = []
"""Mutations that reached the screen (the test below checks the fuzz is not all refusals)."""


def test_the_fuzz_reached_the_screen():
    if not PLAYED:
        pytest.skip("run with the fuzz test above")
    assert len(PLAYED) >= 5
