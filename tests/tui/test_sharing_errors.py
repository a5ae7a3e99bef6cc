"""The sharing matrix worker fails (no memory, an I/O error): the matrix screen says so and the app lives on."""

from __future__ import annotations

import os

import pytest
from textual.app import App

from ksmtop.collect.pagemap import SharingReport
from ksmtop.tui.screens.sharing import SharingScreen
from tests.tui.conftest import wait_until, widget_text


class Host(App):
    def __init__(self, compute) -> None:
        super().__init__()
        self.compute = compute

    def on_mount(self) -> None:
        self.push_screen(SharingScreen(self.compute, os.sysconf("SC_PAGE_SIZE")))


@pytest.mark.parametrize(
    ("error", "words"),
    [
        (MemoryError(), "sharing matrix failed: MemoryError"),
        (OSError(5, "Input/output error"), "sharing matrix failed: OSError: [Errno 5] Input/output error"),
        (ValueError("\x1b]0;TITLE\x07 [@click=app.quit]"), "ValueError: \\x1b]0;TITLE\\x07 [@click=app.quit]"),
    ],
)
async def test_a_failing_matrix_worker_is_shown_in_the_matrix_screen(error, words):
    calls = []

    def failing(exact: bool) -> SharingReport:
        calls.append(exact)
        if len(calls) == 1:
            raise error
        return SharingReport(())

    app = Host(failing)
    async with app.run_test(size=(120, 30)) as pilot:
        screen = await wait_until(pilot, lambda: isinstance(app.screen, SharingScreen) and app.screen)
        status = screen.query_one("#sharing-status")
        await wait_until(pilot, lambda: "failed" in widget_text(status), timeout=10)
        assert words in widget_text(status)
        await pilot.press("r")  # the next computation works again
        await wait_until(pilot, lambda: "failed" not in widget_text(status), timeout=10)
        assert app.is_running
    assert app.return_code in (0, None)
