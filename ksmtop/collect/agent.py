"""qemu-guest-agent client over the agent's unix socket (the host end of the virtio-serial channel).

Protocol: send 0xFF (resets the agent's parser) and guest-sync-delimited with a random id, discard everything up
to the 0xFF that starts the answer, then exchange one JSON command and one JSON answer per line. Every call has a
timeout in seconds; a call that times out closes the connection, and the next call connects and syncs again, so a
late answer can never be taken for the answer to another command.

Everything the guest sends back is untrusted: it is decoded as data and never reaches a shell, and the texts
that reach messages (its error descriptions) are made safe (``ksmtop.safetext``) here.
"""

from __future__ import annotations

import base64
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ksmtop.collect._jsonsock import JsonClient, JsonSocket
from ksmtop.safetext import one_line

DEFAULT_TIMEOUT = 5.0
FILE_CHUNK_BYTES = 48 * 1024
"""guest-file-write chunk size; keeps each JSON line well under the agent's request limit."""


class AgentError(Exception):
    """The agent answered with an error, or the channel failed. The message is one line."""


class AgentTimeout(AgentError):
    """The agent did not answer within the call's timeout (guest paused, hung, or still booting)."""


class AgentDisconnected(AgentError):
    """The channel closed while waiting for an answer (the guest went away)."""


@dataclass(frozen=True, slots=True)
class ExecStatus:
    """One guest-exec-status answer, decoded. Output is only there once the process has exited."""

    exited: bool
    exitcode: int | None = None
    signal: int | None = None
    stdout: bytes = b""
    stderr: bytes = b""
    stdout_truncated: bool = False
    stderr_truncated: bool = False


