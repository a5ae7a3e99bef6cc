"""The header's lines are built part by part and made into a Text once (widgets/summary.py Line), and the line
view wraps only the lines that changed: both must draw exactly what building Rich Texts the plain way drew."""

from __future__ import annotations

from io import StringIO

from rich.console import Console
from rich.text import Text
from textual.app import App, ComposeResult

from ksmtop.tui.widgets.lines import LinesView
from ksmtop.tui.widgets.summary import Line

CONSOLE = Console(width=60, file=StringIO(), color_system="truecolor")


def drawn(text: Text) -> list[tuple[str, str]]:
    return [(segment.text, str(segment.style)) for segment in text.render(CONSOLE)]


def test_a_line_draws_as_the_texts_it_replaced():
    debt = Line("unmerge debt –", "dim")  # styles all of itself, as Text("…", "dim") did
    line = Line().append("KSM ", "bold").append("running", "bold green").append("   ").append(debt)
    plain = Text()
    plain.append("KSM ", "bold")
    plain.append("running", "bold green")
    plain.append("   ")
    plain.append(Text("unmerge debt –", "dim"))
    assert drawn(line.text()) == drawn(plain)

    merging = Line("Merging ", "bold").append("converging", "yellow").append("   scanned 82%")
    whole = Text("Merging ", "bold")
    whole.append("converging", "yellow")
    whole.append("   scanned 82%")
    assert drawn(merging.text()) == drawn(whole)  # the base style covers what was appended after it
    assert any(style == "bold" and text.startswith("   scanned") for text, style in drawn(merging.text()))


def test_terminal_control_in_a_part_is_dropped_as_text_append_drops_it():
    line = Line().append("name\x07\x08\x1b", "bold").append(" end")
    assert line.text().plain == Text("name\x07\x08\x1b").plain + " end" == "name\x1b end"
    assert drawn(line.text()) == drawn(Text.assemble(("name\x1b", "bold"), " end"))


class OneView(App):
    def compose(self) -> ComposeResult:
        yield LinesView()


async def test_only_changed_lines_are_wrapped_again(monkeypatch):
    wrapped: list[str] = []
    original = Text.wrap

    def counting(self, console, width, **kwargs):
        wrapped.append(self.plain)
        return original(self, console, width, **kwargs)

    monkeypatch.setattr(Text, "wrap", counting)
    app = OneView()
    long = "a long line " * 8
    async with app.run_test(size=(40, 10)) as pilot:
        view = app.query_one(LinesView)
        view.show([Text(long), Text("short"), Text("another " + long)])
        await pilot.pause()
        screen_lines = [view.render_line(y).text for y in range(6)]
        wrapped.clear()
        view.show([Text(long), Text("short, changed"), Text("another " + long)])
        assert wrapped == []  # the long lines are shown as they were: their wrapping is kept
        view.show([Text(long), Text("short, changed"), Text("another, changed " + long)])
        assert wrapped == ["another, changed " + long]
        await pilot.pause()
        assert [view.render_line(y).text for y in range(2)] == screen_lines[:2]
        wrapped.clear()
        await pilot.resize_terminal(30, 10)
        await pilot.pause()
        assert sorted(wrapped) == sorted([long, "another, changed " + long])  # a new width wraps all again
        assert all(len(view.render_line(y).text) == 30 for y in range(8))
