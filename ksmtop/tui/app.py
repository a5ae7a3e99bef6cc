"""The ksmtop application: wires a Source of snapshots to the widgets. Sampling runs in a thread worker;
the screen never waits on I/O."""

from __future__ import annotations

import time
from collections.abc import Iterable

from textual import work
from textual.app import SystemCommand
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.timer import Timer

from ksmtop.collect.ksm import WriteResult
from ksmtop.control import GuestControls
from ksmtop.model import Snapshot
from ksmtop.rows import GuestRow, find_row, guest_rows
from ksmtop.sampler import History
from ksmtop.source import Source
from ksmtop.tui.guest_controls import CONTROL_BINDINGS, GuestControlsMixin
from ksmtop.tui.insight import InsightMixin
from ksmtop.tui.screens.help import HelpScreen
from ksmtop.tui.screens.interval import IntervalScreen
from ksmtop.tui.screens.main import MainScreen
from ksmtop.tui.screens.sharing import SharingScreen
from ksmtop.tui.session_controls import SESSION_BINDINGS, SessionControlsMixin
from ksmtop.tui.widgets.guests import GuestTable
from ksmtop.tui.widgets.tunables import TunablesPanel


class SnapshotReady(Message):
    def __init__(self, snapshot: Snapshot, took_s: float) -> None:
        super().__init__()
        self.snapshot = snapshot
        self.took_s = took_s


class SampleFailed(Message):
    def __init__(self, error: str) -> None:
        super().__init__()
        self.error = error


class TunableWritten(Message):
    def __init__(self, result: WriteResult) -> None:
        super().__init__()
        self.result = result


