"""The guest table: one row per guest, sortable by any column, filtered by name."""

from __future__ import annotations

from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable

from ksmtop.model import GuestSample, Snapshot
from ksmtop.tui.columns import BY_KEY, COLUMN_KEYS, COLUMNS


def sort_guests(
    guests: tuple[GuestSample, ...], key: str, reverse: bool, page_size: int, name_filter: str = ""
) -> list[GuestSample]:
    """Guests filtered by a case-insensitive name substring and sorted by a column (unknown values last)."""
    column = BY_KEY[key]
    needle = name_filter.casefold()
    chosen = [g for g in guests if needle in g.name.casefold()] if needle else list(guests)
    known = [g for g in chosen if column.value(g, page_size) is not None]
    unknown = [g for g in chosen if column.value(g, page_size) is None]

    def sort_value(guest: GuestSample) -> tuple[object, int]:
        value = column.value(guest, page_size)
        return (value.casefold() if isinstance(value, str) else value, guest.pid)

    known.sort(key=sort_value, reverse=reverse)
    return known + sorted(unknown, key=lambda g: g.pid)


class GuestTable(DataTable):
    """Rows keyed by PID; the selection follows the guest, not the row number, as the order changes."""

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
        """The highlighted guest changed (pid None: no guest)."""

        def __init__(self, pid: int | None) -> None:
            super().__init__()
            self.pid = pid

    def __init__(self, **kwargs: object) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)  # type: ignore[arg-type]
        self.sort_key = "ksm_merging_pages"
        self.sort_reverse = True
        self.name_filter = ""
        self.selected_pid: int | None = None
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
        rows = sort_guests(snapshot.guests, self.sort_key, self.sort_reverse, page, self.name_filter)
        self._refreshing = True
        try:
            self.clear()
            for guest in rows:
                cells = []
                for column in COLUMNS:
                    shown = column.show(column.value(guest, page))
                    cells.append(Text(shown, justify="right") if column.numeric else Text(shown))
                self.add_row(*cells, key=str(guest.pid))
            pids = [g.pid for g in rows]
            if self.selected_pid in pids:
                self.move_cursor(row=pids.index(self.selected_pid), scroll=False)
            elif pids:
                self.move_cursor(row=0)
        finally:
            self._refreshing = False
        new_pid = rows[self.cursor_row].pid if rows and 0 <= self.cursor_row < len(rows) else None
        if new_pid != self.selected_pid:
            self.selected_pid = new_pid
            self.post_message(self.Selected(new_pid))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        if self._refreshing:
            return
        pid = int(event.row_key.value) if event.row_key.value is not None else None
        if pid != self.selected_pid:
            self.selected_pid = pid
            self.post_message(self.Selected(pid))

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
