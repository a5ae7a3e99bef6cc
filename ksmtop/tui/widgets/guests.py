"""The guest table: one row per guest, sortable by any column, filtered by name."""

from __future__ import annotations

from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable

from ksmtop.model import Snapshot
from ksmtop.rows import GuestRow, guest_rows
from ksmtop.tui.columns import BY_KEY, COLUMN_KEYS, COLUMNS


def sort_rows(rows: list[GuestRow], key: str, reverse: bool, page_size: int, name_filter: str = "") -> list[GuestRow]:
    """Rows filtered by a case-insensitive name substring and sorted by a column (unknown values last)."""
    column = BY_KEY[key]
    needle = name_filter.casefold()
    chosen = [row for row in rows if needle in row.name.casefold()] if needle else list(rows)
    known = [row for row in chosen if column.value(row, page_size) is not None]
    unknown = [row for row in chosen if column.value(row, page_size) is None]

    def sort_value(row: GuestRow) -> tuple[object, str]:
        value = column.value(row, page_size)
        return (value.casefold() if isinstance(value, str) else value, row.key)

    known.sort(key=sort_value, reverse=reverse)
    return known + sorted(unknown, key=lambda row: (row.pid is None, row.pid or 0, row.name.casefold()))


class GuestTable(DataTable):
    """Rows keyed by PID (or domain:UUID for a domain with no process here); the selection follows the guest,
    not the row number, as the order changes."""

    BINDINGS = [
        Binding("less_than_sign", "sort_step(-1)", "Sort ←", show=False),
        Binding("greater_than_sign", "sort_step(1)", "Sort →", show=False),
        Binding("I", "invert", "Invert", show=False),
        Binding("M", "sort_by('rss_bytes')", "Sort RSS", show=False),
        Binding("P", "sort_by('cpu_percent')", "Sort CPU", show=False),
        Binding("K", "sort_by('ksm_merging_pages')", "Sort merged", show=False),
        Binding("F", "sort_by('faults_per_s')", "Sort faults", show=False),
        Binding("N", "sort_by('name')", "Sort name", show=False),
    ]

    class Selected(Message):
        """The highlighted row changed (key None: no row; pid None: a domain with no process here)."""

        def __init__(self, key: str | None, pid: int | None) -> None:
            super().__init__()
            self.key = key
            self.pid = pid

    def __init__(self, **kwargs: object) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)  # type: ignore[arg-type]
        self.sort_key = "ksm_merging_pages"
        self.sort_reverse = True
        self.name_filter = ""
        self.selected_key: str | None = None
        self._selected_domain: str | None = None
        self._rows: dict[str, GuestRow] = {}
        self._snapshot: Snapshot | None = None
        self._refreshing = False

    def on_mount(self) -> None:
        for column in COLUMNS:
            self.add_column(column.label, key=column.key)
        self._update_labels()

    def show(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot
        self._rebuild()

    def _rebuild(self) -> None:
        snapshot = self._snapshot
        if snapshot is None:
            return
        page = snapshot.host.page_size
        rows = sort_rows(guest_rows(snapshot), self.sort_key, self.sort_reverse, page, self.name_filter)
        self._rows = {row.key: row for row in rows}
        previous_key = self.selected_key
        # The row under the cursor is what the user sees selected, even if its highlight event is still queued.
        under_cursor = self._key_at_cursor()
        if under_cursor is not None:
            self.selected_key = under_cursor
        self._refreshing = True
        try:
            self.clear()
            for row in rows:
                cells = []
                for column in COLUMNS:
                    shown = column.show(column.value(row, page))
                    style = "dim" if row.guest is None and row.domain is not None and not row.domain.running else ""
                    cells.append(Text(shown, style=style, justify="right" if column.numeric else "left"))
                self.add_row(*cells, key=row.key)
            keys = [row.key for row in rows]
            if self.selected_key not in keys and self._selected_domain is not None:
                # a domain that started (or stopped) changes key between domain:UUID and its PID: follow it
                self.selected_key = next(
                    (row.key for row in rows if row.domain and row.domain.uuid == self._selected_domain), None
                )
            if self.selected_key in keys:
                self.move_cursor(row=keys.index(self.selected_key), scroll=False)
            elif keys:
                self.move_cursor(row=0)
        finally:
            self._refreshing = False
        new_key = rows[self.cursor_row].key if rows and 0 <= self.cursor_row < len(rows) else None
        if new_key != previous_key:
            self._select(new_key)

    def _key_at_cursor(self) -> str | None:
        if not self.row_count or not 0 <= self.cursor_row < self.row_count:
            return None
        return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value

    def _select(self, key: str | None) -> None:
        self.selected_key = key
        row = self._rows.get(key) if key is not None else None
        self._selected_domain = row.domain.uuid if row is not None and row.domain is not None else None
        self.post_message(self.Selected(key, row.pid if row is not None else None))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        if self._refreshing:
            return
        key = event.row_key.value
        if key != self.selected_key:
            self._select(key)

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        event.stop()
        self.action_sort_by(str(event.column_key.value))

    def set_filter(self, text: str) -> None:
        self.name_filter = text
        self._rebuild()

    def action_sort_by(self, key: str) -> None:
        if key == self.sort_key:
            self.sort_reverse = not self.sort_reverse
        else:
            self.sort_key = key
            self.sort_reverse = BY_KEY[key].numeric
        self._update_labels()
        self._rebuild()

    def action_sort_step(self, step: int) -> None:
        index = (COLUMN_KEYS.index(self.sort_key) + step) % len(COLUMN_KEYS)
        self.sort_key = COLUMN_KEYS[index]
        self.sort_reverse = BY_KEY[self.sort_key].numeric
        self._update_labels()
        self._rebuild()

    def action_invert(self) -> None:
        self.sort_reverse = not self.sort_reverse
        self._update_labels()
        self._rebuild()

    def _update_labels(self) -> None:
        for column in COLUMNS:
            label = column.label
            if column.key == self.sort_key:
                label += " ▼" if self.sort_reverse else " ▲"
            self.columns[column.key].label = Text(label, style="bold" if column.key == self.sort_key else "")
        self.refresh()
