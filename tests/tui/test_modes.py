"""The app without KSM (fixture tree: a machine cannot drop its KSM on demand) and as a non-root user (real)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from ksmtop.live import LiveSource
from ksmtop.tui.app import KsmTopApp
from ksmtop.tui.widgets.guests import GuestTable
from tests.fixtures.tree import FakeRoot
from tests.support.nobody import run_as_nobody
from tests.tui.conftest import wait_until, widget_text

SIZE = (170, 48)


async def test_without_ksm_the_guest_list_still_works(tmp_path):
    root = FakeRoot(tmp_path, ksm=None)
    root.add_process(4242, "qemu-system-x86", ["qemu-system-x86_64", "-name", "guest=web-01,debug-threads=on"])
    app = KsmTopApp(LiveSource(root=tmp_path), interval=0.2)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.history.latest is not None)
        banner = widget_text(app.query_one("#banner"))
        assert "KSM unavailable" in banner and "does not exist" in banner
        assert app.query_one("#banner").display
        table = app.query_one(GuestTable)
        assert str(table.get_cell("4242", "name")) == "web-01"
        assert "without KSM" in widget_text(app.query_one("#knob-help"))
        assert "not available" in widget_text(app.query_one("#summary"))


def _run_as_nobody() -> dict:
    """Run the app in a forked child that drops root; imports are warmed up first (/root is not readable)."""

    async def drive(observe: bool) -> dict:
        app = KsmTopApp(LiveSource(), interval=0.2)
        seen: dict = {}
        async with app.run_test(size=SIZE) as pilot:
            for _ in range(100):
                if app.history.latest is not None:
                    break
                await pilot.pause(0.05)
            if observe:
                knobs = app.query_one("#knobs")
                seen["banner"] = widget_text(app.query_one("#banner"))
                seen["knobs_disabled"] = knobs.disabled
                seen["title"] = widget_text(app.query_one("#knobs-title"))
                seen["is_root"] = app.history.latest.is_root
                seen["summary"] = widget_text(app.query_one("#summary"))
                knobs.focus()
                await pilot.press("enter")
                seen["editor_open"] = app.query_one("#knob-input").has_class("editing")
                result = app.source.write_tunable("pages_to_scan", "1234")
                seen["write_ok"] = result.ok
                seen["write_message"] = result.message
        return seen

    return run_as_nobody(
        observe=lambda: asyncio.run(drive(observe=True)),
        warm_up=lambda: asyncio.run(drive(observe=False)),  # as root: every module the app needs gets imported
    )


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to nobody")
def test_non_root_is_read_only_with_a_banner(ksm_guard):  # the KSM lock: no other test moves the knob it reads
    before = Path("/sys/kernel/mm/ksm/pages_to_scan").read_text()
    seen = _run_as_nobody()
    assert "error" not in seen, seen
    assert seen["is_root"] is False
    assert "need root" in seen["summary"]  # why there are no perf figures
    assert "READ-ONLY" in seen["banner"] and "not root" in seen["banner"]
    assert seen["knobs_disabled"] is True
    assert "read-only" in seen["title"]
    assert seen["editor_open"] is False
    assert seen["write_ok"] is False
    assert "needs root" in seen["write_message"]
    assert Path("/sys/kernel/mm/ksm/pages_to_scan").read_text() == before


def test_the_screen_reads_no_file_of_ksmtop_once_imported(tmp_path):
    """A user with fewer rights than the one who imported ksmtop (the non-root test's child after it drops to
    nobody; a package directory it cannot read) must get a screen: after import, the app opens none of
    ksmtop's own files (the stylesheet is read when the module is imported)."""
    import subprocess
    import sys

    import ksmtop

    session = Path(__file__).parent / "data" / "session.jsonl"
    code = f"""
import asyncio, sys
from ksmtop.replay import ReplaySource
from ksmtop.tui.app import KsmTopApp
source = ReplaySource({str(session)!r})
opened = []
sys.addaudithook(lambda event, args: opened.append(str(args[0])) if event == "open" else None)
async def main():
    app = KsmTopApp(source, interval=0.1)
    async with app.run_test(size=(170, 48)) as pilot:
        await pilot.pause(1.0)
asyncio.run(main())
print("\\n".join(path for path in opened if path.startswith({str(Path(ksmtop.__file__).parent)!r})))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == ""