class GuestAgent(JsonClient):
    """A connection to one guest's qemu-guest-agent socket; safe to share between threads (calls serialize)."""

    error = AgentError
    timeout_error = AgentTimeout
    closed_error = AgentDisconnected
    peer = "guest agent"
    channel = "guest agent channel"

    def __init__(self, socket_path: str | Path, timeout: float = DEFAULT_TIMEOUT) -> None:
        super().__init__(socket_path, timeout)

    def __enter__(self) -> GuestAgent:
        return self

    # -- generic call -------------------------------------------------------------------------------------

    def call(self, command: str, arguments: dict[str, Any] | None = None, timeout: float | None = None) -> Any:
        """Run one agent command and return its "return" value; raise AgentError / AgentTimeout."""
        return _unwrap(command, self._exchange(command, arguments, timeout))

    def _handshake(self, conn: JsonSocket, deadline: float) -> None:
        sync_id = random.randint(1, 2**31 - 1)
        conn.send_bytes(b"\xff", deadline)
        conn.send_json({"execute": "guest-sync-delimited", "arguments": {"id": sync_id}}, deadline)
        conn.skip_past(b"\xff", deadline)
        while True:  # answers to earlier, abandoned syncs may still be queued: skip them
            answer = conn.read_json(deadline, strip=b"\xff")
            if answer.get("return") == sync_id:
                break

    def _read_answer(self, conn: JsonSocket, deadline: float) -> dict[str, Any]:
        return conn.read_json(deadline, strip=b"\xff")

    # -- commands -----------------------------------------------------------------------------------------

    def ping(self, timeout: float | None = None) -> None:
        self.call("guest-ping", timeout=timeout)

    def info(self, timeout: float | None = None) -> dict[str, Any]:
        return self.call("guest-info", timeout=timeout)

    def exec(
        self,
        path: str,
        args: list[str] | tuple[str, ...] = (),
        *,
        capture_output: bool = True,
        input_data: bytes | None = None,
        env: list[str] | None = None,
        timeout: float | None = None,
    ) -> int:
        """Start ``path`` with ``args`` in the guest (no shell involved); return the guest PID."""
        arguments: dict[str, Any] = {"path": path, "arg": list(args), "capture-output": capture_output}
        if input_data is not None:
            arguments["input-data"] = base64.b64encode(input_data).decode()
        if env is not None:
            arguments["env"] = env
        result = self.call("guest-exec", arguments, timeout)
        return int(result["pid"])

    def exec_status(self, pid: int, timeout: float | None = None) -> ExecStatus:
        """Status of a guest-exec'd process. Once it reports exited, the agent forgets the PID."""
        result = self.call("guest-exec-status", {"pid": pid}, timeout)
        return ExecStatus(
            exited=bool(result.get("exited")),
            exitcode=result.get("exitcode"),
            signal=result.get("signal"),
            stdout=_b64(result.get("out-data")),
            stderr=_b64(result.get("err-data")),
            stdout_truncated=bool(result.get("out-truncated")),
            stderr_truncated=bool(result.get("err-truncated")),
        )

    def run(
        self, path: str, args: list[str] | tuple[str, ...] = (), *, timeout: float = 30.0, poll: float = 0.2
    ) -> ExecStatus:
        """guest-exec and wait for the exit; AgentTimeout if it runs longer than ``timeout``."""
        deadline = time.monotonic() + timeout
        pid = self.exec(path, args, timeout=min(self.timeout, timeout))
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AgentTimeout(f"{path} (guest PID {pid}) still running after {timeout:g} s")
            status = self.exec_status(pid, timeout=min(self.timeout, left))
            if status.exited:
                return status
            time.sleep(min(poll, max(0.0, deadline - time.monotonic())))

    def file_open(self, path: str, mode: str = "r", timeout: float | None = None) -> int:
        return int(self.call("guest-file-open", {"path": path, "mode": mode}, timeout))

    def file_close(self, handle: int, timeout: float | None = None) -> None:
        self.call("guest-file-close", {"handle": handle}, timeout)

    def file_write(self, handle: int, data: bytes, timeout: float | None = None) -> int:
        arguments = {"handle": handle, "buf-b64": base64.b64encode(data).decode()}
        return int(self.call("guest-file-write", arguments, timeout)["count"])

    def file_read(self, handle: int, count: int = FILE_CHUNK_BYTES, timeout: float | None = None) -> tuple[bytes, bool]:
        result = self.call("guest-file-read", {"handle": handle, "count": count}, timeout)
        return _b64(result.get("buf-b64")), bool(result.get("eof"))

    def write_file(self, path: str, data: bytes, timeout: float | None = None) -> None:
        """Create or replace a file in the guest with ``data``."""
        handle = self.file_open(path, "w", timeout)
        try:
            for start in range(0, len(data), FILE_CHUNK_BYTES):
                chunk = data[start : start + FILE_CHUNK_BYTES]
                written = self.file_write(handle, chunk, timeout)
                if written != len(chunk):
                    raise AgentError(f"short write to {path} in the guest ({written} of {len(chunk)} bytes)")
        finally:
            self.file_close(handle, timeout)

    def read_file(self, path: str, limit: int = 1024 * 1024, timeout: float | None = None) -> bytes:
        """Read up to ``limit`` bytes of a guest file; AgentError if it cannot be opened."""
        handle = self.file_open(path, "r", timeout)
        data = bytearray()
        try:
            while len(data) < limit:
                chunk, eof = self.file_read(handle, min(FILE_CHUNK_BYTES, limit - len(data)), timeout)
                data += chunk
                if eof or not chunk:
                    break
        finally:
            self.file_close(handle, timeout)
        return bytes(data)

    def shutdown(self, mode: str = "powerdown", timeout: float | None = None) -> None:
        """Ask the guest to power down ("powerdown", "halt" or "reboot").

        On success the agent sends no answer, so a quiet channel until the timeout counts as accepted; an error
        answer (e.g. the guest has no shutdown command) raises AgentError.
        """
        seconds = 1.0 if timeout is None else timeout
        try:
            self.call("guest-shutdown", {"mode": mode}, timeout=seconds)
        except (AgentTimeout, AgentDisconnected):  # no answer, or the guest went away: accepted
            return


def _unwrap(command: str, answer: dict[str, Any]) -> Any:
    if "error" in answer:
        error = answer["error"] if isinstance(answer["error"], dict) else {}
        desc = _one_line(error.get("desc", "unknown error"))
        raise AgentError(f"guest agent refused {command}: {desc}")
    if "return" not in answer:
        raise AgentError(f"guest agent sent an answer without 'return' to {command}")
    return answer["return"]


def _b64(value: object) -> bytes:
    if not isinstance(value, str) or not value:
        return b""
    try:
        return base64.b64decode(value, validate=True)
    except ValueError as exc:
        raise AgentError("guest agent sent malformed base64 data") from exc


def _one_line(value: object) -> str:
    text = str(value) if not isinstance(value, bytes) else value.decode(errors="replace")
    return one_line(text, 300)


__all__ = ["AgentDisconnected", "AgentError", "AgentTimeout", "ExecStatus", "GuestAgent"]
