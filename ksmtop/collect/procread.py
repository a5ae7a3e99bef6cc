"""The compiled per-tick read (procread.c, built by cffi when pip installs ksmtop): ``CompiledReader`` reads and
parses stat, statm and ksm_stat of every tracked process in one C call, with the GIL released.

``lib`` is None where the module was not built (ksmtop run from a source tree without ``pip install``):
ProcessTable then keeps its Python loop, which also reads any process the C parser hands back
(KSMTOP_PYTHON: a failed read, or text it does not know). No UI imports.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from ksmtop.collect.procread_layout import (
    CONSTANTS,
    KSMTOP_KSM_MERGING_PAGES,
    KSMTOP_KSM_NONE,
    KSMTOP_KSM_STAT,
    KSMTOP_ROW,
)


def layout_of(module_lib: Any) -> str | None:
    """Why a built module cannot be used with this source (None: it can): its constants are the #defines it was
    compiled with, and a module built before procread_layout.py changed would misread every row."""
    differ = [name for name, value in CONSTANTS.items() if getattr(module_lib, name, None) != value]
    return f"built for another row layout ({', '.join(differ[:3])}): run scripts/setup" if differ else None


ffi: Any = None
lib: Any = None
unavailable: str | None = "not built (pip install builds it; scripts/setup does)"
"""Why the Python loop reads every process (None: the compiled reader is in use)."""
try:
    from ksmtop.collect import _procread
except ImportError:
    pass
else:
    unavailable = layout_of(_procread.lib)
    if unavailable is None:
        ffi, lib = _procread.ffi, _procread.lib


class ReadableProcess(Protocol):
    stat_fd: int
    statm_fd: int
    ksm_fd: int | None
    ksm_fd_is_stat: bool
    start_ticks: int


def ksm_kind(process: ReadableProcess) -> int:
    if process.ksm_fd is None:
        return KSMTOP_KSM_NONE
    return KSMTOP_KSM_STAT if process.ksm_fd_is_stat else KSMTOP_KSM_MERGING_PAGES


class CompiledReader:
    """The C arrays of one list of processes (file descriptors, start times, result rows), made again only
    when the list changes; ``read`` returns the rows as one flat list of ints (KSMTOP_ROW a process, laid out as
    procread_layout says)."""

    def __init__(self) -> None:
        self._processes: list[ReadableProcess] = []
        self._fds: Any = None
        self._starts: Any = None
        self._rows: Any = None

    def read(self, processes: Sequence[ReadableProcess]) -> list[int]:
        # Compared as lists: the same objects compare by identity, fast; another list with equal processes (the
        # same file descriptors and start times) would give the same arrays.
        if processes != self._processes:
            self._arrays_for(processes)
        lib.ksmtop_sample(self._fds, len(processes), self._starts, self._rows)
        return ffi.unpack(self._rows, len(processes) * KSMTOP_ROW)

    def _arrays_for(self, processes: Sequence[ReadableProcess]) -> None:
        fds: list[int] = []
        for process in processes:
            ksm_fd = -1 if process.ksm_fd is None else process.ksm_fd
            fds += (process.stat_fd, process.statm_fd, ksm_fd, ksm_kind(process))
        self._processes = list(processes)
        self._fds = ffi.new("int[]", fds or [0])
        self._starts = ffi.new("int64_t[]", [process.start_ticks for process in processes] or [0])
        self._rows = ffi.new("int64_t[]", max(1, len(processes)) * KSMTOP_ROW)
