"""The price and shape of merging on the screen, on the real kernel: why a guest is not merging, room for more,
convergence and the side-channel warning in the header, and the sharing matrix."""

from __future__ import annotations

from ksmtop.live import LiveSource
from ksmtop.tui.app import KsmTopApp
from ksmtop.tui.widgets.guests import GuestTable
from tests.tui.conftest import wait_until, widget_text

SIZE = (170, 50)


async def select(pilot, app: KsmTopApp, pid: int) -> None:
    table = app.query_one(GuestTable)
    await wait_until(pilot, lambda: str(pid) in [row.value for row in table.rows])
    table.focus()
    table.move_cursor(row=[int(row.value) for row in table.rows].index(pid))
    await wait_until(pilot, lambda: app.selected_pid == pid)


async def test_details_say_why_a_guest_is_not_merging_and_how_many_more_fit(ksm_guard, mergeable_processes):
    process = mergeable_processes(mib=16, fill="same", name="insight-off")
    ksm_guard.set(run=0)
    app = KsmTopApp(LiveSource(scope="ksm"), interval=0.3)
    async with app.run_test(size=SIZE) as pilot:
        await select(pilot, app, process.pid)
        await wait_until(pilot, lambda: process.pid in app.insight, timeout=20)
        diagnosis, room = app.insight[process.pid]
        assert [reason.code for reason in diagnosis.reasons][:1] == ["ksm-off"]
        assert room is not None and room.fit_without_ksm >= 1
        details = await wait_until(pilot, lambda: "Merging" in (t := widget_text(app.main.query_one("#details"))) and t)
        assert "KSM is off" in details or "run=0" in details
        assert "more like it without KSM" in details
        assert "KSM is off" in widget_text(app.main.query_one("#summary"))


def neighbours(history, ours: set[int]) -> str:
    """The KSM state over a test's history, for its failure message: the knob settings seen (more than one: a
    process outside the tests' lock wrote them), pages_sharing's range, and every other KSM user with the range of
    its merged pages (a wide one: it churns)."""
    snapshots = list(history)
    if not snapshots:
        return "no samples"
    knobs = sorted({tuple(s.ksm.values.get(k) for k in ("run", "pages_to_scan", "sleep_millisecs")) for s in snapshots})
    sharing = [s.ksm.get("pages_sharing") or 0 for s in snapshots]
    others: dict[str, list[int]] = {}
    for snapshot in snapshots:
        for guest in snapshot.guests:
            if guest.pid not in ours:
                others.setdefault(f"{guest.name} ({guest.pid})", []).append(guest.ksm_merging_pages or 0)
    latest = snapshots[-1].ksm
    return (
        f"{len(snapshots)} samples; full_scans {latest.get('full_scans')}; (run, pages_to_scan, sleep_millisecs) "
        f"seen: {knobs}; pages_sharing {min(sharing)}..{max(sharing)}, now {sharing[-1]}; other KSM users' merged "
        f"pages: {({name: f'{min(pages)}..{max(pages)}' for name, pages in others.items()}) or 'none'}"
    )


async def test_header_shows_convergence_and_the_side_channel_warning(ksm_guard, mergeable_processes):
    procs = [mergeable_processes(mib=8, fill="same", name=f"conv{i}") for i in range(2)]
    ksm_guard.set(pages_to_scan=5000, sleep_millisecs=10, run=1)
    app = KsmTopApp(LiveSource(scope="ksm"), interval=0.2)
    async with app.run_test(size=SIZE) as pilot:

        def merged() -> bool:
            snapshot = app.history.latest
            return bool(snapshot) and all(
                (snapshot.guest(p.pid) or 0) and snapshot.guest(p.pid).ksm_merging_pages for p in procs
            )

        def shown() -> str:
            """On a failure: the header, the KSM figures behind it, and what else moved KSM during the test (it
            is one per host). One write of pages_to_scan from outside the tests' lock during the test fails it:
            the price table's newest row is that setting, and at a low one convergence takes a full scan of
            every neighbour's memory. Two 256 MiB lab guests filling memory beside it did not."""
            return f"{widget_text(app.main.query_one('#summary'))}\n{neighbours(app.history, {p.pid for p in procs})}"

        await wait_until(pilot, merged, timeout=60, explain=shown)
        summary = await wait_until(
            pilot,
            lambda: "converged" in (t := widget_text(app.main.query_one("#summary"))) and t,
            timeout=60,
            explain=shown,
        )
        assert "Merging converged" in summary, shown()
        assert "side channels" in summary, shown()
        assert "merges" in summary and "measured" in summary, shown()  # KSM tracepoints through perf
        trade = app.main.query_one("#trade")
        await wait_until(pilot, lambda: trade.row_count >= 1, explain=shown)
        assert str(trade.get_row_at(0)[0]) == "5000", shown()  # the setting in force, with its ksmd CPU and scan rate


async def test_sharing_matrix_screen_shows_pairs_of_merged_processes(ksm_guard, mergeable_processes):
    a = mergeable_processes(mib=8, fill="numbered", name="share-a")
    b = mergeable_processes(mib=8, fill="numbered", name="share-b")
    lonely = mergeable_processes(mib=8, fill="random", name="share-r")
    ksm_guard.set(pages_to_scan=5000, sleep_millisecs=10, run=1)
    app = KsmTopApp(LiveSource(scope="ksm"), interval=0.3)
    async with app.run_test(size=SIZE) as pilot:

        def both_merged() -> bool:
            snapshot = app.history.latest
            guests = [snapshot.guest(p.pid) for p in (a, b)] if snapshot else []
            return all(g is not None and (g.ksm_merging_pages or 0) > 1000 for g in guests) and len(guests) == 2

        await wait_until(pilot, both_merged, timeout=60)
        ksm_guard.set(run=0)  # hold the page tables still
        await pilot.press("m")
        assert app.screen.__class__.__name__ == "SharingScreen"
        screen = app.screen
        await wait_until(pilot, lambda: screen.report is not None, timeout=30)
        report = screen.report
        assert report.error is None
        pages = 8 * 1024 * 1024 // app.history.latest.host.page_size
        assert report.shared(a.pid, b.pid) >= pages * 0.9  # the numbered pages, pairwise
        assert report.shared(a.pid, lonely.pid) == 0
        assert "ms" in widget_text(screen.query_one("#sharing-status"))
        matrix = screen.query_one("#matrix")
        assert matrix.row_count == len(report.guests)
        await pilot.press("escape")
        assert app.screen.__class__.__name__ == "MainScreen"
