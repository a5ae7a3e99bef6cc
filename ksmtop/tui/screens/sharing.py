"""Who shares with whom: pages every pair of guests maps to the same KSM page (pagemap + kpageflags).

Computed off the UI thread when the screen opens, on `r`, and every minute while it is shown; never per tick.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import DataTable, Label, Static

from ksmtop.format import human_bytes, human_count
from ksmtop.safetext import safe

if TYPE_CHECKING:
    from ksmtop.collect.pagemap import SharingReport

REFRESH_S = 60.0


class SharingScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape,q,m", "dismiss", "Close"),
        Binding("r", "recompute", "Recompute"),
        Binding("e", "exact", "Exact (slower)"),
    ]
    DEFAULT_CSS = """
    SharingScreen { align: center middle; }
    SharingScreen > Vertical { width: 95%; height: 90%; border: thick $primary; background: $surface; padding: 0 1; }
    SharingScreen DataTable { height: auto; max-height: 50%; margin-bottom: 1; }
    SharingScreen #sharing-status { color: $text-muted; }
    """

    class Computed(Message):
        def __init__(self, report: SharingReport) -> None:
            super().__init__()
            self.report = report

    def __init__(self, compute: Callable[[bool], SharingReport], page_size: int) -> None:
        """``compute(exact)``: the report (blocking: it runs in a worker)."""
        super().__init__()
        self.compute = compute
        self.page_size = page_size
        self.exact = False
        self.report: SharingReport | None = None

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Who shares with whom: KSM pages each pair of guests maps (pages; diagonal: within one guest)")
            yield DataTable(id="matrix", cursor_type="none")
            yield DataTable(id="per-guest", cursor_type="none")
            yield Static("computing…", id="sharing-status")

    def on_mount(self) -> None:
        self.action_recompute()
        self.set_interval(REFRESH_S, self.action_recompute)

    def action_recompute(self) -> None:
        self.query_one("#sharing-status", Static).update("computing…")
        self._compute(self.exact)

    def action_exact(self) -> None:
        self.exact = True
        self.action_recompute()

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(None)

    @work(thread=True, exclusive=True, group="sharing")
    def _compute(self, exact: bool) -> None:
        try:
            report = self.compute(exact)
        except Exception as exc:  # MemoryError, a vanished process, a bug: said in the screen, never fatal
            self.post_message(self.Failed(safe(f"the sharing matrix failed: {type(exc).__name__}: {exc}")))
            return
        self.post_message(self.Computed(report))

    class Failed(Message):
        def __init__(self, error: str) -> None:
            super().__init__()
            self.error = error

    def on_sharing_screen_failed(self, message: Failed) -> None:
        self.query_one("#sharing-status", Static).update(Text(message.error, style="red"))

    def on_sharing_screen_computed(self, message: Computed) -> None:
        report = self.report = message.report
        status = self.query_one("#sharing-status", Static)
        if report.error and not report.guests:
            status.update(Text(report.error, style="red"))
            return
        self._show_matrix(report)
        self._show_guests(report)
        mode = "exact: every page's flags read" if report.exact else "quick: pages mapped once on the host skipped"
        text = f"{len(report.guests)} guests in {report.elapsed_s * 1000:.0f} ms ({mode}); r recomputes, e exact"
        if report.error:
            text += f"; {report.error}"
        status.update(Text(text))

    def _show_matrix(self, report: SharingReport) -> None:
        table = self.query_one("#matrix", DataTable)
        table.clear(columns=True)
        table.add_column("")
        for guest in report.guests:
            table.add_column(Text(guest.name[:16]))
        for row, guest in zip(report.matrix(), report.guests, strict=True):
            cells = [Text(human_count(value), justify="right") for value in row]
            table.add_row(Text(guest.name[:24], style="bold"), *cells)

    def _show_guests(self, report: SharingReport) -> None:
        table = self.query_one("#per-guest", DataTable)
        table.clear(columns=True)
        for label in ("Guest", "Present", "Merged", "Distinct KSM", "Within guest", "Zero", "Unchecked", "Note"):
            table.add_column(label)
        for guest in report.guests:
            table.add_row(
                Text(guest.name[:24]),
                human_bytes(guest.present_pages * self.page_size),
                human_count(guest.merged_pages),
                human_count(guest.distinct_merged),
                human_count(guest.internal_pages),
                human_count(guest.zero_pages),
                human_count(guest.unchecked_pages),
                Text(guest.error or ""),
            )
