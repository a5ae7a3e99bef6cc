"""Guests from /proc: qemu process discovery and per-process memory, KSM and fault figures.

Tracked processes keep their /proc files open and are re-read with pread, which regenerates a proc file from
offset 0 without a new open(): the cheapest way to sample many processes every tick. Where pip built it, the
reads and their parsing run in C (``procread``), one call for every process; the Python loop here is the
fallback, and reads any process the C parser hands back. A process that disappears
mid-read is dropped without error. Names (comm, qemu's ``-name``) come from whoever started the process: they are
made safe (``ksmtop.safetext``) here, once, where they enter ksmtop. smaps_rollup (PSS) is expensive (about 8 ms per GiB of RSS) and is read only
on request (see ``read_pss``).

No UI imports. Every reader takes ``root`` (default "/").
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ksmtop.collect import procread
from ksmtop.collect.procread_layout import (
    ALL_KSM_PRESENT,
    KSMTOP_HAS_MERGE_ANY,
    KSMTOP_HAS_MERGEABLE,
    KSMTOP_HAS_MERGING,
    KSMTOP_HAS_PROFIT,
    KSMTOP_HAS_RMAP,
    KSMTOP_HAS_ZERO,
    KSMTOP_PYTHON,
    KSMTOP_ROW,
)
from ksmtop.model import GuestSample, Scope, guest_sample
from ksmtop.safetext import safe_name

QEMU_PREFIXES = ("qemu-system-", "qemu-kvm")
READ_SIZE = 4096
STAT_READ_SIZE = 2048
"""/proc/PID/stat is one line of 52 numbers and a comm of at most 64 bytes: well under 2 KiB."""
SMALL_READ_SIZE = 512
"""statm (7 numbers) and ksm_stat (6 short lines)."""
# A process whose name did not match is looked at again while it is young: libvirt forks, then execs qemu.
RECHECK_YOUNG_S = 5.0
# In "ksm" scope, processes that do not use KSM are re-checked this often (a ksm_stat read each).
KSM_SCOPE_RECHECK_S = 5.0
# /proc/PID/stat states of a process that has exited but is not yet reaped: statm reads zeros, ksm_stat nothing.
DEAD_STATES = (ord("Z"), ord("X"))


def is_qemu_comm(comm: str) -> bool:
    return comm.startswith(QEMU_PREFIXES)


def guest_name_from_cmdline(argv: list[str], fallback: str) -> str:
    """The guest name from qemu's ``-name guest=NAME,...`` or ``-name NAME`` (commas doubled in qemu syntax)."""
    for i, arg in enumerate(argv[:-1]):
        if arg not in ("-name", "--name"):
            continue
        value = argv[i + 1]
        options = _split_qemu_options(value)
        if not options:
            continue
        for option in options:
            if option.startswith("guest="):
                return option[len("guest=") :] or fallback
        first = options[0]
        if "=" not in first:
            return first or fallback
    return fallback


def _split_qemu_options(value: str) -> list[str]:
    """Split a qemu option string at single commas; ',,' is an escaped comma."""
    parts: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(value):
        char = value[i]
        if char == ",":
            if i + 1 < len(value) and value[i + 1] == ",":
                current.append(",")
                i += 2
                continue
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
        i += 1
    parts.append("".join(current))
    return parts


def parse_stat(data: bytes) -> tuple[str, int, int, int, int, int]:
    """(comm, minflt, majflt, utime+stime ticks, starttime ticks, state) from /proc/PID/stat.

    comm can hold spaces and parentheses, so fields are split after the last ')'.
    """
    right = data.rindex(b")")
    comm = data[data.index(b"(") + 1 : right].decode(errors="replace")
    fields = data[right + 2 :].split()
    # fields[0] is state (field 3); minflt is field 10, majflt 12, utime 14, stime 15, starttime 22.
    return comm, int(fields[7]), int(fields[9]), int(fields[11]) + int(fields[12]), int(fields[19]), fields[0][0]


