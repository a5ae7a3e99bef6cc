"""libvirt through the real screen (Pilot) with a real libvirtd and a real TCG domain: domains listed by name
(shut-off ones too), start, workload, shutdown and destroy from the screen, libvirt's perf faults beside /proc's,
a remote URI (qemu+ssh through a private sshd) with node KSM tunables written through libvirt, and libvirtd
killed, restarted and hung mid-session."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("libvirt")

from ksmtop.collect.libvirt import LibvirtConnection, _import_libvirt, is_remote
from ksmtop.control import ControlError, GuestControls
from ksmtop.lab import Lab
from ksmtop.live import LiveSource
from ksmtop.model import DomainSample
from ksmtop.recording import read_recording
from ksmtop.remote import RemoteSource
from ksmtop.rows import GuestRow, guest_rows
from ksmtop.tui.app import KsmTopApp
from ksmtop.tui.widgets.guests import GuestTable
from tests.support import sshd as sshd_support
from tests.support.libvirtd import lab_domain
from tests.support.nobody import run_as_nobody
from tests.support.sshd import Sshd
from tests.tui.conftest import cell_text, wait_until, widget_text

pytestmark = pytest.mark.guests
SIZE = (170, 48)
BOOT_S = 120  # TCG: the agent answers after ~30-60 s here; generous for a loaded CI machine
NAME = "ksmtest-screen 'vm' \"$(id)\" ü"


@pytest.fixture(scope="module")
def domain(connection: LibvirtConnection) -> Iterator[str]:
    """A shut-off TCG lab domain with an untrusted-looking name; destroyed and undefined afterwards."""
    with lab_domain(connection, NAME) as name:
        yield name


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    if not sshd_support.installed():
        if os.environ.get("CI"):
            pytest.fail("openssh-server is not installed")
        pytest.skip("needs openssh-server")
    with sshd_support.private_sshd(tmp_path_factory.mktemp("sshd")) as server:
        yield server


def make_app(uri: str = "qemu:///system", stop_timeout: float = 60.0) -> KsmTopApp:
    connection = LibvirtConnection(uri)  # one connection: the source's watcher and the controls share it
    if is_remote(uri):
        source = RemoteSource(
            connection,
            controls=lambda on_event: GuestControls(
                Lab(prefix="ksmtest-none"), on_event, libvirt=connection, local=False
            ),
        )
    else:
        source = LiveSource(
            libvirt=connection,
            controls=lambda on_event: GuestControls(
                Lab(prefix="ksmtest-none"), on_event, stop_timeout=stop_timeout, libvirt=connection
            ),
        )
    return KsmTopApp(source, interval=0.5)


def row(app: KsmTopApp, name: str = NAME) -> GuestRow | None:
    latest = app.history.latest
    return next((r for r in guest_rows(latest) if r.name == name), None) if latest else None


def state(app: KsmTopApp) -> str | None:
    found = row(app)
    return found.state if found else None


async def select(pilot, app: KsmTopApp, name: str = NAME) -> GuestRow:
    table = app.query_one(GuestTable)
    found = await wait_until(pilot, lambda: row(app, name), timeout=20)
    await wait_until(pilot, lambda: found.key in [k.value for k in table.rows], timeout=10)
    table.focus()
    table.move_cursor(row=[k.value for k in table.rows].index(found.key))
    await wait_until(
        pilot, lambda: app.selected_key == found.key and app.guests.control(app.view.selected) is not None, timeout=10
    )
    return found


def events(app: KsmTopApp, kind: str) -> list:
    return [event for event in app.history.events() if event.kind == kind]


def ensure_off(connection: LibvirtConnection) -> None:
    if next(d for d in connection.domains() if d.name == NAME).running:
        connection.destroy(NAME)


async def test_start_workload_and_shutdown_of_a_domain_from_the_screen(connection, domain):
    ensure_off(connection)
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        off = await select(pilot, app)
        assert off.state == "shut off" and off.pid is None and off.key.startswith("domain:")
        assert cell_text(app.query_one(GuestTable), off.key, "name") == NAME  # shown as it is, quotes and all
        header = widget_text(app.main.query_one("#summary"))
        assert "+ libvirt" in header and "qemu:///system: connected" in header
        assert "s starts it" in widget_text(app.main.query_one("#details"))
        assert app.check_action("stop_guest", ()) is False  # nothing to stop yet

        await pilot.press("s")
        # libvirt starts qemu paused (-S) and resumes it: the row shows "paused" for a moment, then "running"
        running = await wait_until(
            pilot, lambda: (r := row(app)) and r.guest and r.state == "running" and r, timeout=30
        )
        assert running.guest.pid == running.domain.pid
        assert running.guest.ksm_merging_pages is not None  # /proc's KSM figures for the domain's qemu
        await wait_until(pilot, lambda: app.selected_key == running.key, timeout=10)  # the selection followed
        assert "started domain" in events(app, "guest-start")[-1].text

        key = running.key
        await wait_until(pilot, lambda: app.guests.agent_status.get(key) == "ok", timeout=BOOT_S)
        await pilot.press("l")
        assert app.screen.__class__.__name__ == "WorkloadScreen"
        await pilot.press("down", "down", "down", "enter")  # idle, primes, fill-random, fill-same
        await pilot.press("ctrl+u", *"8", "enter")
        await wait_until(pilot, lambda: events(app, "workload-end"), timeout=90)
        assert app.guests.workload_state[key].exitcode == 0

        # libvirt's perf events (switched on by ksmtop) count beside /proc: qemu's main thread only, so never more.
        counted = await wait_until(
            pilot, lambda: (r := row(app)) and r.domain.minor_faults is not None and r, timeout=20
        )
        assert counted.domain.minor_faults <= counted.guest.minor_faults
        assert counted.domain.faults_per_s is not None or counted.domain.minor_faults >= 0

        await pilot.press("k")
        await wait_until(pilot, lambda: state(app) == "shut off" and row(app).guest is None, timeout=90)
        await wait_until(pilot, lambda: events(app, "guest-stop"), timeout=10)  # the next sample carries it
        stop = events(app, "guest-stop")[-1]
        assert stop.data["forced"] is False and "shut down" in stop.text


async def test_destroy_asks_first(connection, domain):
    ensure_off(connection)
    connection.start(NAME)
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: (r := row(app)) and r.guest is not None and r.state == "running", timeout=30)
        await select(pilot, app)
        await pilot.press("x")
        await wait_until(pilot, lambda: app.screen.__class__.__name__ == "ConfirmScreen", timeout=10)
        await pilot.press("n")
        await pilot.pause(1.0)
        assert state(app) == "running", "a 'no' must leave the domain running"
        await pilot.press("x")
        await wait_until(pilot, lambda: app.screen.__class__.__name__ == "ConfirmScreen", timeout=10)
        await pilot.press("y")
        await wait_until(pilot, lambda: state(app) == "shut off", timeout=30)
        await wait_until(pilot, lambda: events(app, "guest-stop"), timeout=10)
        assert events(app, "guest-stop")[-1].data["forced"] is True


def test_libvirt_errors_come_back_in_words(connection):
    controls = GuestControls(Lab(prefix="ksmtest-none"), libvirt=connection)
    ghost = DomainSample("ksmtest-no-such-domain", "00000000-0000-0000-0000-000000000000", "shut off", 1, 1, 1, True)
    with pytest.raises(ControlError, match=r"starting ksmtest-no-such-domain: .*(not found|no domain)"):
        controls.start_domain(GuestRow("domain:" + ghost.uuid, None, ghost))


def _knob(name: str) -> str:
    return Path(f"/sys/kernel/mm/ksm/{name}").read_text().strip()


async def test_remote_uri_shows_domains_and_writes_node_tunables_through_libvirt(domain, sshd, ksm_guard):
    app = make_app(sshd.uri())
    async with app.run_test(size=SIZE) as pilot:
        await select(pilot, app)
        snapshot = app.history.latest
        assert snapshot.mode == "remote" and snapshot.guests == ()
        meminfo = Path("/proc/meminfo").read_text().split()
        assert snapshot.host.mem_total_bytes == int(meminfo[meminfo.index("MemTotal:") + 1]) * 1024  # same host
        assert str(snapshot.ksm.get("pages_to_scan")) == _knob("pages_to_scan")
        header = widget_text(app.main.query_one("#summary"))
        assert "remote, through libvirt only" in header and "not available remotely" in header
        assert "not available remotely" in widget_text(app.main.query_one("#details"))

        knobs = app.query_one("#knobs")
        assert cell_text(knobs, "run", "answer") == "not available remotely"
        new_value = "1234" if _knob("pages_to_scan") != "1234" else "4321"
        knobs.focus()
        knobs.move_cursor(row=[k.value for k in knobs.rows].index("pages_to_scan"))
        await pilot.press("enter", "ctrl+u", *new_value, "enter")
        await wait_until(pilot, lambda: _knob("pages_to_scan") == new_value, timeout=15)
        await wait_until(pilot, lambda: cell_text(knobs, "pages_to_scan", "value") == new_value, timeout=15)
        assert "through libvirt" in widget_text(app.query_one("#knob-answer"))

        run_before = _knob("run")
        knobs.move_cursor(row=[k.value for k in knobs.rows].index("run"))
        await pilot.press("enter")
        assert not app.query_one("#knob-input").has_class("editing")  # no editor for what libvirt cannot write
        assert _knob("run") == run_before

        await pilot.press("s")  # only domains can be started remotely: a word, no lab guest
        assert app.screen.__class__.__name__ != "StartGuestScreen"
        await pilot.press("w")  # no other KSM users to widen to on a remote host: said, nothing changes
        await pilot.pause(1.0)
        assert app.history.latest.scope == "qemu" and app.history.latest.mode == "remote"
        assert any("other KSM users are not visible" in str(n.message) for n in app._notifications)


async def test_libvirtd_killed_and_restarted_mid_session(libvirtd):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        summary = app.main.query_one("#summary")
        await wait_until(pilot, lambda: ": connected," in widget_text(summary), timeout=20)
        libvirtd.stop("libvirtd", signal="KILL")
        try:
            await wait_until(pilot, lambda: "retrying" in widget_text(summary), timeout=30)
            samples = len(app.history)
            await wait_until(pilot, lambda: len(app.history) >= samples + 3, timeout=20)  # the screen goes on
            assert app.history.latest.domains == ()
        finally:
            libvirtd.start("libvirtd")
        await wait_until(pilot, lambda: ": connected," in widget_text(summary), timeout=60)


def test_headless_json_and_recording_carry_domains(domain, sshd, tmp_path):
    """`--once --json` locally and through the remote URI, and `record` of a remote host, read back."""
    ksmtop = [sys.executable, "-m", "ksmtop"]
    local = json.loads(subprocess.run([*ksmtop, "--once", "--json"], capture_output=True, check=True).stdout)
    assert local["mode"] == "local" and "qemu:///system: connected" in local["libvirt_status"]
    assert NAME in [d["name"] for d in local["domains"]]
    without = json.loads(subprocess.run([*ksmtop, "--no-libvirt", "--once", "--json"], capture_output=True).stdout)
    assert without["domains"] == [] and without["libvirt_status"] is None
    remote = json.loads(
        subprocess.run([*ksmtop, "--connect", sshd.uri(), "--once", "--json"], capture_output=True, check=True).stdout
    )
    assert remote["mode"] == "remote" and remote["guests"] == [] and remote["host"]["anon_bytes"] is None
    assert NAME in [d["name"] for d in remote["domains"]]
    path = tmp_path / "remote.jsonl"
    subprocess.run([*ksmtop, "--connect", sshd.uri(), "record", "-o", str(path), "-n", "2", "-i", "0.2"], check=True)
    snapshots = read_recording(path).snapshots
    assert len(snapshots) == 2 and all(s.mode == "remote" for s in snapshots)
    assert NAME in [d.name for d in snapshots[-1].domains]


def test_a_refused_connection_is_said_in_words(libvirtd):
    """As uid 65534, qemu:///system refuses the connection: the mode line says so, and the /proc rows stay."""

    def observe() -> dict:
        source = LiveSource(libvirt=LibvirtConnection())
        try:
            snapshot = source.sample()
            return {"status": snapshot.libvirt_status, "domains": len(snapshot.domains), "mode": snapshot.mode}
        finally:
            source.close()

    def warm_up() -> None:  # nobody cannot read /root: import what the child needs first
        import ksmtop.collect.libvirt_watch  # noqa: F401

        _import_libvirt()
        LiveSource().close()

    seen = run_as_nobody(observe, warm_up=warm_up)
    assert "error" not in seen, seen
    assert seen["mode"] == "local" and seen["domains"] == 0
    assert "cannot connect to qemu:///system" in seen["status"] and "retrying" in seen["status"]
    assert "Traceback" not in seen["status"] and "\n" not in seen["status"]


