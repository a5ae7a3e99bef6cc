"""/sys/kernel/mm/ksm: read every file this kernel has, typed; write a tunable, validated, with the kernel's answer.

No UI imports. Every function takes ``root`` (default "/") so tests can point it at a fixture tree.
"""

from __future__ import annotations

import errno
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ksmtop.model import KsmState

KSM_DIR = "sys/kernel/mm/ksm"
UINT_MAX = 2**32 - 1
INT_MAX = 2**31 - 1
ULONG_MAX = 2**64 - 1


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

_CHOICE_RE = re.compile(r"\[([^\]]+)\]")


def ksm_dir(root: str | Path = "/") -> Path:
    return Path(root) / KSM_DIR


def _parse(text: str) -> tuple[int | str, tuple[str, ...]]:
    text = text.strip()
    if "[" in text:
        chosen = _CHOICE_RE.search(text)
        options = tuple(word.strip("[]") for word in text.split())
        return (chosen.group(1) if chosen else text), options
    try:
        return int(text), ()
    except ValueError:
        return text, ()


def read_ksm(root: str | Path = "/") -> KsmState:
    """Read every file of /sys/kernel/mm/ksm that exists on this kernel."""
    directory = ksm_dir(root)
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return KsmState(
            available=False,
            error=f"{directory} does not exist: this kernel was built without KSM (CONFIG_KSM)",
        )
    except OSError as exc:
        return KsmState(available=False, error=f"cannot read {directory}: {exc.strerror}")
    values: dict[str, int | str] = {}
    choices: dict[str, tuple[str, ...]] = {}
    for name in names:
        try:
            with open(directory / name) as handle:
                value, options = _parse(handle.read())
        except OSError:
            continue  # unreadable (not root) or vanished: shown as absent
        values[name] = value
        if options:
            choices[name] = options
    return KsmState(available=True, values=values, choices=choices)


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
        if name in ("merge_across_nodes", "max_page_sharing"):
            return (
                f"kernel refused {name}={value} (EBUSY): pages are still merged. "
                f"Set run=2 (unmerge all), change {name}, then run=1"
            )
        return f"kernel refused {name}={value}: busy (EBUSY)"
    if err == errno.EINVAL:
        if name == "pages_to_scan" and state is not None and state.values.get("advisor_mode") not in (None, "none"):
            return "kernel refused pages_to_scan (EINVAL): the scan-time advisor sets it; set advisor_mode=none first"
        return f"kernel refused {name}={value} (EINVAL): value not accepted"
    if err == errno.ENOENT:
        return f"{name} does not exist on this kernel"
    return f"kernel refused {name}={value}: {os.strerror(err)}"


def write_tunable(name: str, text: str, root: str | Path = "/") -> WriteResult:
    """Validate, write with os.write (so the kernel's errno comes back at once), and re-read the value.

    Never raises for a refused value: the result says what happened. Raises nothing on permission errors either.
    """
    before = read_ksm(root)
    old = before.values.get(name)
    requested = text.strip()
    try:
        value = validate(name, text)
    except TunableError as exc:
        return WriteResult(name, old, requested, old, ok=False, message=str(exc))
    path = ksm_dir(root) / name
    try:
        fd = os.open(path, os.O_WRONLY)
    except OSError as exc:
        message = explain_errno(name, exc.errno or 0, value, before)
        return WriteResult(name, old, requested, old, ok=False, message=message, errno=exc.errno)
    try:
        os.write(fd, value.encode())
    except OSError as exc:
        message = explain_errno(name, exc.errno or 0, value, before)
        new = read_ksm(root).values.get(name)
        return WriteResult(name, old, requested, new, ok=False, message=message, errno=exc.errno)
    finally:
        os.close(fd)
    new = read_ksm(root).values.get(name)
    if str(new) != value:
        message = f"kernel accepted {name}={value} but reads back {new}"
    else:
        message = f"{name}: {old} → {new}"
    return WriteResult(name, old, requested, new, ok=True, message=message, warning=warning_for(name, value))
