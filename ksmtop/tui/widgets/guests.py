"""The guest table: one row per guest, as the View sorted, filtered and formatted it.

The table shows what it is given (attributes down) and says what the user did (messages up): the cursor moved,
a header was clicked. The sort order and the selection live in the View (ksmtop/tui/view.py); ``sort_key`` and
``sort_reverse`` here mirror them for whoever reads the table.
"""

from __future__ import annotations

from collections.abc import Sequence

from ksmtop.tui.columns import COLUMNS
from ksmtop.tui.widgets.line_table import LineTable, TableColumn, TableRow

GUEST_COLUMNS = tuple(TableColumn(column.key, column.label, right=column.numeric) for column in COLUMNS)


class GuestTable(LineTable):
    """Rows keyed by PID (or domain:UUID for a domain with no process here)."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(GUEST_COLUMNS, **kwargs)  # type: ignore[arg-type]
        self.sort_key = "ksm_merging_pages"
        self.sort_reverse = True

    def show(
        self, rows: Sequence[TableRow], selected: str | None, labels: Sequence[str], sort_key: str, reverse: bool
    ) -> None:
        self.sort_key, self.sort_reverse = sort_key, reverse
        self.set_labels(labels)
        self.set_rows(rows, cursor_key=selected)

    @property
    def selected_key(self) -> str | None:
        return self.cursor_key
