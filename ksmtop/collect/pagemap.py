"""Who shares with whom: merged pages per guest and per pair of guests, from /proc/PID/pagemap + /proc/kpageflags.

Two guests share a merged page when their pagemaps hold the same PFN and /proc/kpageflags has KPF_KSM set for
it. Only the private areas where anonymous pages can live are read (from /proc/PID/maps: private mappings that
are writable or have no file; for qemu that is essentially the guest RAM area), and kpageflags only around the
PFNs the guests map. PFN arrays are numpy uint64; pairs come from np.intersect1d of sorted distinct PFNs.

Costs: pagemap is 8 bytes per virtual page (2 MiB per GiB of guest RAM) and kpageflags 8 bytes per PFN of the
blocks read. Call it on demand or every 30-60 s from a worker thread, never per tick. pagemap is read in chunks of
PAGEMAP_CHUNK_BYTES into one reused buffer, so a huge untouched reservation (a 1 TiB PROT_NONE area is 2 GiB of
pagemap) costs time but no memory beyond the chunk; what is kept grows only with the pages present.

Needs root (CAP_SYS_ADMIN): without it the kernel reports every PFN as 0 and kpageflags is unreadable; the
report then says so instead of raising. Pages change while they are read: figures are exact only while ksmd and
the guests hold still (run=0, vCPUs paused), and a close approximation otherwise.

No UI imports. Every reader takes ``root`` (default "/").
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

PM_PFN_MASK = (1 << 55) - 1
PM_MMAP_EXCLUSIVE = 1 << 56  # mapped exactly once on the host
PM_FILE = 1 << 61  # file page or shared anonymous page: never a KSM page
PM_PRESENT = 1 << 63
KPF_KSM = 21
KPF_THP = 22
KPF_ZERO_PAGE = 24
MAX_GAP = 32  # PFNs closer than this are read from /proc/kpageflags with one pread
PAGEMAP_CHUNK_BYTES = 8 * 1024 * 1024
"""pagemap read per pread: 1 Mi entries, 4 GiB of address space (with 4 KiB pages)."""
SKIP_AREAS = ("[vsyscall]", "[vvar]", "[vdso]", "[vvar_vclock]")


@dataclass(frozen=True, slots=True)
class Area:
    """One line of /proc/PID/maps."""

    start: int
    end: int
    perms: str
    inode: int
    path: str

    @property
    def size(self) -> int:
        return self.end - self.start

    @property
    def private(self) -> bool:
        return self.perms[3:4] == "p"

    @property
    def anonymous(self) -> bool:
        return self.inode == 0 and not self.path.startswith("/")


def parse_maps(text: str) -> list[Area]:
    """Areas of /proc/PID/maps ("start-end perms offset dev inode [path]"); malformed lines are skipped."""
    areas = []
    for line in text.splitlines():
        parts = line.split(maxsplit=5)
        if len(parts) < 5:
            continue
        try:
            low, _, high = parts[0].partition("-")
            areas.append(Area(int(low, 16), int(high, 16), parts[1], int(parts[4]), parts[5] if len(parts) > 5 else ""))
        except ValueError:
            continue
    return areas


def candidate_areas(areas: Sequence[Area], min_bytes: int = 0) -> list[Area]:
    """Areas that can hold KSM pages: private, and writable or anonymous (KSM never merges shared mappings)."""
    return [
        area
        for area in areas
        if area.private
        and (area.perms[1:2] == "w" or area.anonymous)
        and area.path not in SKIP_AREAS
        and area.size >= min_bytes
    ]


def read_pagemap(
    pid: int, areas: Sequence[Area], root: str | Path = "/", page_size: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(PFNs, exclusive) of the present anonymous pages of ``areas`` of process ``pid``, in address order.

    PFNs are uint64; ``exclusive`` (bool) is pagemap's bit 56: the page is mapped exactly once on the whole host.
    Raises OSError when the process is gone or pagemap is unreadable.
    """
    page = page_size or os.sysconf("SC_PAGE_SIZE")
    pfns, exclusive = [], []
    buffer = bytearray(PAGEMAP_CHUNK_BYTES)
    view = memoryview(buffer)
    wanted = np.uint64(PM_PRESENT | PM_FILE)
    present = np.uint64(PM_PRESENT)
    fd = os.open(Path(root) / "proc" / str(pid) / "pagemap", os.O_RDONLY | os.O_CLOEXEC)
    try:
        for area in areas:
            offset, end = area.start // page * 8, area.end // page * 8
            while offset < end:
                count = os.preadv(fd, [view[: min(PAGEMAP_CHUNK_BYTES, end - offset)]], offset)
                if count <= 0:
                    break
                offset += count
                entries = np.frombuffer(buffer, dtype="<u8", count=count // 8)
                if not entries.any():  # untouched address space (a reservation): nothing present
                    continue
                entries = entries[(entries & wanted) == present]  # a copy: the buffer is reused
                pfns.append(entries & np.uint64(PM_PFN_MASK))
                exclusive.append((entries & np.uint64(PM_MMAP_EXCLUSIVE)) != 0)
    finally:
        os.close(fd)
    if not pfns:
        return np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=bool)
    return np.concatenate(pfns), np.concatenate(exclusive)


