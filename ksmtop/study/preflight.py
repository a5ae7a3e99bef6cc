"""What would make the study's figures meaningless, found before it starts: other qemu guests, other processes
using KSM, pages merged by someone else. KSM is one per host, and host memory is one per host.

No UI imports. Names from /proc go through safe_name(): any local user names their own processes.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from ksmtop.collect.ksm import ksm_dir, read_ksm
from ksmtop.collect.procfs import ProcessTable
from ksmtop.model import GuestSample, KsmState
from ksmtop.safetext import safe_name

SHOWN = 5
"""Processes named in a refusal; the rest are counted."""


def label(process: GuestSample) -> str:
    """'NAME (PID n)'; qemu processes say so ('qemu (PID n)' when qemu was started without -name)."""
    name = safe_name(process.name)
    if process.kind == "qemu":
        name = "qemu" if name == str(process.pid) else f"qemu {name}"
    return f"{name} (PID {process.pid})"


def describe(processes: Iterable[GuestSample]) -> str:
    items = [f"{safe_name(p.name)} (PID {p.pid})" for p in processes]
    more = f" and {len(items) - SHOWN} more" if len(items) > SHOWN else ""
    return ", ".join(items[:SHOWN]) + more


def foreign(guests: Iterable[GuestSample], ours: set[int]) -> list[GuestSample]:
    """Processes in a snapshot that are not the study's guests (the snapshot's scope is every KSM user)."""
    return [g for g in guests if g.pid not in ours]


def obstacles(others: list[GuestSample], ksm: KsmState) -> list[str]:
    """Why the host is not fit for the study, in words (empty: fit). ``others`` are every qemu process and every
    process using KSM that the study did not start."""
    reasons = []
    qemus = [p for p in others if p.kind == "qemu"]
    users = [p for p in others if p.kind != "qemu"]
    if qemus:
        reasons.append(f"other qemu guests are running: {describe(qemus)}")
    if users:
        reasons.append(f"other processes use KSM: {describe(users)}")
    sharing = ksm.get("pages_sharing") or 0
    if ksm.running and sharing > 0 and not others:
        reasons.append(f"KSM is running and {sharing} pages are merged by processes the study cannot see")
    return reasons


def host_problems(root: str | Path = "/") -> list[str]:
    """What stops the study from running at all (not root, no KSM)."""
    if os.geteuid() != 0:
        return ["the study writes KSM knobs and reads per-process KSM figures: run it as root"]
    state = read_ksm(root)
    if not state.available:
        return [state.error or f"{ksm_dir(root)} is missing"]
    return []


def other_users(root: str | Path = "/") -> tuple[list[GuestSample], KsmState]:
    """Every qemu process and every process using KSM on the host now, and the KSM state."""
    with ProcessTable(root=root, scope="ksm") as table:
        table.discover()
        processes = table.sample()
    return processes, read_ksm(root)
