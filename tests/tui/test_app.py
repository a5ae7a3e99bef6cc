"""The real app, driven with Pilot, on the real kernel: processes with mergeable memory, tunables in /sys."""

from __future__ import annotations

from pathlib import Path

import pytest

from ksmtop.format import human_count
from ksmtop.live import LiveSource
from ksmtop.tui.app import KsmTopApp
from ksmtop.tui.widgets.guests import GuestTable
from ksmtop.tui.widgets.tunables import TunablesPanel
from tests.tui.conftest import cell_text, wait_until, widget_text

KSM = Path("/sys/kernel/mm/ksm")
SIZE = (170, 48)


def knob(name: str) -> str:
    return (KSM / name).read_text().strip()


def table_pids(app: KsmTopApp) -> list[int]:
    table = app.query_one(GuestTable)
    return [int(row.value) for row in table.rows]


@pytest.mark.ksm
async def test_shows_merging_processes_with_their_kernel_figures(ksm_guard, mergeable_processes):
    procs = [mergeable_processes(mib=16, fill="same", name=f"pilot{i}") for i in range(3)]
    pids = {p.pid for p in procs}
    ksm_guard.set(pages_to_scan=5000, sleep_millisecs=10, run=1)
    app = KsmTopApp(LiveSource(scope="ksm"), interval=0.3)
    async with app.run_test(size=SIZE) as pilot:
        table = app.query_one(GuestTable)
        await wait_until(pilot, lambda: pids <= set(table_pids(app)))

        def merged(pid: int) -> int:
            snapshot = app.history.latest
            guest = snapshot.guest(pid) if snapshot else None
            return (guest.ksm_merging_pages or 0) if guest else 0

        await wait_until(pilot, lambda: all(merged(pid) > 3000 for pid in pids), timeout=60)
        ksm_guard.set(run=0)  # freeze the counters, then compare the screen with the kernel
        before = len(app.history)
        await wait_until(pilot, lambda: len(app.history) >= before + 2)
        snapshot = app.history.latest
        for pid in pids:
            kernel = int(Path(f"/proc/{pid}/ksm_merging_pages").read_text())
            assert snapshot.guest(pid).ksm_merging_pages == kernel
            assert cell_text(table, str(pid), "ksm_merging_pages") == human_count(kernel)
            assert cell_text(table, str(pid), "name").startswith("pilot")


@pytest.mark.ksm
async def test_editing_pages_to_scan_writes_the_kernel_knob(ksm_guard):
    new_value = "1234" if knob("pages_to_scan") != "1234" else "4321"
    app = KsmTopApp(LiveSource(), interval=0.5)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.history.latest is not None)
        knobs = app.query_one("#knobs")
        knobs.focus()
        knobs.move_cursor(row=list(knobs.rows).index(next(k for k in knobs.rows if k.value == "pages_to_scan")))
        await pilot.press("enter")
        field = app.query_one("#knob-input")
        assert field.has_focus
        await pilot.press("ctrl+u", *new_value, "enter")
        await wait_until(pilot, lambda: knob("pages_to_scan") == new_value, timeout=10)
        panel = app.query_one(TunablesPanel)
        await wait_until(pilot, lambda: "pages_to_scan" in panel.answers)
        assert panel.answers["pages_to_scan"].ok
        await wait_until(pilot, lambda: cell_text(knobs, "pages_to_scan", "value") == new_value)


