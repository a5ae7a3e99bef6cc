"""Choose the guest table's columns (like top's f): space ticks a column, Enter keeps the choice, Esc cancels."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, SelectionList
from textual.widgets.selection_list import Selection

from ksmtop.tui.columns import COLUMNS


class ColumnsScreen(ModalScreen[tuple[str, ...] | None]):
    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("enter", "keep", "Keep", priority=True)]
    DEFAULT_CSS = """
    ColumnsScreen { align: center middle; }
    ColumnsScreen > Vertical { width: 80; height: auto; max-height: 90%; border: thick $primary;
                               background: $surface; padding: 1 2; }
    ColumnsScreen SelectionList { height: auto; max-height: 24; }
    """

    def __init__(self, visible: Sequence[str]) -> None:
        super().__init__()
        self.shown = set(visible)

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Columns of the guest table: space shows or hides one, Enter keeps, Esc cancels (W saves)")
            yield SelectionList[str](
                *(
                    Selection(Text(f"{column.label:<12} {column.description}"), column.key, column.key in self.shown)
                    for column in COLUMNS
                    if column.key != "name"  # the name always shows: a row needs it
                ),
                id="column-choice",
            )

    def on_mount(self) -> None:
        self.query_one(SelectionList).focus()

    def action_keep(self) -> None:
        chosen = set(self.query_one(SelectionList).selected)
        self.dismiss(tuple(column.key for column in COLUMNS if column.key == "name" or column.key in chosen))

    def action_cancel(self) -> None:
        self.dismiss(None)
