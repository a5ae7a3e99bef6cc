"""The line widgets keep their styles between rendering passes (working one out walks every ancestor) and work
them out anew when Textual applies their CSS again: a theme change redraws every line in the new theme's colours,
and a focus change moves the cursor's colour."""

from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual.app import App, ComposeResult
from textual.strip import Strip

from ksmtop.tui.series import Series
from ksmtop.tui.widgets.graphs import Graphs
from ksmtop.tui.widgets.line_table import LineTable, TableColumn, TableRow
from ksmtop.tui.widgets.lines import LinesView


class ThreeWidgets(App):
    def compose(self) -> ComposeResult:
        yield LineTable((TableColumn("name", "Name"),), id="table")
        yield LinesView(id="lines")
        yield Graphs({"one": "One"}, id="graphs")


def first_style(strip: Strip) -> Style:
    return next(iter(strip)).style


def backgrounds(app: ThreeWidgets) -> dict[str, tuple[object, object]]:
    """Per widget: the background its first content line is drawn with, and the one its CSS gives it now."""
    table, lines, graphs = app.query_one(LineTable), app.query_one(LinesView), app.query_one(Graphs)
    return {
        "table": (first_style(table.render_line(2)).bgcolor, table.rich_style.bgcolor),  # line 1 holds the cursor
        "lines": (first_style(lines.render_line(0)).bgcolor, lines.rich_style.bgcolor),
        "graph label": (first_style(graphs.render_line(0)).bgcolor, graphs.rich_style.bgcolor),
        "graph bars": (first_style(graphs.render_line(1)).bgcolor, graphs.rich_style.bgcolor),
    }


async def test_a_theme_change_redraws_every_line_in_the_new_colours():
    app = ThreeWidgets()
    async with app.run_test(size=(40, 12)) as pilot:
        app.theme = "textual-dark"
        app.query_one(LineTable).set_rows([TableRow("a", ("a",)), TableRow("b", ("b",))])
        app.query_one(LinesView).show([Text("one line")])
        app.query_one(Graphs).plot({"one": ("One: 3", Series.of([1.0, 2.0, 3.0]))})
        await pilot.pause()
        dark = backgrounds(app)
        assert all(drawn == now for drawn, now in dark.values()), dark
        for _ in range(3):  # passes in between keep what they drew
            app.query_one(LinesView).refresh()
            await pilot.pause()
        assert backgrounds(app) == dark

        app.theme = "textual-light"
        await pilot.pause()
        await pilot.pause()
        light = backgrounds(app)
        assert all(drawn == now for drawn, now in light.values()), light
        assert all(light[name][0] != dark[name][0] for name in light), (dark, light)


async def test_the_cursor_row_changes_colour_with_focus():
    app = ThreeWidgets()
    async with app.run_test(size=(40, 12)) as pilot:
        table = app.query_one(LineTable)
        table.set_rows([TableRow("a", ("a",)), TableRow("b", ("b",))])
        table.focus()
        await pilot.pause()
        focused = first_style(table.render_line(1))
        app.set_focus(None)
        await pilot.pause()
        assert first_style(table.render_line(1)) != focused
        table.focus()
        await pilot.pause()
        assert first_style(table.render_line(1)) == focused
