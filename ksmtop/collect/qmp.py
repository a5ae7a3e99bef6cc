"""A small QMP (QEMU Machine Protocol) client over a unix socket, every call with a timeout in seconds.

Connecting reads the greeting and negotiates capabilities; asynchronous events that arrive between commands are
kept in ``events`` (bounded) and otherwise ignored.
"""

from __future__ import annotations

import collections
import threading
import time
from pathlib import Path
from typing import Any

from ksmtop.collect._jsonsock import JsonSocket, SocketClosed, SocketTimeout, deadline_after

DEFAULT_TIMEOUT = 5.0


class QmpError(Exception):
    """QEMU answered with an error, or the monitor channel failed. The message is one line."""


class QmpTimeout(QmpError):
    """QEMU did not answer within the call's timeout."""


class QmpDisconnected(QmpError):
    """The monitor channel closed while waiting for an answer (QEMU exited)."""


class QmpClient:
    """One QMP connection; calls serialize, so it may be shared between threads."""

    def __init__(self, socket_path: str | Path, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.socket_path = Path(socket_path)
        self.timeout = timeout
        self.events: collections.deque[dict[str, Any]] = collections.deque(maxlen=100)
        self._conn: JsonSocket | None = None
        self._lock = threading.Lock()

    def __enter__(self) -> QmpClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            self._drop()

    def command(self, name: str, arguments: dict[str, Any] | None = None, timeout: float | None = None) -> Any:
        """Run one QMP command and return its "return" value; raise QmpError / QmpTimeout."""
        seconds = self.timeout if timeout is None else timeout
        deadline = deadline_after(seconds)
        message: dict[str, Any] = {"execute": name}
        if arguments:
            message["arguments"] = arguments
        with self._lock:
            try:
                conn = self._connected(deadline)
                conn.send_json(message, deadline)
                answer = self._next_answer(conn, deadline)
            except SocketTimeout as exc:
                self._drop()
                raise QmpTimeout(f"QEMU did not answer {name} within {seconds:g} s") from exc
            except SocketClosed as exc:
                self._drop()
                raise QmpDisconnected(f"QMP channel {self.socket_path} closed during {name}") from exc
            except (OSError, ValueError) as exc:
                self._drop()
                raise QmpError(f"QMP channel {self.socket_path}: {' '.join(str(exc).split())}") from exc
        if "error" in answer:
            error = answer["error"] if isinstance(answer["error"], dict) else {}
            desc = " ".join(str(error.get("desc", "unknown error")).split())[:300]
            raise QmpError(f"QEMU refused {name}: {desc}")
        return answer.get("return")

    def _connected(self, deadline: float) -> JsonSocket:
        if self._conn is not None:
            return self._conn
        conn = JsonSocket(self.socket_path, max(0.001, deadline - time.monotonic()))
        try:
            greeting = conn.read_json(deadline)
            if "QMP" not in greeting:
                raise ValueError("no QMP greeting")
            conn.send_json({"execute": "qmp_capabilities"}, deadline)
            answer = self._next_answer(conn, deadline)
            if "error" in answer:
                raise ValueError("capabilities negotiation refused")
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        return conn

    def _next_answer(self, conn: JsonSocket, deadline: float) -> dict[str, Any]:
        while True:
            message = conn.read_json(deadline)
            if "event" in message:
                self.events.append(message)
                continue
            return message

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

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