def parse_statm(data: bytes, page_size: int) -> tuple[int, int]:
    """(rss bytes, shared bytes) from /proc/PID/statm (pages: size resident shared text lib data dt)."""
    fields = data.split()
    return int(fields[1]) * page_size, int(fields[2]) * page_size


@dataclass(frozen=True, slots=True)
class KsmStat:
    merging_pages: int | None = None
    zero_pages: int | None = None
    rmap_items: int | None = None
    profit_bytes: int | None = None
    mergeable: bool | None = None
    merge_any: bool | None = None


UNKNOWN_KSM = KsmStat()


def parse_ksm_stat(data: bytes) -> KsmStat:
    """Parse /proc/PID/ksm_stat; fields vary by kernel ('name value' or 'name: yes')."""
    return KsmStat(*_ksm_stat_values(data))


KsmValues = tuple[int | None, int | None, int | None, int | None, bool | None, bool | None]
UNKNOWN_KSM_VALUES: KsmValues = (None, None, None, None, None, None)


def _ksm_stat_values(data: bytes) -> KsmValues:
    """KsmStat's fields as a tuple, for the per-tick loop: bytes, one split, one dict, no dataclass.

    Text that is not one 'name value' pair per line takes the careful line-by-line path.
    """
    words = data.split()
    if len(words) != 2 * data.count(b"\n"):
        stat = _parse_ksm_stat_lines(data)
        return (stat.merging_pages, stat.zero_pages, stat.rmap_items, stat.profit_bytes, stat.mergeable, stat.merge_any)
    values = dict(zip(words[::2], words[1::2]))  # noqa: B905 (lengths checked above)
    mergeable = values.get(b"ksm_mergeable:")
    merge_any = values.get(b"ksm_merge_any:")
    return (
        _int(values.get(b"ksm_merging_pages")),
        _int(values.get(b"ksm_zero_pages")),
        _int(values.get(b"ksm_rmap_items")),
        _int(values.get(b"ksm_process_profit")),
        None if mergeable is None else mergeable == b"yes",
        None if merge_any is None else merge_any == b"yes",
    )


