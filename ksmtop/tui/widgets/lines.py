"""Text that changes a little every second, redrawn line by line: the header, the details panel, the status line.

A Static re-renders all of its content whenever any of it changes. ``LinesView`` takes its content as a list of
Rich Text lines, wraps them to its width itself, and refreshes only the screen lines whose text or style
differ from what it shows; it asks for a layout only when the number of lines changes (its height is
``auto``). Text is shown as given: never parsed as markup.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.geometry import Region, Size
from textual.strip import Strip
from textual.widget import Widget

_Key = tuple[str, tuple[object, ...], object]


def _key(line: Text) -> _Key:
    return (line.plain, tuple(line.spans), line.style)


class LinesView(Widget):
    DEFAULT_CSS = """
    LinesView { height: auto; }
    """

    def __init__(self, *, wrap: bool = True, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.wrap = wrap
        self._lines: list[Text] = []
        self._keys: list[_Key] = []
        self._screen_lines: list[Text] = []
        self._strips: dict[int, Strip] = {}
        self._width = 0
        self._base: Style | None = None
        self._wraps: dict[_Key, list[Text]] = {}
        """The screen lines each line of the last show wrapped to (wrapping a long line costs more than
        building it): a line shown again as it was is not wrapped again."""
        self._wraps_width = 0

    @property
    def text(self) -> str:
        """What it shows, as plain text (tests, copies)."""
        return "\n".join(line.plain for line in self._lines)

    def show(self, lines: Sequence[Text]) -> None:
        keys = [_key(line) for line in lines]
        if keys == self._keys:
            return
        self._lines = list(lines)
        self._keys = keys
        self._rewrap()

    def _rewrap(self) -> None:
        width = self.content_size.width or self.size.width
        old = self._screen_lines
        new = self._wrapped(width) if width > 0 else list(self._lines)
        self._screen_lines = new
        self._width = width
        if len(new) != len(old) or not width:
            self._strips.clear()
            self.refresh(layout=True)
            return
        changed = [y for y, (a, b) in enumerate(zip(old, new, strict=True)) if _key(a) != _key(b)]
        for y in changed:
            self._strips.pop(y, None)
        if changed:
            self.refresh(*[Region(0, y, self.size.width, 1) for y in changed])

    def _wrapped(self, width: int) -> list[Text]:
        if not self.wrap:
            return [line for text in self._lines for line in text.split("\n", allow_blank=True)]
        console = _console(width)
        kept = self._wraps if self._wraps_width == width else {}
        wraps: dict[_Key, list[Text]] = {}
        lines: list[Text] = []
        for key, text in zip(self._keys, self._lines, strict=True):
            wrapped = wraps[key] = kept.get(key) or (
                text.wrap(console, width) if text.cell_len > width or "\n" in text.plain else [text]
            )
            lines.extend(wrapped)
        self._wraps, self._wraps_width = wraps, width
        return lines

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        if width != self._width:
            self._width = width
            self._screen_lines = self._wrapped(width) if width > 0 else list(self._lines)
            self._strips.clear()
        return len(self._screen_lines)

    def on_resize(self) -> None:
        if self.content_size.width != self._width:
            self._rewrap()

    def render_line(self, y: int) -> Strip:
        width = self.content_size.width
        if not 0 <= y < len(self._screen_lines):
            return Strip.blank(width, self._style())
        strip = self._strips.get(y)
        if strip is None:
            base = self._style()
            console = _console(max(width, 1))
            line = self._screen_lines[y]
            segments = [
                Segment(s.text, base + s.style if isinstance(s.style, Style) else base) for s in line.render(console)
            ]
            strip = self._strips[y] = Strip(segments).adjust_cell_length(width, base)
        return strip

    def _style(self) -> Style:
        if self._base is None:
            self._base = self.rich_style
        return self._base

    def notify_style_update(self) -> None:
        """Textual calls this whenever this widget's CSS is applied again (e.g. a theme change): the base style
        (it walks every ancestor) and the lines drawn with it are worked out anew; until then they are kept."""
        super().notify_style_update()
        self._base = None
        self._strips.clear()


_consoles: dict[int, Console] = {}


def _console(width: int) -> Console:
    """A console that renders Text to segments at a width (never writes anywhere)."""
    console = _consoles.get(width)
    if console is None:
        console = _consoles[width] = Console(
            width=width, file=_Discard(), color_system="truecolor", legacy_windows=False
        )
    return console


class _Discard:
    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass
