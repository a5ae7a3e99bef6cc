"""What a new user found on the screen (issue 11), each on the real app: sparklines from an honest baseline, and
a mode line that says "libvirt: not running" in a few words when libvirtd is not there. (Editing a knob shows
the whole word "editing…", and a refused value says why on the knob's own row: tests/tui/test_app.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from ksmtop.live import LiveSource
from ksmtop.replay import ReplaySource
from ksmtop.tui.app import KsmTopApp
from ksmtop.tui.widgets.bars import BLOCKS, bars
from ksmtop.tui.widgets.graphs import BAR_LINES
from tests.tui.conftest import wait_until, widget_text

SIZE = (170, 48)
LIBVIRT_SESSION = Path(__file__).parent / "data" / "libvirt-session.jsonl"


def test_a_flat_series_that_moved_a_little_draws_flat():
    # 691 MiB for a minute, then 691.7 MiB: Textual's Sparkline (min..max) drew this as a wall
    values = [691.0] * 59 + [691.7]
    top, bottom = bars(values, width=60, height=2)
    assert set(bottom) == {BLOCKS[-1]}  # every column full on the lower line
    assert set(top) == {BLOCKS[-1]}  # and on the upper one: 691 of 691.7 rounds to the top level
    halves = bars([50.0, 100.0], width=2, height=2)
    assert halves == [" " + BLOCKS[-1], BLOCKS[-1] * 2]  # half the height is the whole lower line


def test_bars_rise_from_zero_and_the_newest_is_on_the_right():
    top, bottom = bars([0.0, 0.0, 10.0], width=5, height=2)
    assert bottom == "   " + " " + BLOCKS[-1] and top == "    " + BLOCKS[-1]
    assert bars([], width=4, height=2) == ["    ", "    "]
    assert bars([-5.0, 5.0], width=2, height=1) == [" " + BLOCKS[-1]]  # negative values draw as zero


async def test_the_rss_graph_of_a_recorded_session_starts_at_zero():
    app = KsmTopApp(ReplaySource(LIBVIRT_SESSION), interval=1.0)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.history.latest is not None)
        await pilot.press("G")
        await wait_until(pilot, lambda: app.source.at_end and app.paused)
        await pilot.pause(0.2)
        rss = list(app.trends.rss)
        assert min(rss) < max(rss)  # the guests' RSS moved in this session (586 to 717 MiB)
        graphs = app.main.graphs
        label, *shown = graphs.lines("rss")
        assert len(rss) <= graphs.content_size.width  # one sample a column: the bars are the series itself
        assert shown == bars(rss, graphs.content_size.width, BAR_LINES)
        drawn = [graphs.render_line(y).text for y in range(1 + BAR_LINES)]  # what reaches the screen
        width = graphs.content_size.width
        assert drawn == [label[:width].ljust(width), *shown]  # a label wider than the graph is cut, as before
        # from zero, the smallest column is still most of the height (min/max scaling drew it empty)
        lowest = min(rss) / max(rss)
        assert lowest > 0.75 and BLOCKS[0] not in shown[-1].strip()
        assert "from 0)" in label and "min 586 MiB" in label and "max 717 MiB" in label


async def test_without_libvirtd_the_mode_line_says_so_in_a_few_words():
    pytest.importorskip("libvirt")
    from ksmtop.collect.libvirt import LibvirtConnection

    # a real libvirt client error: no daemon listens on this socket
    uri = "qemu:///system?socket=/nonexistent/libvirt-sock"
    app = KsmTopApp(LiveSource(libvirt=LibvirtConnection(uri)), interval=0.3)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(
            pilot,
            lambda: "cannot connect" in (((app.history.latest or None) and app.history.latest.libvirt_status) or ""),
        )
        await pilot.pause(0.3)
        header = widget_text(app.main.summary)
        mode = next(line for line in header.splitlines() if line.startswith("Mode"))
        assert "libvirt: not running" in mode and "retrying" in mode
        assert "Failed to connect socket" not in header and "No such file" not in header  # details: in the help
        assert len(mode) <= 130  # one line, not a wrapped error text
        await pilot.press("question_mark")
        assert app.screen.__class__.__name__ == "HelpScreen"
        assert "No such file or directory" in widget_text(app.screen.query_one("Static"))


class SlowSource:
    """A replay whose samples take a while, counting how many run at once (a Source by delegation)."""

    def __init__(self, inner: ReplaySource, seconds: float) -> None:
        import threading

        self.inner = inner
        self.seconds = seconds
        self.running = 0
        self.most = 0
        self.samples = 0
        self.lock = threading.Lock()

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def sample(self):
        import time

        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        time.sleep(self.seconds)
        with self.lock:
            self.running -= 1
            self.samples += 1
        return self.inner.sample()


async def test_one_sample_at_a_time_and_requests_while_one_runs_are_coalesced():
    source = SlowSource(ReplaySource(LIBVIRT_SESSION), seconds=0.3)
    app = KsmTopApp(source, interval=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.history.latest is not None)
        before = source.samples
        for _ in range(20):  # keys, timers and results asking for a sample while one runs
            app.sample_now()
            await pilot.pause(0.01)
        await pilot.pause(1.0)
        assert source.most == 1
        assert source.samples - before <= 8  # 20 requests in 0.2 s became a few samples, not 20 at once


async def test_w_saves_the_setup_and_f_chooses_columns_and_the_next_start_keeps_them(tmp_path):
    from ksmtop.config import Preferences, load
    from ksmtop.tui.widgets.guests import GuestTable

    path = tmp_path / "ksmtop" / "config.toml"
    app = KsmTopApp(ReplaySource(LIBVIRT_SESSION), interval=1.0, config_file=path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.history.latest is not None)
        await pilot.press("space", "N")  # sort by name
        await pilot.press("f")
        assert app.screen.__class__.__name__ == "ColumnsScreen"
        await pilot.press("down", "space")  # the second choice (after PID): State, off
        await pilot.press("enter")
        table = app.query_one(GuestTable)
        assert app.screen is app.main and "domain_state" not in app.view.columns
        with pytest.raises(KeyError):
            table.get_cell(table.rows[0], "domain_state")
        await pilot.press("W")
        await wait_until(pilot, lambda: path.exists())
    saved, warning = load(path)
    assert warning is None
    assert (saved.sort, saved.reverse, saved.interval) == ("name", False, 1.0)
    assert "domain_state" not in saved.columns and "rss_bytes" in saved.columns

    again = KsmTopApp(ReplaySource(LIBVIRT_SESSION), preferences=saved, config_file=path)
    async with again.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: again.history.latest is not None)
        table = again.query_one(GuestTable)
        assert (table.sort_key, table.sort_reverse) == ("name", False)
        assert "domain_state" not in again.view.columns
        names = [table.get_cell(key, "name") for key in table.rows]
        assert names == sorted(names, key=str.casefold)
    assert Preferences().interval == 1.0


async def test_the_graphs_redraw_only_the_lines_that_changed():
    from textual.app import App, ComposeResult

    from ksmtop.tui.series import Series
    from ksmtop.tui.view import GRAPH_TITLES, GRAPHS, label_text
    from ksmtop.tui.widgets.graphs import Graphs

    class OneGraphs(App):
        def compose(self) -> ComposeResult:
            yield Graphs(GRAPH_TITLES)

    app = OneGraphs()
    MIB = 2**20
    rss, saving = Series(40), Series(40)

    def plot() -> None:
        shown = {"rss": rss, "saving": saving, "selected": None}
        graphs.plot(
            {name: (label_text(title, show, shown[name], 40.0) if shown[name] else title, shown[name])
             for name, title, show in GRAPHS}
        )  # fmt: skip

    async with app.run_test(size=(60, 12)) as pilot:
        graphs = app.query_one(Graphs)
        await pilot.pause()
        blank = " " * graphs.content_size.width
        # before the first sample: each title above its own (empty) bars
        assert [graphs.render_line(y).text for y in range(9)] == [
            text.ljust(len(blank)) for title in ("Guest RSS", "KSM saving", "Selected guest merged pages")
            for text in (title, blank, blank)
        ]  # fmt: skip
        rss.extend([100.0 * MIB] * 40)
        saving.extend([10.0 * MIB] * 40)
        plot()
        await pilot.pause()
        refreshed: list[int] = []
        original = graphs.refresh
        graphs.refresh = lambda *regions, **kwargs: (
            refreshed.extend(r.y for r in regions),
            original(*regions, **kwargs),
        )  # type: ignore[method-assign]
        plot()  # nothing moved
        rss.append(100.0 * MIB)  # the window slid on flat series: new data, the same label and picture
        saving.append(10.0 * MIB)
        plot()
        assert refreshed == []
        rss.append(100.6 * MIB)  # a figure moved, the picture did not
        saving.append(10.0 * MIB)
        plot()
        assert refreshed == [0]
        refreshed.clear()
        rss.append(100.6 * MIB)
        saving.append(2.0 * MIB)  # the saving dropped: its label, bars
        plot()
        assert refreshed == [3, 4, 5]
        assert graphs.lines("saving")[2] == (BLOCKS[-1] * 39 + BLOCKS[3]).rjust(
            len(blank)
        )  # 2 of 10 MiB: 3 of 16 levels
        assert graphs.lines("selected") == ["Selected guest merged pages", blank, blank]  # no guest selected
