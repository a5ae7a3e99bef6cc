"""The sharing matrix worker fails (no memory, an I/O error): the matrix screen says so and the app lives on."""

from __future__ import annotations

import os

import pytest
from textual.app import App

from ksmtop.collect.pagemap import SharingReport
from ksmtop.tui.screens import sharing as sharing_screen
from ksmtop.tui.screens.sharing import SharingScreen
from tests.tui.conftest import wait_until, widget_text


class Host(App):
    def on_mount(self) -> None:
        self.push_screen(SharingScreen([os.getpid()], {os.getpid(): "me"}, os.sysconf("SC_PAGE_SIZE")))


@pytest.mark.parametrize(
    ("error", "words"),
    [
        (MemoryError(), "sharing matrix failed: MemoryError"),
        (OSError(5, "Input/output error"), "sharing matrix failed: OSError: [Errno 5] Input/output error"),
        (ValueError("\x1b]0;TITLE\x07 [@click=app.quit]"), "ValueError: \\x1b]0;TITLE\\x07 [@click=app.quit]"),
    ],
)
async def test_a_failing_matrix_worker_is_shown_in_the_matrix_screen(monkeypatch, error, words):
    calls = []

    def failing(*args, **kwargs) -> SharingReport:
        calls.append(args)
        if len(calls) == 1:
            raise error
        return SharingReport(())

    monkeypatch.setattr(sharing_screen, "sharing", failing)
    app = Host()
    async with app.run_test(size=(120, 30)) as pilot:
        screen = await wait_until(pilot, lambda: isinstance(app.screen, SharingScreen) and app.screen)
        status = screen.query_one("#sharing-status")
        await wait_until(pilot, lambda: "failed" in widget_text(status), timeout=10)
        assert words in widget_text(status)
        assert screen.report is not None and screen.report.error.startswith("sharing matrix failed")
        await pilot.press("r")  # the next computation works again
        await wait_until(pilot, lambda: "failed" not in widget_text(status), timeout=10)
        assert app.is_running
    assert app.return_code in (0, None)
