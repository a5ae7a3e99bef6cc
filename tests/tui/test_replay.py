"""Record a live session on real processes, replay it through the screen, and drive the time controls;
record from the screen with R and add a note."""

from __future__ import annotations

import stat
import time
from pathlib import Path

import pytest

from ksmtop.format import human_bytes, human_count
from ksmtop.live import LiveSource
from ksmtop.recording import RecordingWriter, read_recording
from ksmtop.replay import ReplaySource
from ksmtop.tui.app import KsmTopApp
from ksmtop.tui.widgets.guests import GuestTable
from tests.tui.conftest import cell_text, wait_until, widget_text

SESSION = Path(__file__).parent / "data" / "session.jsonl"
SIZE = (170, 48)


def status(app: KsmTopApp) -> str:
    return widget_text(app.query_one("#status"))


async def goto(pilot, app: KsmTopApp, index: int) -> None:
    """g, then . index times: the way a person steps to a sample."""
    await pilot.press("g")
    await wait_until(pilot, lambda: app.source.index == 0 and app.history.latest is app.source.snapshots[0])
    for _ in range(index):
        await pilot.press("full_stop")
    await wait_until(pilot, lambda: app.history.latest is app.source.snapshots[index])
    await pilot.pause(0.05)


@pytest.mark.ksm
async def test_replay_shows_the_numbers_the_live_screen_saw(tmp_path, ksm_guard, mergeable_processes):
    ksm_guard.set(run=0)  # before the processes start: KSM may be running on this host and merge them at once
    ksm_guard.set(pages_to_scan=5000, sleep_millisecs=10)
    procs = [mergeable_processes(mib=8, fill="same", name=f"replay{i}") for i in range(2)]
    pids = [p.pid for p in procs]
    path = tmp_path / "live.jsonl.gz"
    live = []
    source = LiveSource(scope="ksm")
    with RecordingWriter(path) as writer:
        for index in range(10):
            if index == 3:
                source.write_tunable("run", "1")  # an event, and merging from here on
            snapshot = source.sample()
            live.append(snapshot)
            writer.write(snapshot)
            time.sleep(0.2)
    source.close()
    merged = [sum(s.guest(pid).ksm_merging_pages or 0 for pid in pids) for s in live]
    assert merged[0] == 0 and merged[-1] > 0, merged  # the session saw merging happen

    app = KsmTopApp(ReplaySource(path), interval=1.0)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.history.latest is not None)
        await pilot.press("space")  # pause: only the keys move the replay now
        table = app.query_one(GuestTable)
        for index in (0, 4, 9):
            await goto(pilot, app, index)
            assert app.paused
            for pid in pids:
                guest = live[index].guest(pid)
                assert cell_text(table, str(pid), "rss_bytes") == human_bytes(guest.rss_bytes)
                assert cell_text(table, str(pid), "ksm_merging_pages") == human_count(guest.ksm_merging_pages)
                assert cell_text(table, str(pid), "name").startswith("replay")
            summary = widget_text(app.query_one("#summary"))
            assert f"saving {human_bytes(live[index].rates.saving_bytes)}" in summary
            assert f"sample {index + 1}/10" in status(app)
            assert len(app.history) == index + 1  # the sparklines hold what live held at that sample


async def test_time_controls_on_a_recorded_session(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    source = ReplaySource(SESSION)
    app = KsmTopApp(source, interval=1.0)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.history.latest is not None)
        assert "REPLAY x1 playing" in status(app)
        await pilot.press("space")
        await wait_until(pilot, lambda: "paused" in status(app))
        first = source.index
        await pilot.press("full_stop", "full_stop")
        await wait_until(pilot, lambda: source.index == first + 2)
        await pilot.press("comma")
        await wait_until(pilot, lambda: source.index == first + 1)
        await pilot.press("g", "n")  # the next event: KSM switched on (a note and two tunable writes)
        await wait_until(pilot, lambda: source.index == 4)
        assert [e.kind for e in app.history.latest.events] == ["note", "tunable", "tunable"]
        assert "sample 5/24" in status(app) and "+00:02/00:12" in status(app)
        assert "run: 0 → 1" in widget_text(app.query_one("#timeline"))
        await pilot.press("n")
        await pilot.pause(0.2)
        assert source.index == 4  # no event after it: stays, says so
        await pilot.press("right_square_bracket", "right_square_bracket", "right_square_bracket")
        assert source.speed == 100
        await pilot.press("left_square_bracket")
        assert source.speed == 10 and "x10" in status(app)
        await pilot.press("right_square_bracket", "space")  # x100, play: the end in a few frames
        await wait_until(pilot, lambda: source.at_end and app.paused, timeout=10)
        assert len(app.history) == 24 and "paused" in status(app)


