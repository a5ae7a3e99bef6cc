"""The screen's state, worked out once per sample: the snapshot joined into rows once, filtered, sorted and
formatted once; the series of the sparklines kept as they grow; the selection in one place.

The app owns one View. A sample (``update``) or a choice of the user (sort, filter, selection) changes it;
the widgets then get the parts they show and redraw only what differs. No widget computes rows itself.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from ksmtop.format import human_bytes, human_count
from ksmtop.history import History
from ksmtop.model import Snapshot
from ksmtop.rows import GuestRow, guest_rows
from ksmtop.tui.columns import BY_KEY, COLUMN_KEYS, COLUMNS, Column
from ksmtop.tui.series import Series
from ksmtop.tui.widgets.line_table import TableRow

GRAPH_WINDOW = 600
"""Samples the sparklines show: ten minutes at 1 s."""


def sort_rows(rows: list[GuestRow], key: str, reverse: bool, page_size: int, name_filter: str = "") -> list[GuestRow]:
    """Rows filtered by a case-insensitive name substring and sorted by a column (unknown values last)."""
    column = BY_KEY[key]
    needle = name_filter.casefold()
    chosen = [row for row in rows if needle in row.name.casefold()] if needle else list(rows)
    keyed = [(column.value(row, page_size), row) for row in chosen]
    known = [(value, row) for value, row in keyed if value is not None]
    unknown = [row for value, row in keyed if value is None]

    def sort_value(item: tuple[object, GuestRow]) -> tuple[object, str]:
        value, row = item
        return (value.casefold() if isinstance(value, str) else value, row.key)

    known.sort(key=sort_value, reverse=reverse)
    unknown.sort(key=lambda row: (row.pid is None, row.pid or 0, row.name.casefold()))
    return [row for _, row in known] + unknown


def table_row(row: GuestRow, page_size: int, columns: tuple[Column, ...] = COLUMNS) -> TableRow:
    cells = tuple(column.show(column.value(row, page_size)) for column in columns)
    shut_off = row.guest is None and row.domain is not None and not row.domain.running
    return TableRow(row.key, cells, "dim" if shut_off else "")


@dataclass
class Selection:
    """The selected row: its key, and the libvirt domain it belongs to (so the selection follows a domain whose
    key changes from domain:UUID to its PID when it starts, and back when it stops)."""

    key: str | None = None
    domain_uuid: str | None = None


@dataclass
class View:
    """What the main screen shows, as of the latest sample."""

    sort_key: str = "ksm_merging_pages"
    sort_reverse: bool = True
    name_filter: str = ""
    columns: tuple[str, ...] = COLUMN_KEYS
    """The visible columns, in table order."""
    selection: Selection = field(default_factory=Selection)
    snapshot: Snapshot | None = None
    rows: dict[str, GuestRow] = field(default_factory=dict)
    """Every row of the latest sample by key (filtered or not)."""
    table: list[TableRow] = field(default_factory=list)
    """The rows the table shows, filtered, sorted and formatted."""

    def update(self, snapshot: Snapshot) -> None:
        """A new sample: join it into rows, then the table (keeps the selection on its guest)."""
        self.snapshot = snapshot
        self.rows = {row.key: row for row in guest_rows(snapshot)}
        self.rebuild_table()

    def rebuild_table(self) -> None:
        """Filter, sort and format the rows again (a sample, or a new sort or filter)."""
        snapshot = self.snapshot
        if snapshot is None:
            return
        page = snapshot.host.page_size
        ordered = sort_rows(list(self.rows.values()), self.sort_key, self.sort_reverse, page, self.name_filter)
        columns = self.visible_columns
        self.table = [table_row(row, page, columns) for row in ordered]
        self._follow(ordered)

    def _follow(self, ordered: list[GuestRow]) -> None:
        """Keep the selection on its row; a domain that started or stopped changed key: follow it; a row that
        left gives way to the first row."""
        selection = self.selection
        keys = {row.key for row in ordered}
        if selection.key in keys:
            return
        if selection.domain_uuid is not None:
            for row in ordered:
                if row.domain is not None and row.domain.uuid == selection.domain_uuid:
                    selection.key = row.key
                    return
        self.select(ordered[0].key if ordered else None)

    def select(self, key: str | None) -> bool:
        """Select the row ``key``; True when the selection changed."""
        if key == self.selection.key:
            return False
        row = self.rows.get(key) if key is not None else None
        self.selection = Selection(key, row.domain.uuid if row is not None and row.domain is not None else None)
        return True

    @property
    def selected(self) -> GuestRow | None:
        key = self.selection.key
        return self.rows.get(key) if key is not None else None

    @property
    def selected_pid(self) -> int | None:
        row = self.selected
        return row.guest.pid if row is not None and row.guest is not None else None

    def sort_by(self, key: str) -> None:
        """A column chosen (key, click): the same column again inverts the order."""
        if key == self.sort_key:
            self.sort_reverse = not self.sort_reverse
        else:
            self.sort_key = key
            self.sort_reverse = BY_KEY[key].numeric
        self.rebuild_table()

    def sort_step(self, step: int) -> None:
        index = (COLUMN_KEYS.index(self.sort_key) + step) % len(COLUMN_KEYS)
        self.sort_key = COLUMN_KEYS[index]
        self.sort_reverse = BY_KEY[self.sort_key].numeric
        self.rebuild_table()

    def invert(self) -> None:
        self.sort_reverse = not self.sort_reverse
        self.rebuild_table()

    def filter(self, text: str) -> None:
        self.name_filter = text
        self.rebuild_table()

    @property
    def visible_columns(self) -> tuple[Column, ...]:
        return tuple(column for column in COLUMNS if column.key in self.columns or column.key == "name")

    def show_columns(self, keys: tuple[str, ...]) -> None:
        self.columns = tuple(key for key in COLUMN_KEYS if key in keys or key == "name")
        self.rebuild_table()

    def header_labels(self) -> list[str]:
        mark = " ▼" if self.sort_reverse else " ▲"
        return [column.label + (mark if column.key == self.sort_key else "") for column in self.visible_columns]


GRAPHS: tuple[tuple[str, str, Callable[[float], str]], ...] = (
    ("rss", "Guest RSS", human_bytes),
    ("saving", "KSM saving", human_bytes),
    ("selected", "Selected guest merged pages", human_count),
)
"""Each sparkline of the main screen: its name, its title, how its figures are written."""
GRAPH_TITLES = {name: title for name, title, _ in GRAPHS}


def coarse_span(seconds: float) -> str:
    """The span a graph covers, in steps (10 s, then minutes), so its label does not change every second."""
    if seconds < 60:
        return f"{max(10, round(seconds / 10) * 10):.0f} s"
    return f"{round(seconds / 60):.0f} min"


def label_text(title: str, show: Callable[[float], str], series: Series, seconds: float | None) -> str:
    """The line above a graph: the latest figure, the range, the span, and the baseline ("from 0")."""
    latest, low, high = series.latest, series.low, series.high
    if latest is None or low is None or high is None:
        return title
    span = f"{coarse_span(seconds)}, " if seconds else ""
    return f"{title}: {show(latest)}  min {show(low)}  max {show(high)}  ({span}from 0)"


class Trends:
    """The sparklines' series, kept as samples arrive (not rebuilt from the history every second)."""

    def __init__(self, window: int = GRAPH_WINDOW) -> None:
        self.window = window
        self.times: deque[float] = deque(maxlen=window)
        self.rss = Series(window)
        self.saving = Series(window)
        self.selected = Series(window)
        self.selected_pid: int | None = None

    def reset(self, history: History, pid: int | None) -> None:
        """Start again from a history (a replay jumped, or the selection changed)."""
        self.times.clear()
        self.rss.clear()
        self.saving.clear()
        self.selected.clear()
        self.selected_pid = pid
        snapshots = list(history)[-self.window :]
        for snapshot in snapshots:
            self.add(snapshot)

    def add(self, snapshot: Snapshot) -> None:
        self.times.append(snapshot.time)
        self.rss.append(float(snapshot.total_guest_rss_bytes))
        self.saving.append(float(snapshot.rates.saving_bytes or 0))
        if self.selected_pid is not None:
            guest = snapshot.guest(self.selected_pid)
            self.selected.append(float(guest.ksm_merging_pages or 0) if guest is not None else 0.0)

    def select(self, pid: int | None, history: History) -> None:
        if pid == self.selected_pid:
            return
        self.selected_pid = pid
        self.selected.clear()
        if pid is None:
            return
        merged: Callable[[Snapshot], float] = lambda s: float(getattr(s.guest(pid), "ksm_merging_pages", 0) or 0)  # noqa: E731
        self.selected.extend(merged(snapshot) for snapshot in list(history)[-self.window :])

    @property
    def seconds(self) -> float | None:
        return self.times[-1] - self.times[0] if len(self.times) > 1 else None

    def graphs(self) -> dict[str, tuple[str, Series | None]]:
        """What the main screen's Graphs show: per graph, its label and its series (no guest selected: none)."""
        seconds = self.seconds
        shown = {"rss": self.rss, "saving": self.saving, "selected": self.selected if self.selected_pid else None}
        graphs: dict[str, tuple[str, Series | None]] = {}
        for name, title, show in GRAPHS:
            series = shown[name]
            graphs[name] = (label_text(title, show, series, seconds) if series is not None else title, series)
        return graphs
