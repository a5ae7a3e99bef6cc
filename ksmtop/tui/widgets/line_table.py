"""A light table for figures that change every second: Textual's Line API, one Strip per line, redrawn only
where a row changed.

DataTable re-renders every visible cell whenever any cell changes (its caches are keyed by an update counter),
and clearing and re-adding rows costs more. Here the owner hands over whole rows of already formatted text once
per sample (``set_rows``); the table compares them with what it shows and refreshes only the lines that differ.
The cursor, when there is one, belongs to the owner: the table moves it on keys and clicks and says so with a
message, and the owner may move it back (``move_cursor``).

Text in the cells is shown as it is (never parsed as markup); names from outside are made safe before they get
here (ksmtop/safetext.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

PADDING = 1
"""Blank cells each side of a column."""


@dataclass(frozen=True, slots=True)
class TableColumn:
    key: str
    label: str
    right: bool = False
    """Right-justified (numbers)."""
    min_width: int = 0


@dataclass(frozen=True, slots=True)
class TableRow:
    key: str
    cells: tuple[str, ...]
    style: str = ""
    """A component suffix for the whole row: "" (plain), "dim", "error", "warning", "ok"."""


@dataclass(frozen=True, slots=True)
class RowKey:
    """What ``rows`` yields: DataTable's shape (``.value``), so callers can treat both alike."""

    value: str


class TableMessage(Message):
    """A message from a LineTable (``control`` lets handlers filter by widget, as Textual's own do)."""

    def __init__(self, table: LineTable) -> None:
        super().__init__()
        self.table = table

    @property
    def control(self) -> LineTable:
        return self.table


