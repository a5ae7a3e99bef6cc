"""What operators ask next, on the screen: the unmerge debt beside MemAvailable (and run=2 asked about when the
debt exceeds it), the kernel's scan-time advisor switched on and off on the real kernel, huge pages in the
details panel.

The debt condition cannot be produced on demand on this machine (24 GiB, a few hundred MiB merged), so that test
runs the real app on a fixture tree whose KSM counters say more is merged than is available, and checks the
tree's own run file. The advisor test switches the real kernel's advisor on and off through the screen (ksm_guard
restores every knob after, even on failure). A real hugetlbfs-backed guest is in
tests/integration/test_hugepages.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ksmtop.format import human_bytes
from ksmtop.live import LiveSource
from ksmtop.tui.app import KsmTopApp
from ksmtop.tui.screens.controls import ConfirmScreen
from ksmtop.tui.widgets.guests import GuestTable
from ksmtop.tui.widgets.tunables import ADVISOR_SETS, TunablesPanel
from tests.fixtures.tree import KSM_VALUES, FakeRoot, ksm_stat_text
from tests.tui.conftest import cell_text, wait_until, widget_text

SIZE = (170, 50)
KSM = Path("/sys/kernel/mm/ksm")
GIB = 1024**3
PAGE = 4096
SHARING = 2_000_000
"""pages_sharing of the fixture tree: 7.6 GiB to give back (with 4 KiB pages), against 1 GiB available."""
ROLLUP = "Rss:  266240 kB\nPss:  200000 kB\nAnonHugePages:  61440 kB\nShared_Hugetlb:  0 kB\nPrivate_Hugetlb:  0 kB\n"


def knob(name: str) -> str:
    return (KSM / name).read_text().strip()


def indebted_tree(path: Path) -> FakeRoot:
    """A host whose KSM merged far more than MemAvailable: run=2 would need 7.6 GiB it does not have."""
    tree = FakeRoot(path, ksm={**KSM_VALUES, "pages_sharing": str(SHARING), "ksm_zero_pages": "0"})
    (tree.proc / "meminfo").write_text(
        "MemTotal:  24000000 kB\nMemFree:  900000 kB\nMemAvailable:  1048576 kB\nAnonPages:  20000000 kB\n"
    )
    thp = path / "sys/kernel/mm/transparent_hugepage"
    thp.mkdir(parents=True)
    (thp / "enabled").write_text("always [madvise] never\n")
    (thp / "defrag").write_text("always defer defer+madvise [madvise] never\n")
    base = tree.add_process(
        4242, "qemu-system-x86", ["qemu-system-x86_64", "-name", "guest=web-01"],
        ksm_stat=ksm_stat_text(merging=100_000, zero=0, rmap=120_000, profit=1),
    )  # fmt: skip
    (base / "smaps_rollup").write_text(ROLLUP)
    return tree


async def ask_for_run_2(pilot, app: KsmTopApp) -> None:
    knobs = app.query_one("#knobs")
    knobs.focus()
    knobs.move_cursor(row=[k.value for k in knobs.rows].index("run"))
    await pilot.press("enter", "ctrl+u", "2", "enter")
    await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))


async def test_run_2_with_a_debt_above_available_asks_first_and_n_leaves_run(tmp_path):
    tree = indebted_tree(tmp_path)
    run_file = tree.ksm / "run"
    app = KsmTopApp(LiveSource(root=tmp_path), interval=0.2)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.history.latest is not None)
        page = app.history.latest.host.page_size
        debt, available = human_bytes(SHARING * page), human_bytes(1024**3)
        summary = widget_text(app.main.query_one("#summary"))
        assert f"⚠ unmerge debt {debt} of {available} available" in summary

        await ask_for_run_2(pilot, app)
        question = str(app.screen.question)
        assert debt in question and available in question and "OOM" in question
        assert run_file.read_text().strip() == "1"  # nothing written while the question is open
        await pilot.press("n")
        await wait_until(pilot, lambda: not isinstance(app.screen, ConfirmScreen))
        await pilot.pause(0.5)  # a write, had one been started, would have landed by now
        assert run_file.read_text().strip() == "1"
        assert "run" not in app.query_one(TunablesPanel).answers

        await ask_for_run_2(pilot, app)
        assert run_file.read_text().strip() == "1"
        await pilot.press("y")  # the forced write
        await wait_until(pilot, lambda: run_file.read_text().strip() == "2", timeout=10)
        panel = app.query_one(TunablesPanel)
        await wait_until(pilot, lambda: "run" in panel.answers)
        assert panel.answers["run"].ok


async def test_run_2_without_debt_trouble_is_written_at_once(tmp_path):
    tree = FakeRoot(tmp_path)  # 35 pages merged, 11 GiB available
    app = KsmTopApp(LiveSource(root=tmp_path), interval=0.2)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.history.latest is not None)
        assert "⚠ unmerge debt" not in widget_text(app.main.query_one("#summary"))
        knobs = app.query_one("#knobs")
        knobs.focus()
        knobs.move_cursor(row=[k.value for k in knobs.rows].index("run"))
        await pilot.press("enter", "ctrl+u", "2", "enter")
        await wait_until(pilot, lambda: (tree.ksm / "run").read_text().strip() == "2", timeout=10)
        assert not isinstance(app.screen, ConfirmScreen)


async def test_details_show_the_guests_debt_huge_pages_and_the_hosts_thp(tmp_path):
    indebted_tree(tmp_path)
    app = KsmTopApp(LiveSource(root=tmp_path), interval=0.2)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.selected_pid == 4242)
        page = app.history.latest.host.page_size
        details = await wait_until(
            pilot, lambda: "THP 60.0 MiB" in (text := widget_text(app.main.query_one("#details"))) and text
        )
        assert f"Debt        {human_bytes(100_000 * page)} if unmerged" in details
        assert "hugetlbfs 0 B" in details
        assert "Host THP    madvise" in details and "THP defrag  madvise" in details
        assert cell_text(app.query_one(GuestTable), "4242", "unmerge_debt_bytes") == human_bytes(100_000 * page)


def shown(app: KsmTopApp, selector: str) -> str:
    return widget_text(app.main.query_one(selector))


async def edit_knob(pilot, app: KsmTopApp, name: str, value: str) -> None:
    knobs = app.query_one("#knobs")
    knobs.focus()
    knobs.move_cursor(row=[k.value for k in knobs.rows].index(name))
    await pilot.press("enter", "ctrl+u", *value, "enter")


async def test_the_scan_time_advisor_switched_on_and_off_on_the_real_kernel(ksm_guard, mergeable_processes):
    if "advisor_mode" not in ksm_guard.saved:
        pytest.skip("this kernel has no scan-time advisor (Linux 6.8+)")
    procs = [mergeable_processes(mib=16, fill="same", name=f"advisor{i}") for i in range(3)]
    ksm_guard.set(advisor_mode="none")
    ksm_guard.set(pages_to_scan=100, sleep_millisecs=20, advisor_max_pages_to_scan=4321, run=1)
    app = KsmTopApp(LiveSource(scope="ksm"), interval=0.3)
    async with app.run_test(size=SIZE) as pilot:
        panel = app.query_one(TunablesPanel)
        trade = app.main.query_one("#trade")
        await wait_until(pilot, lambda: trade.row_count >= 1)
        assert str(trade.get_row_at(0)[0]) == "100"

        # On, through the screen: the header says what the advisor does, pages_to_scan moves under it.
        await edit_knob(pilot, app, "advisor_mode", "scan-time")
        await wait_until(pilot, lambda: knob("advisor_mode").startswith("none [scan-time]"), timeout=10)
        await wait_until(pilot, lambda: knob("pages_to_scan") == "4321", timeout=60)  # it chose its ceiling

        def advisor_line() -> str:
            return next((line for line in shown(app, "#summary").split("\n") if line.startswith("Advisor")), "")

        line = await wait_until(pilot, lambda: "pages_to_scan 4321 chosen" in (t := advisor_line()) and t)
        assert "between 500 and 4321" in line and "target 200 s" in line and "max 70%" in line
        line = await wait_until(
            pilot, lambda: "last adjustment (ksm:ksm_advisor)" in (t := advisor_line()) and t, timeout=30
        )
        rates = app.history.latest.rates
        assert rates.advisor_pages_to_scan == 4321 and rates.advisor_scan_seconds >= 1
        assert f"scan {rates.advisor_scan_seconds} s, pages_to_scan 4321, {rates.advisor_cpu_percent}% CPU" in line
        choices = {s.ksm.get("pages_to_scan") for s in app.history if s.ksm.values.get("advisor_mode") == "scan-time"}
        print(f"\nadvisor's pages_to_scan as sampled: {sorted(choices)}; last adjustment: {line.split('(')[-1]}")

        # The price table: one row for the advisor however pages_to_scan moved, beside the hand-set 100.
        await wait_until(pilot, lambda: str(trade.get_row_at(0)[0]).startswith("advisor"))
        assert str(trade.get_row_at(0)[0]) == "advisor (target 200 s, max 70% CPU)"
        assert trade.row_count == 2 and str(trade.get_row_at(1)[0]) == "100"

        # Editing pages_to_scan says, before the write, that the advisor sets it; the kernel then refuses it.
        knobs = app.query_one("#knobs")
        assert cell_text(knobs, "pages_to_scan", "answer") == ADVISOR_SETS
        knobs.focus()
        knobs.move_cursor(row=[k.value for k in knobs.rows].index("pages_to_scan"))
        await pilot.press("enter")
        assert app.query_one("#knob-input").has_focus
        assert "advisor sets pages_to_scan" in widget_text(app.query_one("#knob-help"))
        assert any("advisor sets pages_to_scan" in str(n.message) for n in app._notifications)
        assert knob("pages_to_scan") == "4321"  # said before anything is written
        await pilot.press("ctrl+u", *"1000", "enter")
        await wait_until(pilot, lambda: "pages_to_scan" in panel.answers, timeout=10)
        assert not panel.answers["pages_to_scan"].ok
        assert cell_text(knobs, "pages_to_scan", "answer") == "refused: the advisor sets it"
        assert knob("pages_to_scan") == "4321"
        assert "advisor_mode=none first" in panel.answers["pages_to_scan"].message

        # Off, through the screen: the kernel puts pages_to_scan back to 100, the advisor line goes.
        await edit_knob(pilot, app, "advisor_mode", "none")
        await wait_until(pilot, lambda: knob("advisor_mode").startswith("[none]"), timeout=10)
        assert knob("pages_to_scan") == "100"
        await wait_until(pilot, lambda: not advisor_line())
        await wait_until(pilot, lambda: str(trade.get_row_at(0)[0]) == "100")
        assert str(trade.get_row_at(1)[0]).startswith("advisor")
    del procs