def test_an_unreachable_uri_is_said_on_the_mode_line_and_nothing_reaches_stderr():
    """libvirt's own error printing is off: a refused connection shows up in the snapshot, not on the terminal."""
    uri = "qemu+tcp://127.0.0.1:1/system"  # nothing listens on port 1
    done = subprocess.run(
        [sys.executable, "-m", "ksmtop", "--connect", uri, "--once", "--json"], capture_output=True, text=True
    )
    assert done.returncode == 0 and done.stderr == ""
    snapshot = json.loads(done.stdout)
    assert snapshot["mode"] == "remote" and snapshot["domains"] == []
    assert f"cannot connect to {uri}" in snapshot["libvirt_status"] and "retrying" in snapshot["libvirt_status"]
    assert snapshot["ksm"]["available"] is False and "cannot connect" in snapshot["ksm"]["error"]


async def test_a_hung_libvirtd_never_stalls_the_screen(libvirtd):
    """libvirtd stopped with SIGSTOP answers nothing: samples go on every interval, the header says how old
    libvirt's answer is, and the rows come back once it runs again."""
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        summary = app.main.query_one("#summary")
        await wait_until(pilot, lambda: ": connected," in widget_text(summary), timeout=20)
        subprocess.run(["pkill", "-STOP", "-x", "libvirtd"], check=True)
        try:
            await wait_until(pilot, lambda: "no answer for" in widget_text(summary), timeout=30)
            samples = len(app.history)
            # a sample that waited on libvirt would never come back while it is stopped: these must
            await wait_until(pilot, lambda: len(app.history) >= samples + 4, timeout=30)
            assert app.history.latest.libvirt_status.startswith("libvirt qemu:///system: no answer for")
        finally:
            subprocess.run(["pkill", "-CONT", "-x", "libvirtd"], check=True)
        await wait_until(pilot, lambda: ": connected," in widget_text(summary), timeout=30)


async def test_a_remote_host_over_qemu_ssh(libvirtd, domain, sshd):
    """The fleet case: qemu+ssh:// through a real sshd (key login, strict host-key check), then a key the
    host refuses: said in words, fast, with nothing on the terminal (ssh runs with no_tty)."""
    app = KsmTopApp(RemoteSource(LibvirtConnection(sshd.uri())), interval=0.5)
    async with app.run_test(size=SIZE) as pilot:
        found = await wait_until(pilot, lambda: row(app), timeout=60)
        assert found.domain.name == NAME and found.guest is None
        snapshot = app.history.latest
        assert snapshot.mode == "remote" and str(snapshot.ksm.get("pages_to_scan")) == _knob("pages_to_scan")
        assert "connected" in widget_text(app.main.query_one("#summary"))

    refused = subprocess.run(
        [sys.executable, "-m", "ksmtop", "--connect", sshd.uri("otherkey"), "--once", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # no controlling terminal: a password prompt would hang here, not ask
    )
    assert refused.returncode == 0 and refused.stderr == ""
    status = json.loads(refused.stdout)["libvirt_status"]
    assert "cannot connect" in status and "Permission denied" in status