class KsmTopApp(SessionControlsMixin, GuestControlsMixin, InsightMixin):
    TITLE = "ksmtop"
    CSS_PATH = "ksmtop.tcss"
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "help", "Help"),
        Binding("space", "pause", "Pause"),
        Binding("d", "interval", "Interval"),
        Binding("w", "widen", "All KSM users"),
        Binding("slash,backslash", "filter", "Filter"),
        Binding("tab", "focus_next", "Next pane", show=False),
        Binding("m", "sharing", "Sharing"),
        *CONTROL_BINDINGS,
        *SESSION_BINDINGS,
    ]

    def __init__(self, source: Source, interval: float = 1.0, controls: GuestControls | None = None) -> None:
        super().__init__()
        self.source = source
        self.controls = controls
        self.init_controls()
        self.interval = interval
        self.paused = False
        self.history = History()
        self.init_session()
        self.live_root: str | None = str(source.root) if hasattr(source, "root") else None
        self.init_insight(self.live_root or "/")
        self.selected_pid: int | None = None
        self.selected_key: str | None = None
        self.last_took_s = 0.0
        self.sample_error = ""
        self._timer: Timer | None = None

    @property
    def closing(self) -> bool:
        """True once the app is exiting: worker messages that still arrive are dropped (the widgets may be gone)."""
        # App._exit is set by App.exit(); a shutdown after an error removes the screen's widgets without it
        return self._exit or not self.main.is_attached or not self.main.children

    def get_default_screen(self) -> MainScreen:
        self.main = MainScreen(id="_default")
        return self.main

    def on_main_screen_ready(self, message: MainScreen.Ready) -> None:
        """The screen's widgets exist: start sampling."""
        self.main.query_one(TunablesPanel).set_read_only("" if self.source.can_edit else self.source.why_read_only)
        self._set_banner(None)
        self.sample_now()

    # --- sampling -----------------------------------------------------------------------------------------
    def sample_now(self) -> None:
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        self._sample()

    @work(thread=True, exclusive=True, group="sample")
    def _sample(self) -> None:
        started = time.monotonic()
        try:
            snapshot = self.source.sample()
        except Exception as exc:  # a collector bug must not freeze the screen: say it and keep going
            self.post_message(SampleFailed(f"sampling failed: {type(exc).__name__}: {exc}"))
            return
        self.post_message(SnapshotReady(snapshot, time.monotonic() - started))

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        if not self.paused:
            self._timer = self.set_timer(self.next_interval(), self._sample)

    def on_snapshot_ready(self, message: SnapshotReady) -> None:
        if self.closing:
            return  # the app is closing
        self.history.append(message.snapshot)
        self.snapshot_taken(message.snapshot)
        self.last_took_s = message.took_s
        self.sample_error = ""
        self.show(message.snapshot)
        self.refresh_controls(guest_rows(message.snapshot))
        self._arm()

    def on_sample_failed(self, message: SampleFailed) -> None:
        if self.closing:
            return
        self.sample_error = message.error
        self._show_status()
        self._arm()

    def show(self, snapshot: Snapshot) -> None:
        self.main.show(
            snapshot,
            self.history,
            self.source.description,
            self.selected_key,
            self.control_text(self.selected_row()),
            self.insight_for(self.selected_pid),
        )
        self.refresh_insight(snapshot, live=self.live_root is not None)
        self._set_banner(snapshot)
        self._show_status()

    def _set_banner(self, snapshot: Snapshot | None) -> None:
        messages = []
        if not self.source.can_edit and self.source.why_read_only:
            messages.append(f"READ-ONLY: {self.source.why_read_only}")
        if snapshot is not None and not snapshot.is_root:
            messages.append("per-process KSM figures and PSS need root: shown as unknown")
        if snapshot is not None and not snapshot.ksm.available:
            messages.append(f"KSM unavailable: {snapshot.ksm.error}. The guest list still works.")
        self.main.set_banner(messages)

    def _show_status(self) -> None:
        if self.closing:
            return
        state = "PAUSED (space resumes)" if self.paused else f"sampling every {self.interval:g} s"
        parts = [state, f"last sample {self.last_took_s * 1000:.0f} ms", f"history {len(self.history)} samples"]
        parts = self.session_status(parts)
        if self.sample_error:
            parts.append(self.sample_error)
        if self.control_message:
            parts.append(self.control_message)
        self.main.set_status("  |  ".join(parts))

    # --- messages from widgets ----------------------------------------------------------------------------
    def selected_row(self) -> GuestRow | None:
        latest = self.history.latest
        return find_row(latest, self.selected_key) if latest is not None else None

    def on_guest_table_selected(self, message: GuestTable.Selected) -> None:
        self.selected_key = message.key
        self.selected_pid = message.pid
        self.source.select(message.pid)
        self.refresh_keys()
        self.controls_changed()

    def controls_changed(self) -> None:
        if self.closing:
            return  # the app is closing
        self._show_status()
        if self.history.latest is not None:
            self.main.show_selected(
                self.history.latest,
                self.history,
                self.selected_key,
                self.control_text(self.selected_row()),
                self.insight_for(self.selected_pid),
            )

    def sample_soon(self) -> None:
        if not self.paused:
            self.sample_now()

    def on_tunables_panel_write_requested(self, message: TunablesPanel.WriteRequested) -> None:
        self._write_tunable(message.name, message.value)

    @work(thread=True, group="tunable")
    def _write_tunable(self, name: str, value: str) -> None:
        try:
            result = self.source.write_tunable(name, value)
        except Exception as exc:  # never a traceback on the screen: the panel says what went wrong
            result = WriteResult(
                name, None, value, None, ok=False, message=f"write failed: {type(exc).__name__}: {exc}"
            )
        self.post_message(TunableWritten(result))

    def on_tunable_written(self, message: TunableWritten) -> None:
        if self.closing:
            return  # the app is closing
        result = message.result
        self.main.query_one(TunablesPanel).show_result(result)
        if not result.ok:
            self.notify(result.message, title="Refused", severity="error")
        elif result.warning:
            self.notify(result.warning, title=result.message, severity="warning")
        else:
            self.notify(result.message, title="Tunable written")
        if not self.paused:
            self.sample_now()

    # --- actions ------------------------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "sharing":
            return self.live_root is not None  # page tables of this host: not in a replay
        return super().check_action(action, parameters)

    def action_sharing(self) -> None:
        snapshot = self.history.latest
        if snapshot is None or self.live_root is None:
            self.notify("the sharing matrix reads this host's page tables: live only", severity="warning")
            return
        pids = [guest.pid for guest in snapshot.guests]
        names = {guest.pid: guest.name for guest in snapshot.guests}
        self.push_screen(SharingScreen(pids, names, snapshot.host.page_size, self.live_root))

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def action_pause(self) -> None:
        self.paused = not self.paused
        if self.paused and self._timer is not None:
            self._timer.stop()
            self._timer = None
        self._show_status()
        if not self.paused:
            self.sample_now()

    def action_interval(self) -> None:
        def chosen(value: float | None) -> None:
            if value is not None:
                self.interval = value
                self.notify(f"refresh interval {value:g} s")
                if not self.paused:
                    self.sample_now()

        self.push_screen(IntervalScreen(self.interval), chosen)

    def action_widen(self) -> None:
        if self.history.latest is not None and self.history.latest.mode == "remote":
            self.notify(
                "a remote host's rows are its libvirt domains: other KSM users are not visible", severity="warning"
            )
            return
        table = self.main.query_one(GuestTable)
        scope = "ksm" if (self.history.latest and self.history.latest.scope == "qemu") else "qemu"
        self.source.set_scope(scope)
        table.clear()
        self.notify("showing every process using KSM" if scope == "ksm" else "showing qemu guests only")
        if not self.paused:
            self.sample_now()

    def action_filter(self) -> None:
        self.main.show_filter()

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Pause / resume", "Stop or restart sampling", self.action_pause)
        yield SystemCommand("Refresh interval", "Change seconds between samples", self.action_interval)
        yield SystemCommand("Widen / narrow", "qemu guests only, or every process using KSM", self.action_widen)
        table = self.main.query_one(GuestTable)
        for key, label in (
            ("rss_bytes", "RSS"),
            ("ksm_merging_pages", "merged pages"),
            ("ksm_process_profit_bytes", "profit"),
            ("faults_per_s", "faults/s"),
            ("cpu_percent", "CPU%"),
            ("name", "name"),
        ):
            yield SystemCommand(
                f"Sort by {label}", f"Sort the guest table by {label}", lambda k=key: table.action_sort_by(k)
            )

    def on_unmount(self) -> None:
        self.source.close()
