"""Host-wide figures: /proc/meminfo, cow_ksm from /proc/vmstat, the ksmd kernel thread's CPU time, and the
transparent huge page settings (/sys/kernel/mm/transparent_hugepage/enabled and defrag).

No UI imports. Every reader takes ``root`` (default "/").
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ksmtop.collect.procfs import iter_pids, parse_stat
from ksmtop.model import HostSample


def _line_value(text: str, prefix: str) -> list[str] | None:
    """The words after ``prefix`` on the line that starts with it (the newline in front lets the first line match
    like the others), or None when no line does. /proc/vmstat has some 180 lines and /proc/meminfo some 55, and
    ksmtop wants a few of them each sample: they are found, not parsed whole."""
    key = f"\n{prefix}"
    at = f"\n{text}".find(key)
    if at < 0:
        return None
    start = at + len(key) - 1  # where the value starts in text
    end = text.find("\n", start)
    return text[start : end if end >= 0 else None].split()


def vmstat_counter(text: str, name: str) -> int | None:
    """One counter of /proc/vmstat ("name value" lines), None when absent or not a number."""
    words = _line_value(text, f"{name} ")
    try:
        return int(words[0]) if words else None
    except ValueError:
        return None


def meminfo_value(text: str, name: str) -> int | None:
    """One line of /proc/meminfo ("Name:   value kB"): bytes for a kB line, the plain number otherwise
    (HugePages_Total is a count); None when absent or not a number."""
    words = _line_value(text, f"{name}:")
    if not words:
        return None
    try:
        number = int(words[0])
    except ValueError:
        return None
    return number * 1024 if words[1:2] == ["kB"] else number


THP_DIR = "sys/kernel/mm/transparent_hugepage"


def selected_choice(text: str | None) -> str | None:
    """The bracketed word of a sysfs choice file ("always [madvise] never" -> "madvise"); None when absent."""
    if not text:
        return None
    start, end = text.find("["), text.find("]")
    if start < 0 or end <= start:
        return None
    return text[start + 1 : end].strip() or None


def find_ksmd(root: str | Path = "/") -> int | None:
    """PID of the ksmd kernel thread (a child of kthreadd, PID 2), or None."""
    proc = Path(root) / "proc"
    for pid in iter_pids(root):
        try:
            with open(proc / str(pid) / "comm", "rb") as handle:
                if handle.read().strip() == b"ksmd":
                    return pid
        except OSError:
            continue
    return None


@dataclass
class HostReader:
    """Reads host figures; keeps /proc/meminfo, /proc/vmstat and ksmd's stat open for pread."""

    root: str | Path = "/"
    page_size: int = field(default_factory=lambda: os.sysconf("SC_PAGE_SIZE"))
    clock_ticks: int = field(default_factory=lambda: os.sysconf("SC_CLK_TCK"))
    _fds: dict[str, int] = field(default_factory=dict)
    _ksmd_pid: int | None = None
    _ksmd_searched: bool = False

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()

    def __enter__(self) -> HostReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _read(self, relative: str, size: int = 16384) -> str | None:
        fd = self._fds.get(relative)
        try:
            if fd is None:
                fd = self._fds[relative] = os.open(Path(self.root) / relative, os.O_RDONLY | os.O_CLOEXEC)
            return os.pread(fd, size, 0).decode(errors="replace")
        except OSError:
            if relative in self._fds:
                os.close(self._fds.pop(relative))
            return None

    def _ksmd_cpu_seconds(self) -> float | None:
        if not self._ksmd_searched:
            self._ksmd_pid = find_ksmd(self.root)
            self._ksmd_searched = True
        if self._ksmd_pid is None:
            return None
        text = self._read(f"proc/{self._ksmd_pid}/stat", 1024)
        if text is None:
            self._ksmd_searched = False  # gone (module reload?): search again next time
            return None
        return parse_stat(text.encode())[3] / self.clock_ticks

    def sample(self) -> HostSample:
        meminfo = self._read("proc/meminfo") or ""
        vmstat = self._read("proc/vmstat", 65536) or ""
        ksmd_cpu = self._ksmd_cpu_seconds()
        return HostSample(
            page_size=self.page_size,
            clock_ticks=self.clock_ticks,
            mem_total_bytes=meminfo_value(meminfo, "MemTotal") or 0,
            mem_available_bytes=meminfo_value(meminfo, "MemAvailable") or 0,
            mem_free_bytes=meminfo_value(meminfo, "MemFree") or 0,
            anon_bytes=meminfo_value(meminfo, "AnonPages") or 0,
            cow_ksm=vmstat_counter(vmstat, "cow_ksm"),
            ksmd_pid=self._ksmd_pid,
            ksmd_cpu_seconds=ksmd_cpu,
            ncpus=os.cpu_count() or 1,
            thp_enabled=selected_choice(self._read(f"{THP_DIR}/enabled", 256)),
            thp_defrag=selected_choice(self._read(f"{THP_DIR}/defrag", 256)),
        )