@pytest.mark.ksm
async def test_refused_values_show_the_error_and_leave_the_knob(ksm_guard, mergeable_processes):
    app = KsmTopApp(LiveSource(), interval=0.5)
    before = knob("pages_to_scan")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.history.latest is not None)
        panel = app.query_one(TunablesPanel)
        knobs = app.query_one("#knobs")

        async def edit(name: str, text: str) -> None:
            knobs.focus()
            knobs.move_cursor(row=[k.value for k in knobs.rows].index(name))
            await pilot.press("enter", "ctrl+u", *text, "enter")

        # Refused by validation: the edit stays open with the reason, nothing is written.
        await edit("pages_to_scan", "12a")
        await wait_until(pilot, lambda: "pages_to_scan" in panel.answers)
        assert not panel.answers["pages_to_scan"].ok
        assert "digits only" in widget_text(app.query_one("#knob-answer"))
        assert cell_text(knobs, "pages_to_scan", "answer").startswith("refused: takes a whole number")
        assert cell_text(knobs, "pages_to_scan", "value") == "editing…"  # the whole word: the column fits it
        assert knob("pages_to_scan") == before
        await pilot.press("escape")

        # Refused by the kernel: max_page_sharing while pages are merged gives EBUSY, explained.
        procs = [mergeable_processes(mib=8, fill="same") for _ in range(2)]
        ksm_guard.set(pages_to_scan=5000, sleep_millisecs=10, run=1)
        await wait_until(pilot, lambda: int(knob("pages_shared")) > 0, timeout=60)
        old_sharing = knob("max_page_sharing")
        target = "300" if old_sharing != "300" else "301"
        await edit("max_page_sharing", target)
        await wait_until(pilot, lambda: "max_page_sharing" in panel.answers, timeout=10)
        result = panel.answers["max_page_sharing"]
        assert not result.ok
        assert "run=2" in result.message
        assert "run=2" in widget_text(app.query_one("#knob-answer"))
        # the reason is on the knob's own row, not only below the table
        assert cell_text(knobs, "max_page_sharing", "answer") == "refused: pages merged: run=2 first"
        assert knob("max_page_sharing") == old_sharing
        del procs


async def test_sort_keys_order_the_rows(mergeable_processes):
    small = mergeable_processes(mib=4, fill="random", name="sortsmall")
    big = mergeable_processes(mib=48, fill="random", name="sortbig")
    app = KsmTopApp(LiveSource(scope="ksm"), interval=0.3)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: {small.pid, big.pid} <= set(table_pids(app)))
        table = app.query_one(GuestTable)
        table.focus()

        def order() -> list[int]:
            return [pid for pid in table_pids(app) if pid in (small.pid, big.pid)]

        await pilot.press("M")  # htop/virt-top: sort by memory, largest first
        assert table.sort_key == "rss_bytes" and table.sort_reverse
        assert order() == [big.pid, small.pid]
        await pilot.press("I")  # invert
        assert order() == [small.pid, big.pid]
        await pilot.press("N")  # by name, A to Z
        assert table.sort_key == "name"
        names = [str(table.get_cell(str(pid), "name")) for pid in table_pids(app)]
        assert names == sorted(names, key=str.casefold)
        await pilot.press("greater_than_sign")
        assert table.sort_key == "pid"
        # Pilot works out where to click before it sends the events; a sample landing in between can add a line
        # to the header above (KSM merging on this host: the side-channel warning) and move the table down a
        # line, so the click would land on the header's last line. Paused, the screen holds still.
        await pilot.press("space")
        await wait_until(pilot, lambda: app.paused)
        await pilot.pause(0.5)  # a sample that was under way has landed
        assert await pilot.click("GuestTable", offset=(3, 0))  # a click on the Name header sorts by name
        await pilot.pause(0.2)
        assert table.sort_key == "name"


async def test_filter_by_name(mergeable_processes):
    keep = mergeable_processes(mib=2, fill="same", name="filterkeep")
    drop = mergeable_processes(mib=2, fill="same", name="filterdrop")
    app = KsmTopApp(LiveSource(scope="ksm"), interval=0.3)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: {keep.pid, drop.pid} <= set(table_pids(app)))
        await pilot.press("slash", *"keep")
        await wait_until(pilot, lambda: keep.pid in table_pids(app) and drop.pid not in table_pids(app))
        await pilot.press("escape")
        await wait_until(pilot, lambda: {keep.pid, drop.pid} <= set(table_pids(app)))


async def test_pause_help_and_interval_keys():
    app = KsmTopApp(LiveSource(), interval=0.2)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: len(app.history) >= 2)
        await pilot.press("space")
        assert app.paused
        count = len(app.history)
        await pilot.pause(0.8)
        assert len(app.history) <= count + 1  # at most the sample already in flight
        assert "PAUSED" in widget_text(app.query_one("#status"))
        await pilot.press("space")
        await wait_until(pilot, lambda: len(app.history) >= count + 2)
        await pilot.press("question_mark")
        assert app.screen.__class__.__name__ == "HelpScreen"
        await pilot.press("escape")
        await pilot.press("d", "ctrl+u", *"abc", "enter")
        assert "not a number" in widget_text(app.screen.query_one("#interval-error"))
        await pilot.press("ctrl+u", *"2.5", "enter")
        assert app.interval == 2.5