async def test_replay_is_read_only_and_says_why():
    app = KsmTopApp(ReplaySource(SESSION), interval=1.0)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.history.latest is not None)
        await pilot.press("space")
        banner = widget_text(app.query_one("#banner"))
        assert "READ-ONLY" in banner and "replay of session.jsonl" in banner
        assert app.query_one("#knobs").disabled
        table = app.query_one(GuestTable)
        table.focus()
        await pilot.press("down")
        await wait_until(pilot, lambda: app.selected_pid is not None)
        assert "not on a recording" in widget_text(app.query_one("#details"))
        for action in ("start_guest", "stop_guest", "workload", "record", "note", "interval", "widen"):
            assert not app.check_action(action, ()), action
        screens = len(app.screen_stack)
        await pilot.press("s", "R", "a", "d")
        await pilot.pause(0.1)
        assert len(app.screen_stack) == screens
        assert app.source.write_tunable("run", "1").ok is False


async def test_live_screen_has_no_replay_keys():
    app = KsmTopApp(LiveSource(), interval=5)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.history.latest is not None)
        assert not app.check_action("replay_step", (1,))
        assert app.check_action("record", ())
        assert "REPLAY" not in status(app)


async def test_record_from_the_screen_with_a_note(tmp_path):
    app = KsmTopApp(LiveSource(), interval=0.2, record_dir=tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.history.latest is not None)
        await pilot.press("R")
        await wait_until(pilot, lambda: app.recorder is not None and app.recorder.samples >= 3)
        recorder = app.recorder
        await wait_until(pilot, lambda: f"{recorder.samples} samples" in status(app))
        assert f"● REC {recorder.path.name}" in status(app) and "B " in status(app)
        await pilot.press("a")
        await pilot.press(*"switched nothing, just a note", "enter")
        await wait_until(pilot, lambda: recorder.events >= 1)
        await wait_until(pilot, lambda: "switched nothing" in widget_text(app.query_one("#timeline")))
        await pilot.press("R")
        await wait_until(pilot, lambda: app.recorder is None)
        assert "REC" not in status(app)
    files = list(tmp_path.glob("ksmtop-*.jsonl.gz"))
    assert files == [recorder.path]
    assert stat.S_IMODE(recorder.path.stat().st_mode) == 0o600
    recording = read_recording(recorder.path)
    assert recording.complete and recording.warnings == []
    assert len(recording.snapshots) == recorder.samples >= 3
    assert [e.text for e in recording.events] == ["switched nothing, just a note"]


LIBVIRT_SESSION = Path(__file__).parent / "data" / "libvirt-session.jsonl"
"""20 s recorded here with `ksmtop record` on 3 running libvirt lab domains and a shut-off one, KSM merging."""


async def test_a_libvirt_session_replays_with_its_domains():
    recording = read_recording(LIBVIRT_SESSION)
    app = KsmTopApp(ReplaySource(recording), interval=1.0)
    async with app.run_test(size=SIZE) as pilot:
        await goto(pilot, app, 5)
        snapshot = app.source.snapshots[5]
        table = app.query_one(GuestTable)
        keys = [key.value for key in table.rows]
        off = next(d for d in snapshot.domains if d.state == "shut off")
        assert f"domain:{off.uuid}" in keys  # a shut-off domain is a row of its own
        for guest in snapshot.guests:
            domain = snapshot.domain_of(guest.pid)
            assert domain is not None and cell_text(table, str(guest.pid), "name") == domain.name
            assert cell_text(table, str(guest.pid), "domain_state") == "running"
        header = widget_text(app.query_one("#summary"))
        assert "+ libvirt" in header and snapshot.libvirt_status in header
        table.move_cursor(row=keys.index(f"domain:{off.uuid}"))
        await wait_until(pilot, lambda: app.selected_key == f"domain:{off.uuid}")
        details = widget_text(app.query_one("#details"))
        assert off.name in details and "shut off" in details and off.uuid in details
        assert "not on a recording" in details  # a replay controls nothing
