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
BY_KEY = {column.key: column for column in GUEST_COLUMNS}


class GuestTable(LineTable):
    """Rows keyed by PID (or domain:UUID for a domain with no process here)."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(GUEST_COLUMNS, **kwargs)  # type: ignore[arg-type]
        self.sort_key = "ksm_merging_pages"
        self.sort_reverse = True
        self._keys: tuple[str, ...] = tuple(column.key for column in GUEST_COLUMNS)

    def show(
        self,
        rows: Sequence[TableRow],
        selected: str | None,
        labels: Sequence[str],
        sort_key: str,
        reverse: bool,
        columns: Sequence[str] | None = None,
    ) -> None:
        self.sort_key, self.sort_reverse = sort_key, reverse
        keys = tuple(columns) if columns is not None else self._keys
        if keys != self._keys:  # the user chose other columns: a new header, every line redrawn
            self._keys = keys
            self.set_columns([BY_KEY[key] for key in keys])
        self.set_labels(labels)
        self.set_rows(rows, cursor_key=selected)

    @property
    def selected_key(self) -> str | None:
        return self.cursor_key
