"""Outside text is made safe where it enters: guest-agent and QMP error texts, workload output, libvirt's words,
control errors and events. (The real sources are in tests/integration/test_hostile_names.py; here, every
entry point once, with a peer that says exactly what a hostile guest would.)"""

from __future__ import annotations

import json
import socket

import pytest

from ksmtop.collect.agent import AgentError, GuestAgent
from ksmtop.collect.libvirt import _words, domain_label
from ksmtop.collect.qmp import QmpClient, QmpError
from ksmtop.control import ControlError, GuestControls
from ksmtop.lab.workloads import _tail
from ksmtop.model import DomainSample
from tests.unit.test_lab import fake_agent, peer  # noqa: F401 (the fixture)

HOSTILE = "\x1b]0;TITLE\x07\x1b[31mX\u202e"
ESCAPED = "\\x1b]0;TITLE\\x07\\x1b[31mX\\u202e"


def test_a_guest_agent_error_text_is_escaped(peer):  # noqa: F811
    fake = peer(fake_agent({"guest-ping": {"error": {"class": "GenericError", "desc": HOSTILE}}}))
    with GuestAgent(fake.server.getsockname(), timeout=2) as agent, pytest.raises(AgentError) as refused:
        agent.ping()
    assert str(refused.value) == f"guest agent refused guest-ping: {ESCAPED}"


def test_a_qmp_error_text_is_escaped(peer):  # noqa: F811
    def respond(line: bytes, conn: socket.socket) -> bytes | None:
        if json.loads(line)["execute"] == "qmp_capabilities":
            return b'{"return": {}}\n'
        return json.dumps({"error": {"class": "GenericError", "desc": HOSTILE}}).encode() + b"\n"

    fake = peer(respond, greeting=b'{"QMP": {"version": {}, "capabilities": []}}\n')
    with QmpClient(fake.server.getsockname(), timeout=2) as qmp, pytest.raises(QmpError) as refused:
        qmp.command("stop")
    assert str(refused.value) == f"QEMU refused stop: {ESCAPED}"


def test_workload_output_is_escaped_line_by_line():
    assert _tail(f"fill: done\n{HOSTILE}\r\n".encode()) == f"fill: done\n{ESCAPED}\\x0d\n"


def test_libvirt_words_control_errors_and_events_are_escaped():
    class FakeLibvirtError(Exception):
        def get_error_message(self) -> str:
            return f"Domain not found: no domain with matching name '{HOSTILE}'"

    assert _words(FakeLibvirtError()) == f"Domain not found: no domain with matching name '{ESCAPED}'"
    assert str(ControlError(f"{HOSTILE}: not answering")) == f"{ESCAPED}: not answering"
    domain = DomainSample(name="already safe", uuid="u", state="shut off", vcpus=1, max_memory_bytes=1,
                          memory_bytes=1, persistent=True)  # fmt: skip
    assert domain_label(domain) == "already safe" and domain_label(HOSTILE) == ESCAPED
    events = []
    GuestControls(on_event=events.append)._event("note", f"said {HOSTILE}", {})
    assert events[0].text == f"said {ESCAPED}"
