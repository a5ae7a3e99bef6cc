"""Names and texts from other people on the screen: Textual markup in them is shown as typed, never parsed (a
crash) and never acted on (a live action); control bytes are shown escaped. A real stand-in process named with
markup and control bytes, and a recording whose event texts, KSM error and names carry them, replayed."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from ksmtop.live import LiveSource
from ksmtop.model import Event, KsmState
from ksmtop.recording import RecordingWriter, read_recording
from ksmtop.replay import ReplaySource
from ksmtop.tui.app import KsmTopApp
from ksmtop.tui.widgets.guests import GuestTable
from tests.support.mergeable import start_guest_like, stop_all
from tests.tui.conftest import wait_until, widget_text

SIZE = (170, 48)
SESSION = Path(__file__).parent / "data" / "session.jsonl"
MARKUP = "vm[x=1=2]y[/][@click=app.quit]Q[/][link=http://example.com]L[/link][b]"
CONTROLS = "\x1b]0;TITLE\x07\x1b[31mred\u202eevil"


def hostile_recording(path: Path) -> Path:
    """session.jsonl with markup and control bytes in the names, the event texts and the KSM error."""
    recording = read_recording(SESSION)
    with RecordingWriter(path) as writer:
        for index, snapshot in enumerate(recording.snapshots):
            guests = tuple(dataclasses.replace(g, name=f"{MARKUP}-{g.name}{CONTROLS}") for g in snapshot.guests)
            events = (Event(snapshot.time, "note", f"[/] {MARKUP} {CONTROLS}"),) if index == 3 else snapshot.events
            ksm = snapshot.ksm
            if index >= 20:  # KSM "goes away" with a hostile error text
                ksm = KsmState(available=False, error=f"[/]{MARKUP}{CONTROLS}")
            writer.write(dataclasses.replace(snapshot, guests=guests, events=events, ksm=ksm))
    return path


async def test_a_recording_with_markup_and_control_bytes_replays_as_plain_text(tmp_path):
    path = hostile_recording(tmp_path / "hostile.jsonl")
    app = KsmTopApp(ReplaySource(path), interval=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.history.latest is not None)
        await pilot.press("G")
        await wait_until(pilot, lambda: app.source.at_end and app.paused, timeout=20)
        await pilot.pause(0.3)
        assert app.is_running
        table = app.query_one(GuestTable)
        names = [table.get_cell(key, "name") for key in table.rows]
        assert names and all(name.startswith(MARKUP) for name in names)  # as typed, brackets and all
        assert all("\x1b" not in name and "\\x1b" in name for name in names)  # the reader made them safe
        timeline = widget_text(app.main.timeline)
        assert f"[/] {MARKUP}" in timeline and "\x1b" not in timeline
        banner = widget_text(app.main.banner)
        assert f"KSM unavailable: [/]{MARKUP}" in banner
        details = widget_text(app.main.details)
        assert MARKUP in details
        await pilot.click(GuestTable, offset=(10, 1))  # on a name that holds [@click=app.quit]
        await pilot.click("#details", offset=(8, 1))
        await pilot.pause(0.2)
        assert app.is_running  # no live action hidden in a name


async def test_a_process_named_with_markup_and_control_bytes_is_shown_as_typed():
    stand_ins = start_guest_like(1, 2, f"{MARKUP}{CONTROLS}")
    try:
        pid = stand_ins[0].pid
        app = KsmTopApp(LiveSource(), interval=0.3)
        async with app.run_test(size=SIZE) as pilot:
            table = app.query_one(GuestTable)
            await wait_until(pilot, lambda: str(pid) in [key.value for key in table.rows])
            name = table.get_cell(str(pid), "name")
            assert name.startswith(MARKUP) and "\x1b" not in name and "\\x1b]0;TITLE\\x07" in name
            table.move_cursor(row=[key.value for key in table.rows].index(str(pid)))
            await wait_until(pilot, lambda: app.selected_pid == pid)
            await pilot.press("k", "x", "l", "s")  # keys whose messages name the guest
            await pilot.pause(0.3)
            if app.screen is not app.main:  # s opened the start dialog: close it
                await pilot.press("escape")
            assert app.is_running
            assert MARKUP in widget_text(app.main.details)
    finally:
        stop_all(stand_ins)


@pytest.mark.parametrize("text", ["[/]", "[@click=app.quit]x", "[link=file:///etc/passwd]x[/link]", "a[b=1=2]c"])
async def test_notifications_and_notes_take_data_as_plain_text(tmp_path, text):
    app = KsmTopApp(LiveSource(), interval=0.5, record_dir=tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.history.latest is not None)
        app.notify(text, title=text, severity="error")
        await pilot.press("a", *text, "enter")  # a note with markup, typed by the user
        await wait_until(pilot, lambda: text in widget_text(app.main.timeline), timeout=10)
        await pilot.pause(0.2)
        assert app.is_running