def distinct(values: np.ndarray) -> np.ndarray:
    """Sorted distinct values (np.unique through one sort: numpy 2.4's np.unique is ~60x slower on 1M uint64)."""
    return distinct_sorted(np.sort(values))


def distinct_sorted(ordered: np.ndarray) -> np.ndarray:
    """Distinct values of the sorted array ``ordered`` (no sort)."""
    keep = np.empty(ordered.size, dtype=bool)
    keep[:1] = True
    np.not_equal(ordered[1:], ordered[:-1], out=keep[1:])
    return ordered[keep]


def repeated(ordered: np.ndarray) -> np.ndarray:
    """Sorted distinct values that occur more than once in the sorted array ``ordered``."""
    same = ordered[1:] == ordered[:-1]
    return distinct_sorted(ordered[1:][same]) if same.any() else ordered[:0]


def member(ordered: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    """Boolean mask: which of ``ordered`` (sorted) are in ``sorted_set`` (sorted, distinct)."""
    if sorted_set.size == 0:
        return np.zeros(ordered.size, dtype=bool)
    index = np.searchsorted(sorted_set, ordered)
    index[index == sorted_set.size] = 0
    return sorted_set[index] == ordered


def read_kpageflags(pfns: np.ndarray, root: str | Path = "/", threads: int = 1) -> np.ndarray:
    """Flags (uint64) for each of the sorted distinct ``pfns``, reading /proc/kpageflags only around them.

    PFNs less than MAX_GAP apart share one pread (reading a few unneeded flags is cheaper than a system call);
    the reads are spread over ``threads``. The kernel spends about 100 ns per PFN read: this is the expensive
    part of a sharing report. Raises OSError when kpageflags is unreadable (not root).
    """
    if pfns.size == 0:
        return np.zeros(0, dtype=np.uint64)
    starts = np.concatenate(([0], np.flatnonzero(np.diff(pfns) > np.uint64(MAX_GAP)) + 1))
    ends = np.concatenate((starts[1:], [pfns.size])) - 1
    first_pfn = pfns[starts]
    lengths = (pfns[ends] - first_pfn + np.uint64(1)).astype(np.intp)
    bases = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    buffer = np.zeros(int(lengths.sum()), dtype="<u8")
    jobs = list(zip(first_pfn.tolist(), lengths.tolist(), bases.tolist(), strict=True))
    fd = os.open(Path(root) / "proc" / "kpageflags", os.O_RDONLY | os.O_CLOEXEC)

    def read(job: tuple[int, int, int]) -> None:
        pfn, length, base = job
        values = np.frombuffer(os.pread(fd, length * 8, pfn * 8), dtype="<u8")  # short past the end of memory
        buffer[base : base + values.size] = values

    def read_all(batch: list[tuple[int, int, int]]) -> None:
        for job in batch:
            read(job)

    try:
        if threads > 1 and len(jobs) > 1:
            # one task per thread, each a contiguous share of the reads: a task per read costs more in the
            # pool than the read itself (tens of thousands of small reads for scattered KSM pages)
            size = -(-len(jobs) // threads)
            with ThreadPoolExecutor(max_workers=threads) as pool:
                list(pool.map(read_all, [jobs[i : i + size] for i in range(0, len(jobs), size)]))
        else:
            read_all(jobs)
    finally:
        os.close(fd)
    run = np.repeat(np.arange(starts.size), np.diff(np.concatenate((starts, [pfns.size]))))
    return buffer[bases[run] + (pfns - first_pfn[run]).astype(np.intp)]


@dataclass(frozen=True, slots=True)
class GuestPages:
    """One guest's pages as the pagemap sees them."""

    pid: int
    name: str
    present_pages: int
    """Present anonymous pages read."""
    merged_pages: int
    """Virtual pages mapped to a KSM page: compare with ksm_stat's ksm_merging_pages."""
    distinct_merged: int
    """Distinct KSM pages those map to."""
    internal_pages: int
    """Pages saved inside the guest alone: merged_pages - distinct_merged."""
    zero_pages: int
    """Virtual pages mapped to the zero page (KSM's use_zero_pages merges and never-written pages alike)."""
    unchecked_pages: int = 0
    """Pages mapped once on the whole host whose flags a quick report did not read (a KSM page left with one
    mapping after its other sharers wrote to it or exited would hide here)."""
    error: str | None = None


@dataclass(frozen=True, slots=True)
class SharingReport:
    guests: tuple[GuestPages, ...]
    pairs: dict[tuple[int, int], int] = field(default_factory=dict)
    """(pid_a, pid_b) with pid_a < pid_b -> distinct KSM pages both map."""
    elapsed_s: float = 0.0
    exact: bool = True
    """Every page's flags were read (else pages mapped once on the host were skipped: see unchecked_pages)."""
    flags_read: int = 0
    """PFNs whose kpageflags were read."""
    error: str | None = None
    """Why the whole report is empty or partial (e.g. not root)."""

    def shared(self, pid_a: int, pid_b: int) -> int:
        if pid_a == pid_b:
            guest = next((g for g in self.guests if g.pid == pid_a), None)
            return guest.internal_pages if guest else 0
        return self.pairs.get((min(pid_a, pid_b), max(pid_a, pid_b)), 0)

    def matrix(self) -> list[list[int]]:
        """Rows and columns in the order of ``guests``: pairs off the diagonal, internal pages on it."""
        return [[self.shared(a.pid, b.pid) for b in self.guests] for a in self.guests]


def process_areas(pid: int, root: str | Path = "/", min_bytes: int = 0) -> list[Area]:
    with open(Path(root) / "proc" / str(pid) / "maps") as handle:
        return candidate_areas(parse_maps(handle.read()), min_bytes)


DEFAULT_THREADS = max(1, min(4, os.cpu_count() or 1))


def sharing(
    pids: Sequence[int],
    root: str | Path = "/",
    names: dict[int, str] | None = None,
    *,
    exact: bool = False,
    min_area_bytes: int = 0,
    threads: int = DEFAULT_THREADS,
) -> SharingReport:
    """Merged pages of every guest and of every pair of guests. Never raises: errors are in the report.

    A KSM page mapped twice or more is found without looking at every page: two guests (or two addresses of
    one guest) holding the same anonymous PFN can only be a KSM page or the zero page, and pagemap marks pages
    mapped once on the whole host ("exclusive"). The quick report (default) reads kpageflags only for repeated
    or non-exclusive PFNs; ``exact=True`` reads them for every page (about 100 ns each in the kernel), which also
    finds KSM pages left with a single mapping.
    """
    began = time.perf_counter()
    names = names or {}
    errors: dict[int, str] = {}

    def load(pid: int) -> tuple[int, tuple[np.ndarray, np.ndarray] | None]:
        try:
            pfns, exclusive = read_pagemap(pid, process_areas(pid, root, min_area_bytes), root)
        except OSError as exc:
            errors[pid] = f"cannot read the pages of process {pid}: {exc.strerror or exc}"
            return pid, None
        # one sort for both arrays; stable (timsort) because guest RAM comes in runs of consecutive PFNs
        keys = np.sort((pfns << np.uint64(1)) | exclusive.astype(np.uint64), kind="stable")
        return pid, (keys, keys >> np.uint64(1), (keys & np.uint64(1)).astype(bool))

    with ThreadPoolExecutor(max_workers=max(1, min(threads, len(pids) or 1))) as pool:
        loaded = {pid: value for pid, value in pool.map(load, pids) if value is not None}
    if not loaded:
        return _empty(pids, names, errors, "; ".join(errors.values()) or "no processes", began, exact)
    # each guest's keys are sorted already: a stable sort of their concatenation only merges the runs
    keys = np.sort(np.concatenate([guest_keys for guest_keys, _, _ in loaded.values()]), kind="stable")
    everything = keys >> np.uint64(1)
    if everything.size and not everything.any():
        message = "every PFN reads as 0: reading page frame numbers needs root (CAP_SYS_ADMIN)"
        return _empty(pids, names, errors, message, began, exact)
    candidates = candidate_pfns(keys, everything, exact)
    try:
        flags = read_kpageflags(candidates, root, threads)
    except OSError as exc:
        return _empty(pids, names, errors, f"cannot read /proc/kpageflags: {exc.strerror or exc}", began, exact)
    ksm_set = candidates[(flags >> np.uint64(KPF_KSM)) & np.uint64(1) == 1]
    zero_set = candidates[(flags >> np.uint64(KPF_ZERO_PAGE)) & np.uint64(1) == 1]
    owners = KsmOwners(ksm_set, len(loaded))
    guests = []
    for pid in pids:
        if pid not in loaded:
            guests.append(GuestPages(pid, names.get(pid, str(pid)), 0, 0, 0, 0, 0, 0, errors.get(pid)))
            continue
        _keys, pfns, exclusive = loaded[pid]
        merged = owners.add(pid, pfns)
        distinct_merged = owners.distinct(pid)
        # pages not mapped once on the host are candidates always: only the exclusive ones can be unchecked
        alone = pfns[exclusive]
        unchecked = 0 if exact else int(alone.size - member(alone, candidates).sum())
        guests.append(
            GuestPages(
                pid=pid,
                name=names.get(pid, str(pid)),
                present_pages=int(pfns.size),
                merged_pages=merged,
                distinct_merged=distinct_merged,
                internal_pages=merged - distinct_merged,
                zero_pages=int(member(pfns, zero_set).sum()),
                unchecked_pages=unchecked,
            )
        )
    error = "; ".join(errors.values()) or None
    return SharingReport(tuple(guests), owners.pairs(), time.perf_counter() - began, exact, int(candidates.size), error)


def candidate_pfns(keys: np.ndarray, pfns: np.ndarray, exact: bool) -> np.ndarray:
    """The distinct PFNs whose flags are read, from every guest's sorted keys (PFN << 1 | exclusive) and their
    PFNs: all of them (``exact``), or those mapped more than once here or not mapped once on the host. In sorted
    keys a PFN's non-exclusive entries come first, so one pass over the runs of equal PFNs decides."""
    if pfns.size == 0:
        return pfns
    starts = np.flatnonzero(np.concatenate(([True], pfns[1:] != pfns[:-1])))
    if exact:
        return pfns[starts]
    repeated_here = np.diff(np.append(starts, pfns.size)) > 1
    shared_on_host = (keys[starts] & np.uint64(1)) == 0
    return pfns[starts[repeated_here | shared_on_host]]


class KsmOwners:
    """Which guests map each KSM page: one bit per guest in a mask per KSM PFN (guests beyond MASK_BITS fall
    back to sorted sets). Pairs come from counting the distinct masks, not from intersecting every pair."""

    MASK_BITS = 64

    def __init__(self, ksm_set: np.ndarray, guests: int) -> None:
        self.ksm_set = ksm_set
        self.masks = np.zeros(ksm_set.size, dtype=np.uint64) if guests <= self.MASK_BITS else None
        self.bits: dict[int, int] = {}
        self.sets: dict[int, np.ndarray] = {}

    def add(self, pid: int, pfns: np.ndarray) -> int:
        """Record the KSM pages ``pid`` maps; returns how many of its pages map one."""
        if self.ksm_set.size == 0:
            self.sets[pid] = self.ksm_set
            if self.masks is not None:
                self.bits[pid] = len(self.bits)
            return 0
        index = np.searchsorted(self.ksm_set, pfns)
        index[index == self.ksm_set.size] = 0
        hit = self.ksm_set[index] == pfns
        if self.masks is not None:
            bit = self.bits[pid] = len(self.bits)
            self.masks[index[hit]] |= np.uint64(1 << bit)  # repeated indices set the same bit: harmless
        else:
            self.sets[pid] = distinct_sorted(pfns[hit])  # a guest's PFNs come sorted
        return int(hit.sum())

    def distinct(self, pid: int) -> int:
        """Distinct KSM pages ``pid`` maps."""
        if self.masks is None or pid not in self.bits:
            return int(self.sets[pid].size)
        return int(np.count_nonzero(self.masks & np.uint64(1 << self.bits[pid])))

    def pairs(self) -> dict[tuple[int, int], int]:
        """(pid_a, pid_b), pid_a < pid_b -> distinct KSM pages both map."""
        ordered = sorted(self.bits if self.masks is not None else self.sets)
        if self.masks is None:
            return {
                (a, b): int(np.intersect1d(self.sets[a], self.sets[b], assume_unique=True).size)
                for i, a in enumerate(ordered)
                for b in ordered[i + 1 :]
            }
        used = self.masks[self.masks != 0]
        combos, counts = np.unique(used, return_counts=True) if used.size else (used, used)
        result = {}
        for i, a in enumerate(ordered):
            for b in ordered[i + 1 :]:
                both = np.uint64((1 << self.bits[a]) | (1 << self.bits[b]))
                result[(a, b)] = int(counts[(combos & both) == both].sum())
        return result


def _empty(
    pids: Sequence[int], names: dict[int, str], errors: dict[int, str], message: str, began: float, exact: bool
) -> SharingReport:
    guests = tuple(GuestPages(pid, names.get(pid, str(pid)), 0, 0, 0, 0, 0, 0, errors.get(pid)) for pid in pids)
    return SharingReport(guests, {}, time.perf_counter() - began, exact, 0, message)
