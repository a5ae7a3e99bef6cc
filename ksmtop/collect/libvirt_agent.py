"""The guest agent of a libvirt domain, through libvirt's own agent channel (qemuAgentCommand).

It speaks the same commands as the direct socket client, so workloads (ksmtop.lab.workloads) run unchanged on
libvirt domains. No UI imports.
"""

from __future__ import annotations

import math
from typing import Any

from ksmtop.collect.agent import AgentError, AgentTimeout, GuestAgent
from ksmtop.collect.libvirt import DomainRef, LibvirtConnection, LibvirtError, domain_label

_TIMEOUT_WORDS = ("not responding", "timed out", "timeout")


class LibvirtAgent(GuestAgent):
    """GuestAgent whose every call goes through libvirt; errors map to AgentError / AgentTimeout."""

    def __init__(self, connection: LibvirtConnection, domain: DomainRef, timeout: float = 3.0) -> None:
        """``domain``: a DomainSample (reached by its UUID) or a real domain name."""
        self.label = domain_label(domain)
        super().__init__(f"libvirt:{self.label}", timeout)
        self.connection = connection
        self.domain = domain

    def call(self, command: str, arguments: dict[str, Any] | None = None, timeout: float | None = None) -> Any:
        seconds = self.timeout if timeout is None else timeout
        message: dict[str, Any] = {"execute": command}
        if arguments:
            message["arguments"] = arguments
        try:
            return self.connection.agent_command(self.domain, message, timeout=max(1, math.ceil(seconds)))
        except LibvirtError as exc:
            text = str(exc)
            if any(word in text.lower() for word in _TIMEOUT_WORDS):
                raise AgentTimeout(f"guest agent of {self.label} did not answer {command}: {text}") from None
            raise AgentError(text) from None

    def close(self) -> None:
        """Nothing to close: the libvirt connection is shared."""
