"""Helpers for driving the real app with Textual's Pilot."""

from __future__ import annotations

import time
from collections.abc import Callable

from textual.pilot import Pilot


async def wait_until(
    pilot: Pilot, predicate: Callable[[], object], timeout: float = 30.0, explain: Callable[[], str] | None = None
) -> object:
    """Let the app run until predicate() is truthy; fail with a clear message otherwise (``explain()``: what the
    screen showed, so a failure says why without a rerun)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        await pilot.pause(0.1)
    raise AssertionError(
        f"condition not met within {timeout} s" + (f"; the screen showed:\n{explain()}" if explain else "")
    )


def cell_text(table, row_key: str, column_key: str) -> str:
    return str(table.get_cell(row_key, column_key))


def widget_text(widget) -> str:
    """What a Static or a LinesView shows, as plain text (Rich renderables included)."""
    from rich.console import Console

    from ksmtop.tui.widgets.lines import LinesView

    if isinstance(widget, LinesView):
        return widget.text
    console = Console(width=200, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(widget.content)
    return console.export_text()