class LineTable(ScrollView, can_focus=True):
    COMPONENT_CLASSES = {
        "line-table--header",
        "line-table--even",
        "line-table--cursor",
        "line-table--dim",
        "line-table--error",
        "line-table--warning",
        "line-table--ok",
    }
    DEFAULT_CSS = """
    LineTable {
        background: $surface;
        color: $foreground;
        height: auto;
        max-height: 100%;
        &:focus { background-tint: $foreground 5%; }
        & > .line-table--header { text-style: bold; background: $panel; color: $foreground; }
        & > .line-table--even { background: $surface-lighten-1 50%; }
        &:dark > .line-table--even { background: $surface-darken-1 40%; }
        & > .line-table--cursor {
            background: $block-cursor-blurred-background;
            color: $block-cursor-blurred-foreground;
            text-style: $block-cursor-blurred-text-style;
        }
        &:focus > .line-table--cursor {
            background: $block-cursor-background;
            color: $block-cursor-foreground;
            text-style: $block-cursor-text-style;
        }
        & > .line-table--dim { color: $text-muted; }
        & > .line-table--error { color: $text-error; text-style: bold; }
        & > .line-table--warning { color: $text-warning; }
        & > .line-table--ok { color: $text-success; }
    }
    """
    BINDINGS = [
        Binding("up", "cursor(-1)", "Up", show=False),
        Binding("down", "cursor(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home", "cursor_to(0)", "First", show=False),
        Binding("end", "cursor_to(-1)", "Last", show=False),
        Binding("enter", "activate", "Select", show=False),
    ]

    class CursorMoved(TableMessage):
        """The user moved the cursor to the row ``key`` (None: no rows)."""

        def __init__(self, table: LineTable, key: str | None) -> None:
            super().__init__(table)
            self.key = key

    class HeaderClicked(TableMessage):
        def __init__(self, table: LineTable, column: str) -> None:
            super().__init__(table)
            self.column = column

    class Activated(TableMessage):
        """Enter on the row ``key``."""

        def __init__(self, table: LineTable, key: str) -> None:
            super().__init__(table)
            self.key = key

    def __init__(
        self,
        columns: Sequence[TableColumn] = (),
        *,
        show_header: bool = True,
        cursor: bool = True,
        zebra: bool = True,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.show_header = show_header
        self.has_cursor = cursor
        self.can_focus = cursor
        self.zebra = zebra
        self._columns: tuple[TableColumn, ...] = tuple(columns)
        self._labels: tuple[str, ...] = tuple(column.label for column in columns)
        self._rows: list[TableRow] = []
        self._index: dict[str, int] = {}
        self._widths: tuple[int, ...] = ()
        self._lines: dict[int, Strip] = {}
        self._header: Strip | None = None
        self._styles: dict[tuple[str, ...], Style] = {}
        """The widget's style plus component styles, by component names: worked out once per rendering pass
        (DOMNode.rich_style walks every ancestor; a pass draws many lines)."""
        self.cursor_row = 0
        self._measure()

    # --- what the owner calls -----------------------------------------------------------------------------
    @property
    def header_height(self) -> int:
        return 1 if self.show_header else 0

    def set_columns(self, columns: Sequence[TableColumn]) -> None:
        self._columns = tuple(columns)
        self._labels = tuple(column.label for column in columns)
        self._widths = ()  # measured anew for these columns
        self._measure()
        self._redraw_all()

    def set_labels(self, labels: Sequence[str]) -> None:
        """New header labels (a sort mark): only the header line is redrawn, unless widths change."""
        labels = tuple(labels)
        if labels == self._labels:
            return
        self._labels = labels
        if self._measure():
            self._redraw_all()
        else:
            self._header = None
            if self.show_header:
                self.refresh(Region(0, 0, self.size.width, 1))

    def set_rows(self, rows: Sequence[TableRow], cursor_key: str | None = None) -> None:
        """Show these rows; only lines that differ from what is shown are redrawn. ``cursor_key``: put the
        cursor on that row (else it stays at its index, clamped)."""
        rows = list(rows)
        old = self._rows
        self._rows = rows
        self._index = {row.key: index for index, row in enumerate(rows)}
        cursor = self._index.get(cursor_key, self.cursor_row) if cursor_key is not None else self.cursor_row
        cursor = max(0, min(cursor, len(rows) - 1)) if rows else 0
        widths_changed = self._measure()
        if len(rows) != len(old) or widths_changed:
            self.virtual_size = Size(self._total_width(), len(rows) + self.header_height)
        if widths_changed:
            self.cursor_row = cursor
            self._redraw_all()
            self._scroll_to_cursor()
            return
        changed = [index for index in range(max(len(rows), len(old))) if _differs(rows, old, index)]
        if cursor != self.cursor_row:
            changed += [self.cursor_row, cursor]
            self.cursor_row = cursor
            self._scroll_to_cursor()
        for index in changed:
            self._lines.pop(index, None)
        self._refresh_rows(changed)

    def move_cursor(self, *, row: int, scroll: bool = True) -> None:
        """Put the cursor on row index ``row`` and say so (CursorMoved), as a key press would."""
        self._move(row, scroll=scroll, announce=True)

    @property
    def cursor_key(self) -> str | None:
        return self._rows[self.cursor_row].key if self._rows and 0 <= self.cursor_row < len(self._rows) else None

    @property
    def rows(self) -> list[RowKey]:
        return [RowKey(row.key) for row in self._rows]

    @property
    def row_count(self) -> int:
        return len(self._rows)

    def get_cell(self, row_key: str | RowKey, column_key: str) -> str:
        key = row_key.value if isinstance(row_key, RowKey) else row_key
        row = self._rows[self._index[key]]
        return row.cells[self._column_index(column_key)]

    def get_row_at(self, index: int) -> list[str]:
        return list(self._rows[index].cells)

    def row(self, key: str) -> TableRow | None:
        index = self._index.get(key)
        return None if index is None else self._rows[index]

    # --- drawing ------------------------------------------------------------------------------------------
    def _column_index(self, key: str) -> int:
        for index, column in enumerate(self._columns):
            if column.key == key:
                return index
        raise KeyError(key)

    def _measure(self) -> bool:
        """Column widths from the labels and cells; True when they changed. Widths only grow (until the columns
        change): a figure that gets a digit shorter must not move every column after it, and a width change
        costs a layout and a redraw of the whole table."""
        widths = [
            max(column.min_width, cell_len(label)) for column, label in zip(self._columns, self._labels, strict=True)
        ]
        if len(self._widths) == len(widths):
            widths = [max(old, new) for old, new in zip(self._widths, widths, strict=True)]
        for row in self._rows:
            for index, cell in enumerate(row.cells[: len(widths)]):
                length = len(cell) if cell.isascii() else cell_len(cell)
                if length > widths[index]:
                    widths[index] = length
        new = tuple(widths)
        if new == self._widths:
            return False
        self._widths = new
        return True

    def _total_width(self) -> int:
        return sum(width + 2 * PADDING for width in self._widths)

    def _line_text(self, cells: Sequence[str]) -> str:
        parts = []
        pad = " " * PADDING
        for column, width, cell in zip(self._columns, self._widths, cells, strict=False):
            length = len(cell) if cell.isascii() else cell_len(cell)
            if length > width:
                cell, length = set_cell_size(cell, width), width
            gap = " " * (width - length)
            parts.append(pad + (gap + cell if column.right else cell + gap) + pad)
        return "".join(parts)

    def _redraw_all(self) -> None:
        self._lines.clear()
        self._header = None
        self.virtual_size = Size(self._total_width(), len(self._rows) + self.header_height)
        self.refresh()

    def _refresh_rows(self, indexes: Sequence[int]) -> None:
        if not indexes or not self.size.height:
            return
        top = self.scroll_offset.y
        visible = self.size.height - self.header_height
        lines = sorted({index - top + self.header_height for index in indexes if 0 <= index - top < visible})
        if not lines:
            return
        width = self.size.width
        self.refresh(*[Region(0, y, width, 1) for y in lines])

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        scroll_x, scroll_y = self.scroll_offset
        if self.show_header and y == 0:
            style = self._style("line-table--header")
            if self._header is None:
                self._header = Strip([Segment(self._line_text(self._labels), style)])
            strip = self._header
        else:
            index = y - self.header_height + scroll_y
            if not 0 <= index < len(self._rows):
                return Strip.blank(width, self._style())
            strip = self._lines.get(index)
            style = self._row_style(index)
            if strip is None:
                row = self._rows[index]
                strip = self._lines[index] = Strip([Segment(self._line_text(row.cells), style)])
        return strip.crop(scroll_x, scroll_x + width).extend_cell_length(width, style)

    def _row_style(self, index: int) -> Style:
        components = []
        if self.zebra and index % 2 == 0:
            components.append("line-table--even")
        row_style = self._rows[index].style
        if row_style:
            components.append(f"line-table--{row_style}")
        if self.has_cursor and index == self.cursor_row:
            components.append("line-table--cursor")
        return self._style(*components)

    def _style(self, *components: str) -> Style:
        style = self._styles.get(components)
        if style is None:
            style = self.rich_style
            for component in components:
                style += self.get_component_rich_style(component)
            self._styles[components] = style
        return style

    def notify_style_update(self) -> None:
        """Textual calls this whenever this widget's CSS is applied again (a theme change, a pseudo-class such as
        :focus): the styles and the lines drawn with them are worked out anew. Until then they are kept, since
        working out a component's style walks every ancestor (a fifth of a millisecond each)."""
        super().notify_style_update()
        self._styles.clear()
        self._lines.clear()
        self._header = None

    def _on_focus(self, event: events.Focus) -> None:
        self._lines.pop(self.cursor_row, None)
        self._refresh_rows([self.cursor_row])

    def _on_blur(self, event: events.Blur) -> None:
        self._lines.pop(self.cursor_row, None)
        self._refresh_rows([self.cursor_row])

    # --- the cursor ---------------------------------------------------------------------------------------
    def _move(self, row: int, *, scroll: bool = True, announce: bool = True) -> None:
        if not self._rows or not self.has_cursor:
            return
        row = max(0, min(row, len(self._rows) - 1))
        if row != self.cursor_row:
            old, self.cursor_row = self.cursor_row, row
            self._lines.pop(old, None)
            self._lines.pop(row, None)
            self._refresh_rows([old, row])
        if scroll:
            self._scroll_to_cursor()
        if announce:
            self.post_message(self.CursorMoved(self, self.cursor_key))

    def _scroll_to_cursor(self) -> None:
        visible = max(1, self.size.height - self.header_height)
        top = self.scroll_offset.y
        if self.cursor_row < top:
            self.scroll_to(y=self.cursor_row, animate=False)
        elif self.cursor_row >= top + visible:
            self.scroll_to(y=self.cursor_row - visible + 1, animate=False)

    def action_cursor(self, step: int) -> None:
        self._move(self.cursor_row + step)

    def action_page(self, direction: int) -> None:
        self._move(self.cursor_row + direction * max(1, self.size.height - self.header_height - 1))

    def action_cursor_to(self, row: int) -> None:
        self._move(len(self._rows) - 1 if row < 0 else row)

    def action_activate(self) -> None:
        key = self.cursor_key
        if key is not None and self.has_cursor:
            self.post_message(self.Activated(self, key))

    async def _on_click(self, event: events.Click) -> None:
        x = event.x + self.scroll_offset.x
        if self.show_header and event.y == 0:
            edge = 0
            for column, width in zip(self._columns, self._widths, strict=True):
                edge += width + 2 * PADDING
                if x < edge:
                    self.post_message(self.HeaderClicked(self, column.key))
                    return
            return
        index = event.y - self.header_height + self.scroll_offset.y
        if 0 <= index < len(self._rows):
            self._move(index)


def _differs(new: list[TableRow], old: list[TableRow], index: int) -> bool:
    if index >= len(new) or index >= len(old):
        return True
    return new[index] != old[index]