def _int(value: bytes | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


def _parse_ksm_stat_lines(data: bytes) -> KsmStat:
    values: dict[str, str] = {}
    for line in data.decode(errors="replace").splitlines():
        key, _, value = line.replace(":", " ", 1).partition(" ")
        values[key.strip()] = value.strip()

    def number(key: str) -> int | None:
        try:
            return int(values[key])
        except (KeyError, ValueError):
            return None

    def flag(key: str) -> bool | None:
        value = values.get(key)
        return None if value is None else value == "yes"

    return KsmStat(
        merging_pages=number("ksm_merging_pages"),
        zero_pages=number("ksm_zero_pages"),
        rmap_items=number("ksm_rmap_items"),
        profit_bytes=number("ksm_process_profit"),
        mergeable=flag("ksm_mergeable"),
        merge_any=flag("ksm_merge_any"),
    )


def _pread(fd: int) -> bytes:
    return os.pread(fd, READ_SIZE, 0)


KSM_KEYS = (
    b"ksm_merging_pages", b"ksm_zero_pages", b"ksm_rmap_items", b"ksm_process_profit",
    b"ksm_mergeable:", b"ksm_merge_any:",
)  # fmt: skip
"""The ksm_stat names behind KsmValues, in its order."""


def ksm_layout(data: bytes) -> tuple[list[bytes], tuple[int, ...]] | None:
    """How this kernel lays out ksm_stat: (its names in file order, the value index of each of KSM_KEYS).

    The layout is the same for every process of a running kernel, so the per-tick path only checks that the
    names are where they were and converts the values (``ksm_values_by_layout``). None when the file lacks a
    name or is not one 'name value' pair per line: those files take the careful path every time.
    """
    words = data.split()
    if len(words) != 2 * data.count(b"\n"):
        return None
    names = words[::2]
    if len(set(names)) != len(names) or not all(key in names for key in KSM_KEYS):
        return None
    return names, tuple(names.index(key) for key in KSM_KEYS)


def ksm_values_by_layout(data: bytes, layout: tuple[list[bytes], tuple[int, ...]]) -> KsmValues:
    """KsmValues of ksm_stat through a learned layout (one split, no dict); any surprise takes the careful path."""
    words = data.split()
    names, (merging, zero, rmap, profit, mergeable, merge_any) = layout
    if words[::2] != names:
        return _ksm_stat_values(data)
    values = words[1::2]
    try:
        return (
            int(values[merging]), int(values[zero]), int(values[rmap]), int(values[profit]),
            values[mergeable] == b"yes", values[merge_any] == b"yes",
        )  # fmt: skip
    except ValueError:
        return _ksm_stat_values(data)


def _open(path: str) -> int | None:
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None


SAMPLE_FIELDS = (
    "pid", "name", "kind", "start_ticks", "rss_bytes", "anon_bytes", "shared_bytes",
    "ksm_merging_pages", "ksm_zero_pages", "ksm_rmap_items", "ksm_process_profit_bytes", "ksm_mergeable",
    "ksm_merge_any", "cpu_seconds", "minor_faults", "major_faults",
)  # fmt: skip
"""The GuestSample fields ProcessTable.sample fills, in the model's order."""


@dataclass(slots=True)
class TrackedProcess:
    """Open file descriptors of one tracked process."""

    pid: int
    name: str
    kind: str
    start_ticks: int
    stat_fd: int
    statm_fd: int
    ksm_fd: int | None  # ksm_stat, or ksm_merging_pages on older kernels, or None
    ksm_fd_is_stat: bool
    # The last statm and ksm_stat texts and what they said: at a steady state most of them read the same from one
    # sample to the next, and comparing bytes costs a tenth of parsing them again.
    statm_text: bytes | None = None
    memory: tuple[int, int] = (0, 0)
    ksm_text: bytes | None = None
    ksm: KsmValues = UNKNOWN_KSM_VALUES

    def close(self) -> None:
        for fd in (self.stat_fd, self.statm_fd, self.ksm_fd):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass


@dataclass(slots=True)
class _Candidate:
    first_seen: float
    checked: float


@dataclass
class ProcessTable:
    """Finds qemu guests (or every KSM user) and samples them; keeps file descriptors open between samples.

    Use as a context manager or call close(); file descriptors are released then.
    """

    root: str | Path = "/"
    scope: Scope = "qemu"
    page_size: int = field(default_factory=lambda: os.sysconf("SC_PAGE_SIZE"))
    clock_ticks: int = field(default_factory=lambda: os.sysconf("SC_CLK_TCK"))
    tracked: dict[int, TrackedProcess] = field(default_factory=dict)
    _others: dict[int, _Candidate] = field(default_factory=dict)
    _self_pid: int = field(default_factory=os.getpid)
    _ksm_layout: tuple[list[bytes], tuple[int, ...]] | bool | None = None
    """ksm_stat's layout on this kernel (``ksm_layout``); False: it has none, every read takes the careful path."""
    compiled: bool = True
    """Read through the compiled reader where it was built (False: the Python loop, e.g. to compare the two)."""
    _reader: procread.CompiledReader | None = None

    def __post_init__(self) -> None:
        self._proc = str(Path(self.root) / "proc")

    def __enter__(self) -> ProcessTable:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for process in self.tracked.values():
            process.close()
        self.tracked.clear()
        self._others.clear()

    def set_scope(self, scope: Scope) -> None:
        if scope != self.scope:
            self.close()
            self.scope = scope

    # --- discovery ------------------------------------------------------------------------------------------
    def discover(self, now: float | None = None) -> None:
        """Start tracking new matching processes, forget vanished ones."""
        now = time.monotonic() if now is None else now
        try:
            entries = os.listdir(self._proc)
        except OSError:
            return
        alive: set[int] = set()
        for entry in entries:
            if not entry.isdigit():
                continue
            pid = int(entry)
            alive.add(pid)
            if pid in self.tracked or pid == self._self_pid:
                continue
            candidate = self._others.get(pid)
            if candidate is not None and not self._due(candidate, now):
                continue
            if candidate is None:
                candidate = self._others[pid] = _Candidate(first_seen=now, checked=now)
            candidate.checked = now
            process = self._try_track(pid)
            if process is not None:
                self.tracked[pid] = process
                del self._others[pid]
        for pid in [pid for pid in self.tracked if pid not in alive]:
            self.tracked.pop(pid).close()
        for pid in [pid for pid in self._others if pid not in alive]:
            del self._others[pid]

    def _due(self, candidate: _Candidate, now: float) -> bool:
        if now - candidate.first_seen < RECHECK_YOUNG_S:
            return True
        return self.scope == "ksm" and now - candidate.checked >= KSM_SCOPE_RECHECK_S

    def _try_track(self, pid: int) -> TrackedProcess | None:
        base = f"{self._proc}/{pid}"
        stat_fd = _open(f"{base}/stat")
        if stat_fd is None:
            return None
        keep = False
        statm_fd = ksm_fd = None
        try:
            comm, *_rest, start_ticks, state = parse_stat(_pread(stat_fd))
            if state in DEAD_STATES:
                return None
            is_qemu = is_qemu_comm(comm)
            if self.scope == "qemu" and not is_qemu:
                return None
            ksm_fd, ksm_is_stat = self._open_ksm(base)
            if self.scope == "ksm" and not is_qemu and not _uses_ksm(ksm_fd, ksm_is_stat):
                return None
            statm_fd = _open(f"{base}/statm")
            if statm_fd is None:
                return None
            name = guest_name_from_cmdline(_read_cmdline(base), fallback=str(pid)) if is_qemu else comm
            name = safe_name(name)  # any local user names its processes: never raw to a terminal
            keep = True
            return TrackedProcess(
                pid=pid,
                name=name,
                kind="qemu" if is_qemu else "process",
                start_ticks=start_ticks,
                stat_fd=stat_fd,
                statm_fd=statm_fd,
                ksm_fd=ksm_fd,
                ksm_fd_is_stat=ksm_is_stat,
            )
        except (OSError, ValueError, IndexError):
            return None
        finally:
            if not keep:
                for fd in (stat_fd, statm_fd, ksm_fd):
                    if fd is not None:
                        os.close(fd)

    @staticmethod
    def _open_ksm(base: str) -> tuple[int | None, bool]:
        fd = _open(f"{base}/ksm_stat")
        if fd is not None:
            try:
                _pread(fd)  # root only: a non-root reader gets EACCES here, not at open
                return fd, True
            except OSError:
                os.close(fd)
        fd = _open(f"{base}/ksm_merging_pages")
        if fd is not None:
            try:
                _pread(fd)
                return fd, False
            except OSError:
                os.close(fd)
        return None, False

    # --- sampling -------------------------------------------------------------------------------------------
    def sample(self) -> list[GuestSample]:
        """Read every tracked process once; vanished ones are dropped (and their files closed)."""
        processes = list(self.tracked.values())
        gone: list[int] = []
        if self.compiled and processes and procread.lib is not None:
            samples = self._sample_compiled(processes, gone)
        else:
            samples = self._sample_python(processes, gone)
        for pid in gone:
            self.tracked.pop(pid).close()
        return samples

    def _sample_compiled(self, processes: list[TrackedProcess], gone: list[int]) -> list[GuestSample]:
        """The C reader's rows made into samples; a process it hands back is read by the Python loop."""
        if self._reader is None:
            self._reader = procread.CompiledReader()
        values = self._reader.read(processes)
        python, all_ksm = KSMTOP_PYTHON, ALL_KSM_PRESENT
        ticks, page = self.clock_ticks, self.page_size
        samples: list[GuestSample] = []
        append = samples.append
        rows = zip(*[iter(values)] * KSMTOP_ROW, strict=True)  # the flat list taken a row at a time
        for process, row in zip(processes, rows, strict=True):
            (status, _state, start_ticks, minflt, majflt, cpu_ticks, rss, shared,
             merging, zero, rmap, profit, mergeable, merge_any, present) = row  # fmt: skip
            if status:
                if status == python:
                    samples.extend(self._sample_python([process], gone))
                else:
                    gone.append(process.pid)
                continue
            rss *= page
            shared *= page
            if present == all_ksm:  # every value there: passed as they are, no tuple (0.15 µs of 7.5 here)
                sample = guest_sample(
                    process.pid, process.name, process.kind, start_ticks, rss, rss - shared, shared,
                    merging, zero, rmap, profit, mergeable == 1, merge_any == 1, cpu_ticks / ticks, minflt, majflt,
                )  # fmt: skip
            else:
                ksm = _present_ksm_values(present, merging, zero, rmap, profit, mergeable, merge_any)
                sample = guest_sample(
                    process.pid, process.name, process.kind, start_ticks, rss, rss - shared, shared, *ksm,
                    cpu_ticks / ticks, minflt, majflt,
                )  # fmt: skip
            append(sample)
        return samples

    def _sample_python(self, processes: list[TrackedProcess], gone: list[int]) -> list[GuestSample]:
        """The Python loop: three preads per process (stat, statm, ksm_stat) into small buffers, stat split only
        up to starttime, ksm_stat read through the layout learned from the first process, statm and ksm_stat
        parsed only when their text differs from the last sample's. Vanished processes go to ``gone``."""
        samples: list[GuestSample] = []
        append = samples.append
        ticks = self.clock_ticks
        page = self.page_size
        pread = os.pread
        layout = self._ksm_layout
        for process in processes:
            pid = process.pid
            try:
                stat = pread(process.stat_fd, STAT_READ_SIZE, 0)
                fields = stat[stat.rindex(b")") + 2 :].split(None, 20)  # as parse_stat; comm not decoded
                start_ticks = int(fields[19])
                if start_ticks != process.start_ticks or fields[0][0] in DEAD_STATES:
                    gone.append(pid)
                    continue
                data = pread(process.statm_fd, SMALL_READ_SIZE, 0)
                if data == process.statm_text:
                    rss, shared = process.memory
                else:
                    statm = data.split(None, 3)
                    rss = int(statm[1]) * page
                    shared = int(statm[2]) * page
                    process.statm_text, process.memory = data, (rss, shared)
                ksm_fd = process.ksm_fd
                if ksm_fd is None:
                    ksm = UNKNOWN_KSM_VALUES
                else:
                    data = pread(ksm_fd, SMALL_READ_SIZE, 0)
                    if data == process.ksm_text:
                        ksm = process.ksm
                    elif process.ksm_fd_is_stat:
                        if layout is None:  # learn it from the first file with text (a zombie's is empty)
                            layout = ksm_layout(data) or (False if data else None)
                            self._ksm_layout = layout
                        ksm = ksm_values_by_layout(data, layout) if layout else _ksm_stat_values(data)
                        process.ksm_text, process.ksm = data, ksm
                    else:
                        ksm = (int(data), None, None, None, None, None)
                        process.ksm_text, process.ksm = data, ksm
                minflt, majflt = int(fields[7]), int(fields[9])
                cpu_ticks = int(fields[11]) + int(fields[12])
            except (OSError, ValueError, IndexError):
                gone.append(pid)
                continue
            # Positional, in SAMPLE_FIELDS order (checked by a unit test): keywords cost 15% of a sample here.
            append(
                guest_sample(
                    pid, process.name, process.kind, start_ticks, rss, rss - shared, shared, *ksm,
                    cpu_ticks / ticks, minflt, majflt,
                )
            )  # fmt: skip
        return samples


def _present_ksm_values(
    present: int, merging: int, zero: int, rmap: int, profit: int, mergeable: int, merge_any: int
) -> KsmValues:
    """KsmValues of a C row whose ksm file lacked some values (an older kernel's ksm_stat, or
    ksm_merging_pages alone): None where the file said nothing."""
    return (
        merging if present & KSMTOP_HAS_MERGING else None,
        zero if present & KSMTOP_HAS_ZERO else None,
        rmap if present & KSMTOP_HAS_RMAP else None,
        profit if present & KSMTOP_HAS_PROFIT else None,
        mergeable == 1 if present & KSMTOP_HAS_MERGEABLE else None,
        merge_any == 1 if present & KSMTOP_HAS_MERGE_ANY else None,
    )


def _uses_ksm(fd: int | None, is_stat: bool) -> bool:
    if fd is None:
        return False
    try:
        data = _pread(fd)
    except OSError:
        return False
    if is_stat:
        stat = parse_ksm_stat(data)
        return bool(stat.mergeable or stat.merge_any or (stat.merging_pages or 0) > 0)
    try:
        return int(data) > 0
    except ValueError:
        return False


def _read_cmdline(base: str) -> list[str]:
    try:
        with open(f"{base}/cmdline", "rb") as handle:
            raw = handle.read(256 * 1024)
    except OSError:
        return []
    return [arg.decode(errors="replace") for arg in raw.split(b"\0") if arg]


def read_cmdline(pid: int, root: str | Path = "/") -> list[str]:
    """A process's argv (empty when it is gone or unreadable)."""
    return _read_cmdline(f"{Path(root) / 'proc'}/{pid}")


def read_status_memory(pid: int, root: str | Path = "/") -> dict[str, int]:
    """RssAnon, RssFile, RssShmem, VmSwap ... from /proc/PID/status, in bytes (for the selected guest)."""
    result: dict[str, int] = {}
    try:
        with open(Path(root) / "proc" / str(pid) / "status", "rb") as handle:
            for line in handle:
                key, _, rest = line.partition(b":")
                if key.startswith((b"Rss", b"Vm")) and rest.strip().endswith(b"kB"):
                    result[key.decode()] = int(rest.split()[0]) * 1024
    except (OSError, ValueError):
        pass
    return result


def read_pss(pid: int, root: str | Path = "/") -> int | None:
    """PSS in bytes from /proc/PID/smaps_rollup. Costs about 8 ms per GiB of RSS: call on demand only."""
    try:
        with open(Path(root) / "proc" / str(pid) / "smaps_rollup", "rb") as handle:
            for line in handle:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


@dataclass(frozen=True, slots=True)
class Rollup:
    """The figures ksmtop takes from /proc/PID/smaps_rollup, in bytes."""

    pss_bytes: int
    anon_huge_bytes: int | None
    """AnonHugePages: transparent huge pages mapped (None: the kernel does not say)."""
    hugetlb_bytes: int | None
    """Private_Hugetlb + Shared_Hugetlb: hugetlbfs pages mapped (None: the kernel does not say)."""


ROLLUP_KEYS = (b"Pss:", b"AnonHugePages:", b"Private_Hugetlb:", b"Shared_Hugetlb:")


def read_rollup(pid: int, root: str | Path = "/") -> Rollup | None:
    """PSS, transparent and hugetlbfs huge pages from /proc/PID/smaps_rollup (one read: about 8 ms per GiB of
    RSS, so on demand only, as ``read_pss``). None when the process is gone, unreadable or has no Pss line."""
    values: dict[bytes, int] = {}
    try:
        with open(Path(root) / "proc" / str(pid) / "smaps_rollup", "rb") as handle:
            for line in handle:
                words = line.split()
                if words and words[0] in ROLLUP_KEYS:
                    values[words[0]] = int(words[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    if b"Pss:" not in values:
        return None
    hugetlb = [values[key] for key in (b"Private_Hugetlb:", b"Shared_Hugetlb:") if key in values]
    return Rollup(values[b"Pss:"], values.get(b"AnonHugePages:"), sum(hugetlb) if hugetlb else None)


def iter_pids(root: str | Path = "/") -> Iterable[int]:
    try:
        entries = os.listdir(Path(root) / "proc")
    except OSError:
        return
    for entry in entries:
        if entry.isdigit():
            yield int(entry)
