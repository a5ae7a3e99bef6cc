"""Names from other people, on the real thing: a process that calls itself qemu with terminal controls in its
``-name``, and a real libvirtd domain named with markup, a tab, C1 controls and a bidi override. What ksmtop keeps
(GuestSample.name, DomainSample.name, events, errors) is escaped; the domain stays controllable by its UUID.

libvirt 9.0 refuses, in a domain name: '/' (so `[/]` and `[link=http://x]`), '\\n' and '\\r' ("invalid char in
name"), and every C0 control that XML 1.0 forbids (ESC, BEL, ...: libxml2's "PCDATA invalid Char value"). It
accepts '[', ']', '=', '@', a tab, C1 controls (0x80-0x9f, e.g. 0x9b, the 8-bit CSI) and bidi overrides."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from ksmtop.collect.libvirt import LibvirtConnection, LibvirtError
from ksmtop.collect.libvirt_agent import LibvirtAgent
from ksmtop.collect.procfs import ProcessTable, guest_name_from_cmdline
from ksmtop.control import GuestControls
from ksmtop.lab import Lab
from ksmtop.lab.domains import domain_uuid, domain_xml, install_image
from ksmtop.model import DomainSample
from ksmtop.rows import DOMAIN_KEY_PREFIX, GuestRow
from ksmtop.safetext import safe_name
from tests.conftest import wait_for

HOSTILE_QEMU_NAME = "\x1b]0;TITLE\x07\x1b[31mX"


@pytest.fixture
def fake_qemu(tmp_path: Path) -> Iterator[subprocess.Popen]:
    """A real process whose comm is qemu-system-x86_64 (a symlink to python) and whose argv carries
    ``-name guest=<ESC>]0;TITLE<BEL><ESC>[31mX``: what any local user can start on a shared host."""
    link = tmp_path / "qemu-system-x86_64"
    link.symlink_to(os.path.realpath(sys.executable))
    code = "import sys; print('ready', flush=True); sys.stdin.read()"
    process = subprocess.Popen(
        [str(link), "-c", code, "-name", f"guest={HOSTILE_QEMU_NAME},debug-threads=on"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
        yield process
    finally:
        process.kill()
        process.wait(timeout=10)


def test_a_qemu_process_name_with_terminal_controls_comes_out_escaped(fake_qemu):
    with ProcessTable(scope="qemu") as table:
        table.discover()
        guest = next((g for g in table.sample() if g.pid == fake_qemu.pid), None)
    assert guest is not None and guest.kind == "qemu"
    assert guest.name == "\\x1b]0;TITLE\\x07\\x1b[31mX"
    assert not any(ord(char) < 0x20 or 0x7F <= ord(char) <= 0x9F for char in guest.name)


# --- a real libvirtd domain ------------------------------------------------------------------------------------
HOSTILE_DOMAIN = "ksmtest-[x] [@click=app.quit] vm[x=1=2]y\tTAB\x9b31mC1\x85\u202eevil"
PLACEHOLDER = "ksmtest-hostile-name"


@pytest.fixture(scope="module")
def hostile_domain(connection: LibvirtConnection) -> Iterator[str]:
    """A shut-off TCG lab domain with HOSTILE_DOMAIN as its name; destroyed and undefined (by UUID) afterwards."""
    kernel, initramfs = install_image(Lab().image())
    root = ET.fromstring(domain_xml(PLACEHOLDER, kernel, initramfs, 256, "tcg"))
    root.find("name").text = HOSTILE_DOMAIN  # domain_xml itself refuses unprintable names: libvirt does not
    uuid = domain_uuid(PLACEHOLDER)
    assert connection.define(ET.tostring(root, encoding="unicode")) == HOSTILE_DOMAIN
    try:
        yield uuid
    finally:
        _remove(uuid)


def _remove(uuid: str) -> None:
    import libvirt

    conn = libvirt.open("qemu:///system")
    try:
        dom = conn.lookupByUUIDString(uuid)
        if dom.isActive():
            dom.destroy()
        dom.undefine()
    except libvirt.libvirtError:
        pass
    finally:
        conn.close()


def _listed(connection: LibvirtConnection, uuid: str) -> DomainSample:
    return next(d for d in connection.domains() if d.uuid == uuid)


@pytest.mark.guests
def test_a_hostile_domain_name_is_listed_escaped_and_the_domain_is_controlled_by_it(connection, hostile_domain):
    domain = _listed(connection, hostile_domain)
    assert domain.name == safe_name(HOSTILE_DOMAIN)
    assert domain.name == "ksmtest-[x] [@click=app.quit] vm[x=1=2]y\\x09TAB\\x9b31mC1\\x85\\u202eevil"
    events = []
    controls = GuestControls(Lab(prefix="ksmtest-none"), events.append, stop_timeout=120, libvirt=connection)
    row = GuestRow(DOMAIN_KEY_PREFIX + domain.uuid, None, domain)
    assert controls.control_for(row).can_control

    assert controls.start_domain(row) == f"started domain {domain.name}"
    running = wait_for(lambda: (d := _listed(connection, hostile_domain)).running and d.pid and d, timeout=60)
    assert running.name == domain.name
    argv = [arg.decode() for arg in Path(f"/proc/{running.pid}/cmdline").read_bytes().split(b"\0")]
    assert guest_name_from_cmdline(argv, "") == HOSTILE_DOMAIN  # the real name reached libvirt and qemu
    with ProcessTable(scope="qemu") as table:
        table.discover()
        process = next(g for g in table.sample() if g.pid == running.pid)
    assert process.name == domain.name  # /proc's view of the same name, escaped the same way

    agent = LibvirtAgent(connection, running, timeout=5)

    def answers() -> bool:
        try:
            agent.ping()
            return True
        except Exception:
            return False

    wait_for(answers, timeout=180, interval=1)
    row = GuestRow(DOMAIN_KEY_PREFIX + running.uuid, None, running)
    how = controls.stop(row)
    assert how.startswith(domain.name) and "shut down" in how
    assert _listed(connection, hostile_domain).state == "shut off"
    assert [event.kind for event in events] == ["guest-start", "guest-stop"]
    for event in events:
        assert domain.name in event.text and "\t" not in event.text and "\x9b" not in event.text


@pytest.mark.guests
def test_libvirt_errors_about_a_hostile_domain_are_safe(connection, hostile_domain):
    domain = _listed(connection, hostile_domain)
    if domain.running:
        connection.destroy(domain)
    started = time.monotonic()
    with pytest.raises(LibvirtError) as failed:
        connection.agent_command(domain, {"execute": "guest-ping"})  # not running: libvirt says so
    assert time.monotonic() - started < 30
    message = str(failed.value)
    assert message.startswith(f"guest agent of {domain.name}: ")
    assert "\t" not in message and "\x9b" not in message and "\u202e" not in message
