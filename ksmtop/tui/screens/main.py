"""The main screen: header, guest table with details and sparklines, tunables and counters, status line."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Input, Static

from ksmtop.collect.ksm import KNOBS
from ksmtop.convergence import trade
from ksmtop.model import Snapshot
from ksmtop.remote import unavailable_remotely
from ksmtop.rows import find_row
from ksmtop.sampler import History
from ksmtop.tui.widgets.details import GuestDetails
from ksmtop.tui.widgets.graphs import Graphs
from ksmtop.tui.widgets.guests import GuestTable
from ksmtop.tui.widgets.summary import Summary
from ksmtop.tui.widgets.timeline import Timeline
from ksmtop.tui.widgets.tunables import TunablesPanel

TRADE_WINDOW = 3600  # samples: an hour at 1 s


class MainScreen(Screen[None]):
    """Draws snapshots; knows nothing about where they come from."""

    class Ready(Message):
        """Posted once the widgets are mounted."""

    def compose(self) -> ComposeResult:
        yield Summary(id="summary")
        yield Static("", id="banner")
        with Horizontal(id="main"):
            with Vertical(id="left"):
                yield GuestTable(id="guests")
                yield Input(placeholder="filter by name (Esc clears)", id="filter")
                yield GuestDetails(id="details")
                with Horizontal(id="history"):
                    yield Graphs(id="graphs")
                    yield Timeline(id="timeline")
            with Vertical(id="right"):
                yield TunablesPanel(id="tunables")
        yield Static("", id="status")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#banner", Static).display = False
        self.query_one(GuestTable).focus()
        self.post_message(self.Ready())

    def show(
        self,
        snapshot: Snapshot,
        history: History,
        source: str,
        selected_key: str | None,
        control: str = "",
        insight: str = "",
    ) -> None:
        self.query_one(Summary).show(snapshot, source, history)
        self.query_one(GuestTable).show(snapshot)
        panel = self.query_one(TunablesPanel)
        missing = [name for name in KNOBS if name not in snapshot.ksm.values]
        panel.unavailable = unavailable_remotely(missing) if snapshot.mode == "remote" else {}
        panel.show(snapshot.ksm)
        self.query_one(TunablesPanel).show_trade(trade(list(history)[-TRADE_WINDOW:]))
        self.query_one(Timeline).show(history.events())
        self.show_selected(snapshot, history, selected_key, control, insight)

    def show_selected(
        self, snapshot: Snapshot, history: History, selected_key: str | None, control: str = "", insight: str = ""
    ) -> None:
        row = find_row(snapshot, selected_key)
        self.query_one(GuestDetails).show(row, snapshot, control, insight)
        self.query_one(Graphs).plot(history, row.guest.pid if row is not None and row.guest is not None else None)

    def set_banner(self, messages: list[str]) -> None:
        banner = self.query_one("#banner", Static)
        banner.update("\n".join(messages))
        banner.display = bool(messages)

    def set_status(self, text: str) -> None:
        self.query_one("#status", Static).update(text)

    def show_filter(self) -> None:
        field = self.query_one("#filter", Input)
        field.display = True
        field.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "filter":
            self.query_one(GuestTable).set_filter(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "filter":
            self.query_one(GuestTable).focus()

    def on_key(self, event: object) -> None:
        field = self.query_one("#filter", Input)
        if getattr(event, "key", "") == "escape" and field.has_focus:
            field.value = ""
            field.display = False
            self.query_one(GuestTable).focus()
