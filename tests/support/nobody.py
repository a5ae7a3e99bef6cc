"""Run a piece of a test as an unprivileged user (uid 65534) in a forked child, and get its findings back.

/root is not readable by nobody, so every module the child needs must be imported before it drops root:
``warm_up`` runs as root first for that.
"""

from __future__ import annotations

import json
import os
import traceback
from collections.abc import Callable


def run_as_nobody(observe: Callable[[], dict], warm_up: Callable[[], object] | None = None) -> dict:
    """``observe()``'s JSON-able dict, computed as uid/gid 65534; {"error": ...} when it raised."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        try:
            os.close(read_fd)
            if warm_up is not None:
                warm_up()
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            payload = json.dumps(observe())
        except BaseException as exc:  # report, never fall back into pytest in the child
            where = "".join(traceback.format_exception(exc)[-12:])  # where it raised: a failure must say
            payload = json.dumps({"error": f"{type(exc).__name__}: {exc}", "traceback": where})
        os.write(write_fd, payload.encode())
        os._exit(0)
    os.close(write_fd)
    chunks = []
    while chunk := os.read(read_fd, 65536):
        chunks.append(chunk)
    os.close(read_fd)
    os.waitpid(pid, 0)
    return json.loads(b"".join(chunks) or b"{}")
