"""A unix-socket connection that exchanges newline-delimited JSON, every read bounded by a deadline.

Shared by the guest-agent and QMP clients. Errors come out as ``SocketTimeout`` (deadline passed) or
``SocketClosed`` / ``OSError``; the clients turn them into their own exception types.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path
from typing import Any

from ksmtop.safetext import one_line, safe

MAX_LINE_BYTES = 64 * 1024 * 1024
"""Upper bound on one JSON line (guest-exec-status can carry up to 16 MiB of output, base64-encoded)."""


class SocketTimeout(Exception):
    """The deadline passed before the peer answered."""


class SocketClosed(Exception):
    """The peer closed the connection."""


class JsonSocket:
    """One connected unix stream socket with a receive buffer."""

    def __init__(self, path: str | Path, timeout: float) -> None:
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._buffer = bytearray()
        try:
            self._sock.settimeout(timeout)
            self._sock.connect(str(path))
        except TimeoutError as exc:
            self._sock.close()
            raise SocketTimeout(f"connecting to {path} took longer than {timeout:g} s") from exc
        except OSError:
            self._sock.close()
            raise

    def close(self) -> None:
        self._sock.close()

    def send_bytes(self, data: bytes, deadline: float) -> None:
        self._sock.settimeout(_remaining(deadline))
        try:
            self._sock.sendall(data)
        except TimeoutError as exc:
            raise SocketTimeout("sending timed out") from exc

    def send_json(self, message: dict[str, Any], deadline: float) -> None:
        self.send_bytes(json.dumps(message).encode() + b"\n", deadline)

    def skip_past(self, marker: bytes, deadline: float) -> None:
        """Discard everything up to and including the next occurrence of ``marker``."""
        while True:
            index = self._buffer.find(marker)
            if index >= 0:
                del self._buffer[: index + len(marker)]
                return
            self._buffer.clear()
            self._fill(deadline)

    def read_line(self, deadline: float) -> bytes:
        while True:
            index = self._buffer.find(b"\n")
            if index >= 0:
                line = bytes(self._buffer[:index])
                del self._buffer[: index + 1]
                return line
            if len(self._buffer) > MAX_LINE_BYTES:
                raise ValueError(f"answer longer than {MAX_LINE_BYTES} bytes")
            self._fill(deadline)

    def read_json(self, deadline: float, strip: bytes = b"") -> dict[str, Any]:
        """The next non-empty line as a JSON object; ``strip`` removes leading bytes such as 0xFF."""
        while True:
            line = self.read_line(deadline).lstrip(strip).strip()
            if not line:
                continue
            message = json.loads(line)
            if not isinstance(message, dict):
                raise ValueError(f"expected a JSON object, got {type(message).__name__}")
            return message

    def _fill(self, deadline: float) -> None:
        self._sock.settimeout(_remaining(deadline))
        try:
            chunk = self._sock.recv(65536)
        except TimeoutError as exc:
            raise SocketTimeout("no answer before the deadline") from exc
        if not chunk:
            raise SocketClosed("connection closed by the peer")
        self._buffer += chunk


def deadline_after(seconds: float) -> float:
    return time.monotonic() + seconds


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise SocketTimeout("no answer before the deadline")
    return left


class JsonClient:
    """A JSON-lines client of one QEMU socket (guest agent or QMP): connected on first use, calls serialized,
    every call bounded by a deadline, the connection dropped after any failure so the next call starts clean.

    Subclasses set the error types and the words for messages, and say how a session opens (``_handshake``)
    and how one answer is read (``_read_answer``).
    """

    error: type[Exception] = Exception
    timeout_error: type[Exception] = Exception
    closed_error: type[Exception] = Exception
    peer = "peer"
    """Who answers, in messages: "guest agent", "QEMU"."""
    channel = "channel"
    """The socket, in messages: "guest agent channel", "QMP channel"."""

    def __init__(self, socket_path: str | Path, timeout: float) -> None:
        self.socket_path = Path(socket_path)
        self.timeout = timeout
        self._conn: JsonSocket | None = None
        self._lock = threading.Lock()

    def __enter__(self) -> JsonClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            self._drop()

    def _exchange(self, command: str, arguments: dict[str, Any] | None, timeout: float | None) -> dict[str, Any]:
        """Run one command and return the whole answer; raise the subclass's error types, with one-line messages."""
        message: dict[str, Any] = {"execute": command}
        if arguments:
            message["arguments"] = arguments
        seconds = self.timeout if timeout is None else timeout
        deadline = deadline_after(seconds)
        with self._lock:
            try:
                conn = self._connected(deadline)
                conn.send_json(message, deadline)
                return self._read_answer(conn, deadline)
            except SocketTimeout as exc:
                self._drop()
                raise self.timeout_error(f"{self.peer} did not answer {command} within {seconds:g} s") from exc
            except SocketClosed as exc:
                self._drop()
                raise self.closed_error(f"{self.channel} {safe(self.socket_path)} closed during {command}") from exc
            except (OSError, ValueError) as exc:
                self._drop()
                detail = one_line(exc)  # a JSON error quotes what the peer sent
                raise self.error(f"{self.channel} {safe(self.socket_path)}: {detail}") from exc

    def _connected(self, deadline: float) -> JsonSocket:
        if self._conn is not None:
            return self._conn
        conn = JsonSocket(self.socket_path, max(0.001, deadline - time.monotonic()))
        try:
            self._handshake(conn, deadline)
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        return conn

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _handshake(self, conn: JsonSocket, deadline: float) -> None:
        """Open the session on a fresh connection."""

    def _read_answer(self, conn: JsonSocket, deadline: float) -> dict[str, Any]:
        return conn.read_json(deadline)
