"""Where the lab keeps its files: the built image (cache) and running guests' sockets and state (runtime)."""

from __future__ import annotations

import os
from pathlib import Path


class LabError(Exception):
    """A lab operation failed; the message is one line meant for the user."""


def cache_dir() -> Path:
    """$XDG_CACHE_HOME/ksmtop/lab, else ~/.cache/ksmtop/lab."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ksmtop" / "lab"


def runtime_dir() -> Path:
    """/run/ksmtop/lab for root, else $XDG_RUNTIME_DIR/ksmtop/lab, else /tmp/ksmtop-UID/lab."""
    if os.geteuid() == 0 and Path("/run").is_dir():
        return Path("/run/ksmtop/lab")
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg:
        return Path(xdg) / "ksmtop" / "lab"
    return Path(f"/tmp/ksmtop-{os.getuid()}") / "lab"


def guest_agents_dir() -> Path:
    """The workload scripts (guest_agents/ at the top of the source tree)."""
    return Path(__file__).resolve().parents[2] / "guest_agents"


def boot_id() -> str:
    """An id that changes on every host boot (for caches that are only valid until the next boot)."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown"


GUEST_AGENTS_IN_IMAGE = "/usr/local/share/ksmtop/agents"
"""Where the lab image holds the workload scripts inside the guest."""
