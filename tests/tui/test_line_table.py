"""LineTable, the line-by-line table of the screen: what a sample that changes a few cells costs it."""

from __future__ import annotations

from textual.app import App, ComposeResult

from ksmtop.tui.widgets.line_table import LineTable, TableColumn, TableRow

COLUMNS = (TableColumn("name", "Name"), TableColumn("rss", "RSS", right=True), TableColumn("cpu", "CPU%", right=True))


class OneTable(App):
    def compose(self) -> ComposeResult:
        yield LineTable(COLUMNS)


def rows(*cells: tuple[str, str, str]) -> list[TableRow]:
    return [TableRow(cell[0], cell) for cell in cells]


async def test_widths_only_grow_so_a_shorter_figure_moves_no_column_and_costs_no_layout():
    app = OneTable()
    async with app.run_test(size=(60, 6)) as pilot:
        table = app.query_one(LineTable)
        table.set_rows(rows(("lab-1", "189 MiB", "12.5%"), ("lab-2", "190 MiB", "2.0%")))
        await pilot.pause()
        wide = table.virtual_size
        header = table.render_line(0).text
        layouts = []
        original = table.refresh

        def refresh(*regions, **kwargs):
            if kwargs.get("layout"):
                layouts.append(regions)
            return original(*regions, **kwargs)

        table.refresh = refresh  # type: ignore[method-assign]
        table.set_rows(rows(("lab-1", "89 MiB", "2.5%"), ("lab-2", "90 MiB", "0.0%")))  # every figure shorter
        await pilot.pause()
        assert table.virtual_size == wide and layouts == []
        assert table.render_line(0).text == header  # the columns did not move
        assert table.render_line(1).text.rstrip() == " lab-1   89 MiB   2.5%"  # right-aligned in the old widths
        table.set_rows(rows(("lab-1", "1189 MiB", "100.0%"), ("lab-2", "90 MiB", "0.0%")))  # wider: they grow
        await pilot.pause()
        assert table.virtual_size.width == wide.width + 2
        table.set_rows([])
        table.set_columns(COLUMNS[:2])  # other columns: measured anew
        table.set_rows([TableRow("lab-1", ("lab-1", "1 MiB"))])
        await pilot.pause()
        assert table.render_line(1).text.rstrip() == " lab-1  1 MiB"
