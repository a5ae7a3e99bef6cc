"""libvirt on a real libvirtd with real TCG domains: names, PIDs, start/shutdown/destroy, the agent and KSM
through libvirt, and reconnection after libvirtd restarts."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("libvirt")

from ksmtop.collect.libvirt import LibvirtConnection, LibvirtError
from ksmtop.collect.libvirt_agent import LibvirtAgent
from ksmtop.lab.workloads import start_workload
from ksmtop.sampler import Sampler
from tests.conftest import wait_for
from tests.support.libvirtd import lab_domain

pytestmark = pytest.mark.guests
ODD_NAME = 'ksmtest "odd", $(id) `id` ünï'


@pytest.fixture(scope="module")
def odd_domain(connection: LibvirtConnection) -> Iterator[str]:
    """A TCG lab domain whose name has quotes, a comma, shell syntax and non-ASCII; always undefined afterwards."""
    with lab_domain(connection, ODD_NAME) as name:
        yield name


def _domain(connection: LibvirtConnection, name: str):
    return next(d for d in connection.domains() if d.name == name)


def _agent_ready(connection: LibvirtConnection, name: str) -> None:
    agent = LibvirtAgent(connection, name)

    def answers() -> bool:
        try:
            agent.ping()
            return True
        except Exception:
            return False

    wait_for(answers, timeout=90, interval=1)


def test_domains_are_listed_started_and_joined_to_their_qemu_process(connection, odd_domain):
    domain = _domain(connection, odd_domain)
    assert domain.state == "shut off" and domain.pid is None and domain.persistent
    assert domain.max_memory_bytes == 256 * 1024 * 1024

    connection.start(odd_domain)
    domain = wait_for(lambda: (d := _domain(connection, odd_domain)).pid and d, timeout=30)
    assert domain.state == "running" and domain.vcpus == 1
    with Sampler() as sampler:
        guest = sampler.sample().guest(domain.pid)
    assert guest is not None, "the domain's qemu process is not among the guests"
    assert guest.name == odd_domain  # qemu's -name guest=... with the comma doubled, read back as the real name


def test_agent_and_a_workload_through_libvirt(connection, odd_domain):
    if not _domain(connection, odd_domain).running:
        connection.start(odd_domain)
    _agent_ready(connection, odd_domain)
    agent = LibvirtAgent(connection, odd_domain, timeout=5)
    run = start_workload(agent, "fill-same", 8, timeout=10)
    state = run.wait(agent, timeout=60)
    assert state.exitcode == 0, state


def test_shutdown_then_start_and_destroy(connection, odd_domain):
    if not _domain(connection, odd_domain).running:
        connection.start(odd_domain)
    _agent_ready(connection, odd_domain)
    connection.shutdown(odd_domain)
    wait_for(lambda: _domain(connection, odd_domain).state == "shut off", timeout=60)
    connection.start(odd_domain)
    wait_for(lambda: _domain(connection, odd_domain).running, timeout=30)
    connection.destroy(odd_domain)
    assert _domain(connection, odd_domain).state == "shut off"


def test_errors_come_back_in_words(connection, odd_domain):
    with pytest.raises(LibvirtError, match=r"not found|no domain"):
        connection.start("ksmtest-no-such-domain")
    if _domain(connection, odd_domain).running:
        connection.destroy(odd_domain)
    with pytest.raises(LibvirtError, match=r"not running|agent"):
        connection.agent_command(odd_domain, {"execute": "guest-ping"})


@pytest.mark.ksm
def test_node_ksm_tunables_through_libvirt_match_sysfs(connection, ksm_guard):
    def sysfs(name: str) -> int:
        return int(Path(f"/sys/kernel/mm/ksm/{name}").read_text())

    node = connection.node_ksm()
    for name in ("pages_to_scan", "sleep_millisecs", "merge_across_nodes"):
        assert node[name] == sysfs(name)
    target = 1234 if sysfs("pages_to_scan") != 1234 else 4321
    assert connection.set_node_ksm("pages_to_scan", target) == target
    assert sysfs("pages_to_scan") == target
    assert connection.set_node_ksm("sleep_millisecs", 37) == 37 == sysfs("sleep_millisecs")
    with pytest.raises(LibvirtError, match="only pages_to_scan"):
        connection.set_node_ksm("use_zero_pages", 1)


def test_reconnects_after_libvirtd_restarts(connection, libvirtd):
    connection.domains()
    libvirtd.stop("libvirtd")
    try:
        with pytest.raises(LibvirtError, match=r"lost the connection|cannot connect"):
            connection.domains()
    finally:
        libvirtd.start("libvirtd")
    domains = wait_for(lambda: _try(connection.domains), timeout=60, interval=0.5)
    assert isinstance(domains, list)
    assert connection.status.startswith("connected")


def _try(call):
    try:
        return call() or [None]
    except LibvirtError:
        return None


def test_lab_up_and_down_with_libvirt_from_the_command_line(connection):
    prefix = "ksmtestlv"
    name = f"{prefix}-1"
    ksmtop = [sys.executable, "-m", "ksmtop", "lab", "--prefix", prefix]
    try:
        up = subprocess.run(
            [*ksmtop, "up", "1", "--libvirt", "--accel", "tcg"], capture_output=True, text=True, timeout=120
        )
        assert up.returncode == 0, up.stderr
        assert f"{name}: libvirt domain (qemu), running" in up.stdout
        domain = _domain(connection, name)
        assert domain.running and domain.pid
        _agent_ready(connection, name)
        down = subprocess.run(
            [*ksmtop, "down", "--libvirt", "--timeout", "60"], capture_output=True, text=True, timeout=120
        )
        assert down.returncode == 0, down.stderr
        assert f"{name}: shut down" in down.stdout
        assert _domain(connection, name).state == "shut off"
    finally:
        for action in (connection.destroy, connection.undefine):
            try:
                action(name)
            except LibvirtError:
                pass
