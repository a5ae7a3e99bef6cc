"""The main screen: header, guest table with details and sparklines, tunables and counters, status line.

It draws what the app hands it (attributes down) and passes on what the user asks (messages up): it knows
nothing about where the figures come from, and computes nothing itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.events import Key
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Input, Static

from ksmtop.convergence import TradePoint
from ksmtop.knobs import WriteResult
from ksmtop.model import Event, KsmState, Snapshot
from ksmtop.rows import GuestRow
from ksmtop.tui.series import Series
from ksmtop.tui.view import GRAPH_TITLES
from ksmtop.tui.widgets.details import GuestDetails
from ksmtop.tui.widgets.graphs import Graphs
from ksmtop.tui.widgets.guests import GuestTable
from ksmtop.tui.widgets.line_table import TableRow
from ksmtop.tui.widgets.lines import LinesView
from ksmtop.tui.widgets.summary import Summary
from ksmtop.tui.widgets.timeline import Timeline
from ksmtop.tui.widgets.tunables import TunablesPanel


class MainScreen(Screen[None]):
    """Draws what the app hands it; knows nothing about where it comes from."""

    class Ready(Message):
        """Posted once the widgets are mounted."""

    class FilterChanged(Message):
        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    def compose(self) -> ComposeResult:
        yield Summary(id="summary")
        yield Static("", id="banner")
        with Horizontal(id="main"):
            with Vertical(id="left"):
                yield GuestTable(id="guests")
                yield Input(placeholder="filter by name (Esc clears)", id="filter")
                yield GuestDetails(id="details")
                with Horizontal(id="history"):
                    yield Graphs(GRAPH_TITLES, id="graphs")
                    yield Timeline(id="timeline")
            yield TunablesPanel(id="tunables")
        yield LinesView(id="status", wrap=False)
        yield Footer()

    def on_mount(self) -> None:
        self.summary = self.query_one(Summary)
        self.banner = self.query_one("#banner", Static)
        self.table = self.query_one(GuestTable)
        self.filter_field = self.query_one("#filter", Input)
        self.details = self.query_one(GuestDetails)
        self.graphs = self.query_one(Graphs)
        self.timeline = self.query_one(Timeline)
        self.tunables = self.query_one(TunablesPanel)
        self.status = self.query_one("#status", LinesView)
        self._banner: tuple[str, ...] | None = None
        self.banner.display = False
        self.table.focus()
        self.post_message(self.Ready())

    # --- what the app hands down --------------------------------------------------------------------------
    def show_summary(self, lines: Sequence[Text]) -> None:
        self.summary.show(lines)

    def show_table(
        self,
        rows: Sequence[TableRow],
        selected: str | None,
        labels: Sequence[str],
        sort_key: str,
        reverse: bool,
        columns: Sequence[str],
    ) -> None:
        self.table.show(rows, selected, labels, sort_key, reverse, columns)

    def show_details(self, row: GuestRow | None, snapshot: Snapshot, control: str, insight: str) -> None:
        self.details.show_guest(row, snapshot, control, insight)

    def show_graphs(self, graphs: Mapping[str, tuple[str, Series | None]]) -> None:
        self.graphs.plot(graphs)

    def show_tunables(self, state: KsmState, unavailable: dict[str, str], trade: Sequence[TradePoint]) -> None:
        self.tunables.show(state, unavailable)
        self.tunables.show_trade(trade)

    def show_write(self, result: WriteResult) -> None:
        self.tunables.show_result(result)

    def set_read_only(self, reason: str) -> None:
        self.tunables.set_read_only(reason)

    def show_timeline(self, events: list[Event]) -> None:
        self.timeline.show_events(events)

    def set_banner(self, messages: list[str]) -> None:
        shown = tuple(messages)
        if shown == self._banner:
            return
        self._banner = shown
        self.banner.update(Text("\n".join(messages)))
        self.banner.display = bool(messages)

    def set_status(self, text: str) -> None:
        self.status.show([Text(text)])

    def show_filter(self) -> None:
        self.filter_field.display = True
        self.filter_field.focus()

    # --- what the user does -------------------------------------------------------------------------------
    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input is self.filter_field:
            event.stop()
            self.post_message(self.FilterChanged(event.value))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input is self.filter_field:
            event.stop()
            self.table.focus()

    def on_key(self, event: Key) -> None:
        if event.key == "escape" and self.filter_field.has_focus:
            self.filter_field.value = ""
            self.filter_field.display = False
            self.table.focus()
