"""The ksmtop application: a Source of snapshots, a View worked out once per sample, the main screen drawing it.

Data flows one way, once per sample: the sample loop (tui/work.py) takes a snapshot in a thread; the app joins it
into the View (rows filtered, sorted and formatted once) and hands each part to the screen, whose widgets
redraw only what changed. The guest controls, the session (recording, replay clock) and the diagnosis are plain
objects the app owns; what they do in threads comes back as messages. The app asks the Source what it can do;
it never looks at its type.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from importlib.resources import files
from pathlib import Path

from textual.app import SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from ksmtop.config import DEFAULTS, Preferences
from ksmtop.config import save as save_preferences
from ksmtop.convergence import TradeTracker
from ksmtop.history import History
from ksmtop.knobs import WriteResult
from ksmtop.model import Event, Snapshot
from ksmtop.rates import unmerge_warning
from ksmtop.recording import RecordingWriter
from ksmtop.source import Source
from ksmtop.tui.base import SamplingApp
from ksmtop.tui.guest_control import CONTROL_BINDINGS, GuestController
from ksmtop.tui.insight import InsightController
from ksmtop.tui.screens.columns import ColumnsScreen
from ksmtop.tui.screens.controls import ConfirmScreen
from ksmtop.tui.screens.help import HelpScreen
from ksmtop.tui.screens.main import MainScreen
from ksmtop.tui.screens.sharing import SharingScreen
from ksmtop.tui.session import SESSION_BINDINGS, SessionController, record_once
from ksmtop.tui.view import Trends, View
from ksmtop.tui.widgets.guests import GuestTable
from ksmtop.tui.widgets.line_table import LineTable
from ksmtop.tui.widgets.summary import summary_text
from ksmtop.tui.widgets.timeline import SHOWN
from ksmtop.tui.widgets.tunables import TunablesPanel
from ksmtop.tui.work import SampleLoop, error_text, in_thread

SORT_BINDINGS = [
    Binding("less_than_sign", "sort_step(-1)", "Sort ←", show=False),
    Binding("greater_than_sign", "sort_step(1)", "Sort →", show=False),
    Binding("I", "invert", "Invert", show=False),
    Binding("M", "sort_by('rss_bytes')", "Sort RSS", show=False),
    Binding("P", "sort_by('cpu_percent')", "Sort CPU", show=False),
    Binding("K", "sort_by('ksm_merging_pages')", "Sort merged", show=False),
    Binding("F", "sort_by('faults_per_s')", "Sort faults", show=False),
    Binding("N", "sort_by('name')", "Sort name", show=False),
]
GUEST_KEYS = ("start_guest", "stop_guest", "destroy_guest", "workload")
STYLESHEET = files("ksmtop.tui").joinpath("ksmtop.tcss").read_text(encoding="utf-8")
"""Read once, when the app's module is imported: a screen that later runs with fewer rights (a test that drops
to nobody after importing as root; a package directory that became unreadable) needs no file to draw."""


def sample_cost(seconds: float) -> str:
    """The time a sample took, in steps coarse enough that the status line does not change every second."""
    ms = seconds * 1000
    if ms < 10:
        return "under 10 ms"
    step = 10 if ms < 100 else 100
    return f"about {round(ms / step) * step:.0f} ms"


class KsmTopApp(SamplingApp):
    TITLE = "ksmtop"
    CSS = STYLESHEET
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "help", "Help"),
        Binding("space", "pause", "Pause"),
        Binding("d", "interval", "Interval"),
        Binding("w", "widen", "All KSM users"),
        Binding("slash,backslash", "filter", "Filter"),
        Binding("tab", "focus_next", "Next pane", show=False),
        Binding("m", "sharing", "Sharing"),
        Binding("f", "columns", "Columns", show=False),
        Binding("W", "save_preferences", "Save setup", show=False),
        *CONTROL_BINDINGS,
        *SESSION_BINDINGS,
        *SORT_BINDINGS,
    ]

    def __init__(
        self,
        source: Source,
        interval: float | None = None,
        *,
        paused: bool = False,
        record_dir: Path | None = None,
        preferences: Preferences = DEFAULTS,
        config_file: Path | None = None,
        config_warning: str | None = None,
    ) -> None:
        """``preferences``: the config file's (sort, columns); ``config_file``: where W saves them;
        ``config_warning``: why the file could not be used (said once on the screen)."""
        super().__init__()
        self.source = source
        self.interval = interval if interval is not None else preferences.interval
        self.preferences = preferences
        self.config_file = config_file
        self.config_warning = config_warning
        self.view = View(sort_key=preferences.sort, sort_reverse=preferences.reverse, columns=preferences.columns)
        self.history = History()
        self.trends = Trends()
        self.trade = TradeTracker()
        self.events: deque[Event] = deque(maxlen=SHOWN)
        self.loop = SampleLoop(self, self)
        self.loop.paused = paused
        self.clock = source.clock
        self.guests = GuestController(self, source, self.redraw_selected, self.sample_now)
        self.session = SessionController(self, source, record_dir or Path.cwd(), self.sample_now, lambda: self.interval)
        self.insight = InsightController(self, source, self.redraw_selected, sampling=lambda: not self.paused)
        self.last_took_s = 0.0
        self.sample_error = ""
        self._offered: tuple[bool, ...] = ()
        self._last_taken: Snapshot | None = None

    # --- state the tests and the command palette read -----------------------------------------------------
    @property
    def selected_key(self) -> str | None:
        return self.view.selection.key

    @property
    def selected_pid(self) -> int | None:
        return self.view.selected_pid

    @property
    def recorder(self) -> RecordingWriter | None:
        return self.session.recorder

    @property
    def closing(self) -> bool:
        """True once the app is exiting: worker results that still arrive are dropped (the widgets may be gone)."""
        return self._exit or not self.main.is_attached or not self.main.children

    def get_default_screen(self) -> MainScreen:
        self.main = MainScreen(id="_default")
        return self.main

    def on_main_screen_ready(self, message: MainScreen.Ready) -> None:
        """The screen's widgets exist: start sampling."""
        if self.config_warning:
            self.notify(self.config_warning, title="Preferences", severity="warning", timeout=15)
        self.main.set_read_only(self.source.limits.tunables)
        self._set_banner(None)
        if not self.loop.started:  # a key pressed before the screen was ready (g in a replay) may have asked already
            self.sample_now()

    # --- sampling (SampleLoop's host) ---------------------------------------------------------------------
    def sample_now(self) -> None:
        self.loop.request()

    def sample_soon(self) -> None:
        if not self.paused:
            self.sample_now()

    def sample_job(self, advance: bool) -> Callable[[], object]:
        if self.clock is not None and not advance:
            self.clock.hold()  # a key asked: show the frame it chose (or this one), do not move on
        source, recorder = self.source, self.session.recorder  # read here, on the UI thread

        def job() -> tuple[Snapshot, RecordingWriter | None, str | None]:
            snapshot = source.sample()
            error = record_once(recorder, snapshot) if recorder is not None else None
            return snapshot, recorder, error

        return job

    def next_interval(self) -> float:
        clock = self.session.clock
        return clock.frame_interval(self.interval) if clock is not None else self.interval

    def sample_failed(self, error: str) -> None:
        self.sample_error = error
        self.show_status()

    def sample_landed(self, landed: object, took_s: float) -> None:
        snapshot, recorder, error = landed  # type: ignore[misc]
        if error is not None and recorder is not None:
            self.session.recording_failed(recorder, error)
        self.last_took_s = took_s
        self.sample_error = ""
        self._take(snapshot)
        self._draw()

    def _take(self, snapshot: Snapshot) -> None:
        """The new snapshot into the history and everything kept from it (once per sample)."""
        clock = self.session.clock
        if clock is None:
            self.history.append(snapshot)
            new: list[Snapshot] | None = [snapshot]
        else:
            if not self.history and clock.warnings:
                for warning in clock.warnings:
                    self.notify(warning, title="Recording", severity="warning", timeout=10)
            history = clock.history()  # a jump or a fast speed moves more than one sample
            new = self._appended(history) if history is self.history else None
            self.history = history
            if clock.at_end and not self.paused:
                self.loop.pause(True)
                self.notify("end of the recording (g: back to the start)")
        self.view.update(snapshot)
        if new is not None:
            for taken in new:
                self.trends.add(taken)
                self.trade.add(taken)
                self.events.extend(taken.events)
        else:  # a replay jumped back, or far: everything kept from the history starts again
            self.trends.reset(self.history, self.trends.selected_pid)
            self.trade = TradeTracker()
            self.events.clear()
            for earlier in self.history:
                self.trade.add(earlier)
                self.events.extend(earlier.events)
        self._last_taken = snapshot
        pid = self.view.selected_pid
        self.trends.select(pid, self.history)  # the selection may have followed a guest that left
        self.source.select(pid)

    def _appended(self, history: History) -> list[Snapshot] | None:
        """The snapshots a replay's history gained since the last one taken (None: it was rebuilt)."""
        new: list[Snapshot] = []
        for snapshot in reversed(history.snapshots):
            if snapshot is self._last_taken:
                return new[::-1]
            new.append(snapshot)
        return None

    def _draw(self) -> None:
        snapshot = self.view.snapshot
        if snapshot is None or self.closing:
            return
        view, main = self.view, self.main
        main.show_summary(summary_text(snapshot, self.source.description, self.history))
        self._set_banner(snapshot)
        main.show_table(
            view.table, view.selection.key, view.header_labels(), view.sort_key, view.sort_reverse, view.columns
        )
        main.show_tunables(snapshot.ksm, self.source.unavailable_knobs(snapshot.ksm), self.trade.points())
        main.show_timeline(list(self.events))
        main.show_graphs(self.trends.graphs())
        self.redraw_selected()
        self.guests.refresh(list(view.rows.values()), view.selected)
        self.insight.refresh(snapshot, view.selected_pid, self.history)

    def redraw_selected(self) -> None:
        """What depends on the selected row: the details panel, its graph, the keys offered, the status line."""
        snapshot = self.view.snapshot
        if snapshot is None or self.closing:
            return
        row = self.view.selected
        self.main.show_details(row, snapshot, self.guests.text_for(row), self.insight.text_for(self.view.selected_pid))
        self._refresh_keys()
        self.show_status()

    def _refresh_keys(self) -> None:
        """The footer is rebuilt only when the keys offered changed (rebuilding it costs more than a sample)."""
        offered = tuple(bool(self.check_action(action, ())) for action in GUEST_KEYS)
        if offered != self._offered and self.screen_stack:
            self._offered = offered
            self.refresh_bindings()

    def _set_banner(self, snapshot: Snapshot | None) -> None:
        messages = []
        if self.source.limits.tunables:
            messages.append(f"READ-ONLY: {self.source.limits.tunables}")
        if snapshot is not None and not snapshot.is_root:
            messages.append("per-process KSM figures and PSS need root: shown as unknown")
        if snapshot is not None and not snapshot.ksm.available:
            messages.append(f"KSM unavailable: {snapshot.ksm.error}. The guest list still works.")
        self.main.set_banner(messages)

    def show_status(self) -> None:
        if self.closing:
            return
        session = self.session.status(playing=not self.paused)
        if self.session.clock is not None:
            parts = session
        else:
            state = "PAUSED (space resumes)" if self.paused else f"sampling every {self.interval:g} s"
            parts = [state, f"a sample takes {sample_cost(self.last_took_s)}"]
            parts += session
        if self.sample_error:
            parts.append(self.sample_error)
        if self.guests.message:
            parts.append(self.guests.message)
        self.main.set_status("  |  ".join(parts))

    # --- messages from the screen -------------------------------------------------------------------------
    def on_line_table_cursor_moved(self, message: LineTable.CursorMoved) -> None:
        if not isinstance(message.table, GuestTable):
            return
        if self.view.select(message.key):
            pid = self.view.selected_pid
            self.source.select(pid)
            self.trends.select(pid, self.history)
            if self.view.snapshot is not None:
                self.main.show_graphs(self.trends.graphs())
                self.insight.refresh(self.view.snapshot, pid, self.history)
            self.redraw_selected()

    def on_line_table_header_clicked(self, message: LineTable.HeaderClicked) -> None:
        if isinstance(message.table, GuestTable):
            self.action_sort_by(message.column)

    def on_main_screen_filter_changed(self, message: MainScreen.FilterChanged) -> None:
        self.view.filter(message.text)
        self._redraw_table()

    def _redraw_table(self) -> None:
        view = self.view
        self.main.show_table(
            view.table, view.selection.key, view.header_labels(), view.sort_key, view.sort_reverse, view.columns
        )
        self.redraw_selected()

    def on_tunables_panel_write_requested(self, message: TunablesPanel.WriteRequested) -> None:
        """run=2 while the unmerge debt exceeds MemAvailable is asked about first; y writes it anyway."""
        name, value, snapshot = message.name, message.value, self.view.snapshot
        question = unmerge_warning(snapshot) if name == "run" and value == "2" and snapshot is not None else None
        if question is None:
            self._write_tunable(name, value)
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._write_tunable(name, value)
            else:
                self.notify("run left as it is", title="Not written", markup=False)

        self.push_screen(ConfirmScreen(question), answered)

    def _write_tunable(self, name: str, value: str) -> None:
        source = self.source

        def failed(exc: BaseException) -> None:  # never a traceback on the screen: the panel says what went wrong
            self._written(WriteResult(name, None, value, None, ok=False, message=f"write failed: {error_text(exc)}"))

        in_thread(self, lambda: source.write_tunable(name, value), self._written, group="tunable", failed=failed)

    def _written(self, result: WriteResult) -> None:
        self.main.show_write(result)
        if not result.ok:
            self.notify(result.message, title="Refused", severity="error", markup=False)
        elif result.warning:
            self.notify(result.warning, title=result.message, severity="warning", markup=False)
        else:
            self.notify(result.message, title="Tunable written", markup=False)
        self.sample_soon()

    # --- actions ------------------------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action.startswith("replay_"):
            return self.clock is not None
        allowed = self.session.allows(action)
        if allowed is not None:
            return allowed
        allowed = self.guests.allows(action, self.view.selected)
        if allowed is not None:
            return allowed
        if action == "sharing":
            return not self.source.limits.sharing
        return True

    def action_sort_by(self, key: str) -> None:
        self.view.sort_by(key)
        self._redraw_table()

    def action_sort_step(self, step: int) -> None:
        self.view.sort_step(step)
        self._redraw_table()

    def action_invert(self) -> None:
        self.view.invert()
        self._redraw_table()

    def action_sharing(self) -> None:
        snapshot = self.view.snapshot
        if snapshot is None or self.source.limits.sharing:
            self.notify(self.source.limits.sharing or "no sample yet", severity="warning", markup=False)
            return
        source, guests = self.source, snapshot.guests
        self.push_screen(SharingScreen(lambda exact: source.sharing(guests, exact), snapshot.host.page_size))

    def action_help(self) -> None:
        snapshot = self.view.snapshot
        self.push_screen(HelpScreen(snapshot.libvirt_status if snapshot is not None else None))

    def action_pause(self) -> None:
        self.loop.pause(not self.paused)
        self.show_status()

    def action_widen(self) -> None:
        snapshot = self.view.snapshot
        if self.source.limits.widen:
            self.notify(self.source.limits.widen, severity="warning", markup=False)
            return
        scope = "ksm" if (snapshot and snapshot.scope == "qemu") else "qemu"
        self.source.set_scope(scope)
        self.notify("showing every process using KSM" if scope == "ksm" else "showing qemu guests only")
        self.sample_soon()

    def action_columns(self) -> None:
        def chosen(columns: tuple[str, ...] | None) -> None:
            if columns is not None:
                self.view.show_columns(columns)
                self._redraw_table()

        self.push_screen(ColumnsScreen(self.view.columns), chosen)

    def action_save_preferences(self) -> None:
        """W, as in top: the interval, sort, scope, columns and libvirt URI in use, saved to the config file."""
        snapshot = self.view.snapshot
        preferences = Preferences(
            interval=self.interval,
            sort=self.view.sort_key,
            reverse=self.view.sort_reverse,
            scope=snapshot.scope if snapshot is not None else self.preferences.scope,
            columns=self.view.columns,
            connect=self.preferences.connect,
        )
        target = self.config_file

        def saved(path: Path) -> None:
            self.preferences = preferences
            self.notify(f"preferences saved to {path}", title="Saved")

        def failed(exc: BaseException) -> None:
            self.notify(f"could not save the preferences: {error_text(exc)}", severity="error")

        in_thread(self, lambda: save_preferences(preferences, target), saved, group="config", failed=failed)

    def action_filter(self) -> None:
        self.main.show_filter()

    def action_record(self) -> None:
        self.session.toggle_record()

    def action_note(self) -> None:
        self.session.note()

    def action_start_guest(self) -> None:
        self.guests.start(self.view.selected)

    def action_stop_guest(self) -> None:
        self.guests.stop(self.view.selected)

    def action_destroy_guest(self) -> None:
        self.guests.destroy(self.view.selected)

    def action_workload(self) -> None:
        self.guests.workload(self.view.selected)

    # --- replay keys (only offered with a clock) ----------------------------------------------------------
    def action_replay_next_event(self) -> None:
        clock = self.session.clock
        if clock is not None:
            if clock.next_event() is None:
                self.notify("no event after this sample")
                return
            self.sample_now()

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Pause / resume", "Stop or restart sampling", self.action_pause)
        yield SystemCommand("Refresh interval", "Change seconds between samples", self.action_interval)
        yield SystemCommand("Widen / narrow", "qemu guests only, or every process using KSM", self.action_widen)
        for key, label in (
            ("rss_bytes", "RSS"),
            ("ksm_merging_pages", "merged pages"),
            ("ksm_process_profit_bytes", "profit"),
            ("faults_per_s", "faults/s"),
            ("cpu_percent", "CPU%"),
            ("name", "name"),
        ):
            yield SystemCommand(
                f"Sort by {label}", f"Sort the guest table by {label}", lambda k=key: self.action_sort_by(k)
            )

    def on_unmount(self) -> None:
        self.loop.stop(close=self.source.close)  # after the sample in progress, never beside it
        self.session.close()
