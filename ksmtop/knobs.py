"""What ksmtop knows about KSM's files, without touching them: every writable knob with its accepted range and
meaning (from mm/ksm.c), every counter's meaning, validation of a requested value, the kernel's refusals in
words, and the WriteResult a write gives back.

The ground floor: no I/O, no UI. The collector (collect/ksm.py) reads and writes /sys/kernel/mm/ksm with it;
the screens, the recorder and the exporter describe knobs and counters from it.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass

from ksmtop.model import KsmState

UINT_MAX = 2**32 - 1
INT_MAX = 2**31 - 1
ULONG_MAX = 2**64 - 1
MAX_VALUE_CHARS = 32
"""Longest value text validate() looks at: ULONG_MAX has 20 digits, "scan-time" 9 characters."""


@dataclass(frozen=True, slots=True)
class Knob:
    """A writable KSM file: its accepted range (from mm/ksm.c) and what it does."""

    name: str
    minimum: int = 0
    maximum: int = UINT_MAX
    choices: tuple[str, ...] = ()
    unit: str = ""
    description: str = ""

    @property
    def is_choice(self) -> bool:
        return bool(self.choices)


KNOBS: dict[str, Knob] = {
    k.name: k
    for k in (
        Knob("run", 0, 2, unit="", description="0 stop, 1 run, 2 stop and unmerge every merged page"),
        Knob("pages_to_scan", 0, UINT_MAX, unit="pages", description="pages ksmd scans per wake-up"),
        Knob("sleep_millisecs", 0, UINT_MAX, unit="ms", description="ksmd's sleep between scan batches"),
        Knob("merge_across_nodes", 0, 1, description="merge pages from different NUMA nodes (1) or not (0)"),
        Knob("max_page_sharing", 2, INT_MAX, unit="mappings", description="most mappings per merged page"),
        Knob(
            "stable_node_chains_prune_millisecs",
            0,
            UINT_MAX,
            unit="ms",
            description="how often stale stable-node chains are pruned",
        ),
        Knob("use_zero_pages", 0, 1, description="merge empty pages with the kernel zero page"),
        Knob("smart_scan", 0, 1, description="skip pages that failed to merge for several scans"),
        Knob("advisor_mode", choices=("none", "scan-time"), description="auto-tune pages_to_scan (scan-time)"),
        Knob("advisor_max_cpu", 1, 100, unit="%", description="advisor: ksmd CPU ceiling"),
        Knob("advisor_min_pages_to_scan", 1, ULONG_MAX, unit="pages", description="advisor: lower bound"),
        Knob("advisor_max_pages_to_scan", 1, ULONG_MAX, unit="pages", description="advisor: upper bound"),
        Knob("advisor_target_scan_time", 1, ULONG_MAX, unit="s", description="advisor: target full-scan time"),
    )
}

COUNTERS: dict[str, str] = {
    "pages_scanned": "pages scanned so far",
    "pages_shared": "merged pages kept (one per distinct content)",
    "pages_sharing": "extra mappings of merged pages: the saving in pages",
    "pages_unshared": "pages checked, unique, kept in the unstable tree",
    "pages_volatile": "pages changing too fast to merge",
    "pages_skipped": "pages smart_scan skipped",
    "full_scans": "completed passes over all mergeable memory",
    "stable_node_chains": "stable-tree chains (pages shared past max_page_sharing)",
    "stable_node_dups": "duplicates in stable-tree chains",
    "ksm_zero_pages": "empty pages merged with the zero page",
    "general_profit": "bytes saved minus KSM's own metadata (may be negative)",
}

# Values the kernel accepts but that stop or nearly stop scanning.
SLOW_SLEEP_MS = 60_000


def advisor_running(state: KsmState) -> bool:
    """True while the kernel's scan-time advisor sets pages_to_scan itself (advisor_mode other than none)."""
    return state.values.get("advisor_mode") not in (None, "none")


ADVISOR_SETS_IT = (
    "the scan-time advisor sets pages_to_scan itself (advisor_mode=scan-time): the kernel refuses a write "
    "(EINVAL) and the advisor would override it anyway; set advisor_mode=none first (that puts pages_to_scan "
    "back to the kernel's default, 100)"
)


