"""The guest controls through the real screen (Pilot) on real lab guests: start, workload, hung agent, stop."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from ksmtop.control import GuestControls
from ksmtop.lab import Lab
from ksmtop.lab.qemu import QEMU_BINARY
from ksmtop.live import LiveSource
from ksmtop.tui.app import KsmTopApp
from ksmtop.tui.widgets.guests import GuestTable
from tests.tui.conftest import wait_until, widget_text

pytestmark = pytest.mark.guests
SIZE = (170, 48)
BOOT_S = 90  # TCG boot with two other guests running: ~5-15 s; generous for a loaded CI machine


def make_app(lab: Lab, stop_timeout: float = 15.0) -> KsmTopApp:
    source = LiveSource(
        controls=lambda on_event: GuestControls(lab, on_event=on_event, stop_timeout=stop_timeout, accel="tcg")
    )
    return KsmTopApp(source, interval=0.5)


def pids_on_screen(app: KsmTopApp) -> list[int]:
    return [int(row.value) for row in app.query_one(GuestTable).rows]


def row_name(app: KsmTopApp, pid: int) -> str:
    return str(app.query_one(GuestTable).get_cell(str(pid), "name"))


async def select(pilot, app: KsmTopApp, pid: int) -> None:
    table = app.query_one(GuestTable)
    table.focus()
    table.move_cursor(row=pids_on_screen(app).index(pid))
    await wait_until(
        pilot, lambda: app.selected_pid == pid and app.guests.control(app.view.selected) is not None, timeout=10
    )


def events(app: KsmTopApp, kind: str) -> list:
    return [event for event in app.history.events() if event.kind == kind]


async def start_from_screen(pilot, app: KsmTopApp, lab: Lab) -> int:
    before = set(pids_on_screen(app))

    def new_lab_rows() -> set[int]:
        return {p for p in set(pids_on_screen(app)) - before if row_name(app, p).startswith(lab.prefix + "-")}

    await pilot.press("s")
    assert app.screen.__class__.__name__ == "StartGuestScreen"
    await pilot.press("enter")  # 256 MiB, the next free name
    await wait_until(pilot, new_lab_rows, timeout=BOOT_S)
    (pid,) = new_lab_rows()
    await wait_until(pilot, lambda: events(app, "guest-start"), timeout=10)
    return pid


async def test_start_run_workload_and_stop_from_the_screen(lab: Lab):
    app = make_app(lab)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.history.latest is not None)
        pid = await start_from_screen(pilot, app, lab)
        await select(pilot, app, pid)
        await wait_until(pilot, lambda: app.guests.agent_status.get(str(pid)) == "ok", timeout=BOOT_S)

        await pilot.press("l")
        assert app.screen.__class__.__name__ == "WorkloadScreen"
        await pilot.press("down", "down", "down", "enter")  # idle, primes, fill-random, fill-same
        await pilot.press("ctrl+u", *"16", "enter")
        await wait_until(pilot, lambda: events(app, "workload-start"), timeout=20)
        assert "fill-same 16 MiB" in events(app, "workload-start")[-1].text
        await wait_until(pilot, lambda: events(app, "workload-end"), timeout=60)
        state = app.guests.workload_state[str(pid)]
        assert state.exitcode == 0 and not state.running
        assert "exit code 0" in app.guests.text_for(app.view.selected)
        assert "exit code 0" in widget_text(app.query_one("#timeline"))

        await pilot.press("k")
        await wait_until(pilot, lambda: pid not in pids_on_screen(app), timeout=60)
        await wait_until(pilot, lambda: events(app, "guest-stop"), timeout=10)
        assert "powered off" in events(app, "guest-stop")[-1].text


async def test_paused_guest_agent_times_out_while_the_screen_keeps_sampling(lab: Lab):
    app = make_app(lab, stop_timeout=5.0)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.history.latest is not None)
        pid = await start_from_screen(pilot, app, lab)
        await select(pilot, app, pid)
        await wait_until(pilot, lambda: app.guests.agent_status.get(str(pid)) == "ok", timeout=BOOT_S)
        guest = lab.find_by_pid(pid)
        with guest.qmp() as qmp:
            qmp.stop()  # vCPUs paused: the agent can no longer answer
        try:
            samples = len(app.history)
            await pilot.press("l", "enter")  # idle, default argument
            await pilot.press("enter")
            await wait_until(pilot, lambda: "did not answer" in app.control_message, timeout=20)
            assert len(app.history) >= samples + 3, "the screen stopped sampling while the agent hung"
            assert "did not answer" in widget_text(app.main.query_one("#status"))

            # A graceful stop cannot work on a paused guest: ksmtop asks before forcing it.
            await pilot.press("k")
            await wait_until(pilot, lambda: app.screen.__class__.__name__ == "ConfirmScreen", timeout=30)
            await pilot.press("y")
            await wait_until(pilot, lambda: pid not in pids_on_screen(app), timeout=30)
            await wait_until(pilot, lambda: events(app, "guest-stop"), timeout=10)  # the next sample carries it
            assert events(app, "guest-stop")[-1].data["forced"] is True
        finally:
            if guest.is_running():
                with guest.qmp() as qmp:
                    qmp.cont()


@pytest.mark.skipif(shutil.which(QEMU_BINARY) is None, reason="qemu not installed")
async def test_a_guest_ksmtop_did_not_start_says_why_and_offers_no_keys(lab: Lab, tmp_path: Path):
    qemu = subprocess.Popen(
        [QEMU_BINARY, "-machine", "none", "-nodefaults", "-display", "none", "-name", "guest=foreign vm"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        app = make_app(lab)
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(pilot, lambda: qemu.pid in pids_on_screen(app), timeout=20)
            assert row_name(app, qemu.pid) == "foreign vm"
            table = app.query_one(GuestTable)
            table.focus()
            table.move_cursor(row=pids_on_screen(app).index(qemu.pid))
            await wait_until(pilot, lambda: str(qemu.pid) in app.guests.control_map, timeout=10)
            assert app.selected_pid == qemu.pid
            assert "not started by ksmtop" in app.guests.text_for(app.view.selected)
            assert "not started by ksmtop" in widget_text(app.main.query_one("#details"))
            assert app.check_action("stop_guest", ()) is False
            assert app.check_action("workload", ()) is False
            footer_keys = {binding.key for (_, binding, enabled, _) in app.active_bindings.values() if enabled}
            assert "k" not in footer_keys and "l" not in footer_keys
            await pilot.press("k")  # nothing is sent to a guest ksmtop does not control
            assert qemu.poll() is None
    finally:
        qemu.kill()
        qemu.wait(timeout=10)
