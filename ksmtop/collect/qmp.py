"""A small QMP (QEMU Machine Protocol) client over a unix socket, every call with a timeout in seconds.

Connecting reads the greeting and negotiates capabilities; asynchronous events that arrive between commands are
kept in ``events`` (bounded) and otherwise ignored.
"""

from __future__ import annotations

import collections
from pathlib import Path
from typing import Any

from ksmtop.collect._jsonsock import JsonClient, JsonSocket
from ksmtop.safetext import one_line

DEFAULT_TIMEOUT = 5.0


class QmpError(Exception):
    """QEMU answered with an error, or the monitor channel failed. The message is one line."""


class QmpTimeout(QmpError):
    """QEMU did not answer within the call's timeout."""


class QmpDisconnected(QmpError):
    """The monitor channel closed while waiting for an answer (QEMU exited)."""


class QmpClient(JsonClient):
    """One QMP connection; calls serialize, so it may be shared between threads."""

    error = QmpError
    timeout_error = QmpTimeout
    closed_error = QmpDisconnected
    peer = "QEMU"
    channel = "QMP channel"

    def __init__(self, socket_path: str | Path, timeout: float = DEFAULT_TIMEOUT) -> None:
        super().__init__(socket_path, timeout)
        self.events: collections.deque[dict[str, Any]] = collections.deque(maxlen=100)

    def __enter__(self) -> QmpClient:
        return self

    def command(self, name: str, arguments: dict[str, Any] | None = None, timeout: float | None = None) -> Any:
        """Run one QMP command and return its "return" value; raise QmpError / QmpTimeout."""
        answer = self._exchange(name, arguments, timeout)
        if "error" in answer:
            error = answer["error"] if isinstance(answer["error"], dict) else {}
            desc = one_line(error.get("desc", "unknown error"), 300)
            raise QmpError(f"QEMU refused {name}: {desc}")
        return answer.get("return")

    def _handshake(self, conn: JsonSocket, deadline: float) -> None:
        greeting = conn.read_json(deadline)
        if "QMP" not in greeting:
            raise ValueError("no QMP greeting")
        conn.send_json({"execute": "qmp_capabilities"}, deadline)
        if "error" in self._read_answer(conn, deadline):
            raise ValueError("capabilities negotiation refused")

    def _read_answer(self, conn: JsonSocket, deadline: float) -> dict[str, Any]:
        while True:
            message = conn.read_json(deadline)
            if "event" in message:
                self.events.append(message)
                continue
            return message

    # -- commands -----------------------------------------------------------------------------------------

    def query_status(self, timeout: float | None = None) -> str:
        """The VM run state: "running", "paused", "shutdown", ..."""
        return str(self.command("query-status", timeout=timeout)["status"])

    def stop(self, timeout: float | None = None) -> None:
        """Pause the guest's vCPUs."""
        self.command("stop", timeout=timeout)

    def cont(self, timeout: float | None = None) -> None:
        """Resume the guest's vCPUs."""
        self.command("cont", timeout=timeout)

    def system_powerdown(self, timeout: float | None = None) -> None:
        """Press the virtual ACPI power button (the guest decides what to do)."""
        self.command("system_powerdown", timeout=timeout)

    def quit(self, timeout: float | None = None) -> None:
        """Make QEMU exit at once. The channel may close before the answer arrives: that counts as done."""
        try:
            self.command("quit", timeout=timeout)
        except QmpDisconnected:
            pass
        finally:
            self.close()