def advisor_note(name: str, state: KsmState | None) -> str | None:
    """What to say before a knob is edited while the advisor runs (pages_to_scan is the advisor's)."""
    if name == "pages_to_scan" and state is not None and advisor_running(state):
        return ADVISOR_SETS_IT
    return None


def writable_knobs(state: KsmState) -> list[Knob]:
    """The writable knobs present on this kernel, in a stable order."""
    return [knob for name, knob in KNOBS.items() if name in state.values]


class TunableError(Exception):
    """A tunable write that was refused, by validation or by the kernel; the message says why in words."""

    def __init__(self, message: str, errno_value: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno_value


@dataclass(frozen=True, slots=True)
class WriteResult:
    """The kernel's answer to a tunable write."""

    name: str
    old_value: int | str | None
    requested: str
    new_value: int | str | None
    ok: bool
    message: str
    warning: str | None = None
    errno: int | None = None


def validate(name: str, text: str) -> str:
    """Check a requested value before it reaches the kernel; returns the canonical text or raises TunableError."""
    knob = KNOBS.get(name)
    if knob is None:
        raise TunableError(f"{name} is not a writable KSM tunable")
    value = text.strip()
    if len(value) > MAX_VALUE_CHARS:
        raise TunableError(f"{name}: {len(value)} characters is not a value (at most {MAX_VALUE_CHARS})")
    if knob.is_choice:
        if value not in knob.choices:
            raise TunableError(f"{name} must be one of: {', '.join(knob.choices)}")
        return value
    if not value.isascii() or not value.isdigit():
        raise TunableError(f"{name} takes a whole number of {knob.unit or 'units'} (digits only), not {value!r}")
    number = int(value)
    if not knob.minimum <= number <= knob.maximum:
        raise TunableError(f"{name} must be between {knob.minimum} and {knob.maximum}, not {number}")
    return str(number)


def warning_for(name: str, value: str) -> str | None:
    """A warning for values the kernel accepts but that stop or nearly stop merging."""
    if name == "pages_to_scan" and value == "0":
        return "pages_to_scan 0: ksmd wakes up but scans nothing, so merging stops"
    if name == "sleep_millisecs" and value.isdigit() and int(value) >= SLOW_SLEEP_MS:
        return f"sleep_millisecs {value}: ksmd sleeps {int(value) / 1000:.0f} s between batches; merging crawls"
    if name == "run" and value == "2":
        return "run 2 unmerges every merged page: memory use will rise by the current saving"
    return None


def explain_errno(name: str, err: int, value: str, state: KsmState | None = None) -> str:
    """The kernel's refusal, in words."""
    if err in (errno.EACCES, errno.EPERM):
        return f"not allowed to write {name}: writing KSM tunables needs root"
    if err == errno.EBUSY:
        if name in UNMERGE_FIRST:
            return (
                f"kernel refused {name}={value} (EBUSY): pages are still merged. "
                f"Set run=2 (unmerge all), change {name}, then run=1"
            )
        return f"kernel refused {name}={value}: busy (EBUSY)"
    if err == errno.EINVAL:
        if name == "pages_to_scan" and state is not None and advisor_running(state):
            return "kernel refused pages_to_scan (EINVAL): the scan-time advisor sets it; set advisor_mode=none first"
        return f"kernel refused {name}={value} (EINVAL): value not accepted"
    if err == errno.ENOENT:
        return f"{name} does not exist on this kernel"
    return f"kernel refused {name}={value}: {os.strerror(err)}"


UNMERGE_FIRST = ("merge_across_nodes", "max_page_sharing")
"""Knobs the kernel refuses (EBUSY) while pages are merged."""


def refusal_words(result: WriteResult) -> str:
    """A refusal in a few words, for the knob's own row (the whole explanation is ``result.message``)."""
    err = result.errno
    if err in (errno.EACCES, errno.EPERM):
        return "needs root"
    if err == errno.EBUSY:
        return "pages merged: run=2 first" if result.name in UNMERGE_FIRST else "busy (EBUSY)"
    if err == errno.EINVAL:
        return "the advisor sets it" if "advisor" in result.message else "not accepted (EINVAL)"
    if err == errno.ENOENT:
        return "not on this kernel"
    if err is not None:
        return os.strerror(err)
    return result.message.removeprefix(f"{result.name} ").removeprefix(f"{result.name}: ")
