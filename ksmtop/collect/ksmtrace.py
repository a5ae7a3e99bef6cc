"""KSM tracepoints through perf: merges, unmerges and exact full-scan durations, counted on every CPU.

Counting: one counter per tracepoint and online CPU (pid -1), summed at read time. The merge tracepoints fire
for every attempt, failed ones included, so they carry the filter "err == 0": the counts are successful merges.
- ksm_merge_with_ksm_page (err == 0): a page merged into a KSM page (both pages of a new pair count).
- ksm_merge_one_page (err == 0): a page merged with the zero page (only fires with use_zero_pages=1).
- ksm_remove_ksm_page: a KSM page dropped (its last mapping unmerged or unmapped): "unmerges" here.
- ksm_advisor: the scan-time advisor adjusted pages_to_scan (kernels with the advisor only, 6.8+). It fires
  once per full scan while advisor_mode is scan-time, so it is also sampled (period 1, raw record): the values
  the advisor worked with, scan_time (s), the pages_to_scan it chose and ksmd's cpu_percent, reach the sample
  (``KsmTraceSample.advisor``), at the offsets its tracefs format file gives.

Full-scan durations, exactly: ksm_start_scan and ksm_stop_scan are also sampled (period 1, PERF_SAMPLE_TIME on
CLOCK_MONOTONIC plus the raw record, which holds the scan's sequence number and its rmap item count) into one
ring buffer per CPU. A scan's duration is stop time - start time of the same sequence number: the kernel's own
timestamps, so the figure is exact, whatever the sampling interval. Counting alone could only bound it by the
interval. A scan that started before the tracer opened is not reported (its start was not seen).

No UI imports. Nothing here raises to the caller: failures land in ``status`` (a PerfStatus) in words.
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass, field
from pathlib import Path

from ksmtop.collect.perf import (
    PERF_RECORD_LOST,
    PERF_RECORD_SAMPLE,
    PERF_SAMPLE_RAW,
    PERF_SAMPLE_TIME,
    PERF_TYPE_TRACEPOINT,
    PerfError,
    PerfEvent,
    PerfStatus,
    RingBuffer,
    find_tracefs,
    online_cpus,
    open_event,
    raise_nofile,
)

COUNTED = ("ksm_merge_with_ksm_page", "ksm_merge_one_page", "ksm_remove_ksm_page", "ksm_advisor")
SCAN_EVENTS = ("ksm_start_scan", "ksm_stop_scan")
ADVISOR = "ksm_advisor"
SAMPLED = (*SCAN_EVENTS, ADVISOR)
"""Tracepoints recorded one by one into the ring buffer (the others are only counted)."""
ADVISOR_FIELDS = {"scan_time": (8, "=q"), "pages_to_scan": (16, "=Q"), "cpu_percent": (24, "=I")}
"""ksm_advisor's fields: default offsets (Linux 6.8 to 6.18) and struct formats; the format file's offsets win."""
FILTERS = {"ksm_merge_with_ksm_page": "err == 0", "ksm_merge_one_page": "err == 0"}
REQUIRED = ("ksm_start_scan", "ksm_stop_scan", "ksm_merge_with_ksm_page")
RING_DATA_PAGES = 8  # 32 KiB per CPU: ~800 scan records between two reads


def tracepoint_ids(events_dir: Path) -> dict[str, int]:
    """Tracepoint name -> id from tracefs events/ksm/NAME/id (missing or unreadable ones left out)."""
    ids: dict[str, int] = {}
    for name in (*SCAN_EVENTS, *COUNTED):
        try:
            ids[name] = int((events_dir / name / "id").read_text())
        except (OSError, ValueError):
            continue
    return ids


def field_offsets(format_text: str) -> dict[str, int]:
    """Field name -> byte offset from a tracefs format file ("field:int seq;\toffset:8;\tsize:4;...")."""
    offsets: dict[str, int] = {}
    for line in format_text.splitlines():
        line = line.strip()
        if not line.startswith("field:"):
            continue
        parts = dict(part.strip().split(":", 1) for part in line.split(";") if ":" in part)
        name = parts.get("field", "").split()[-1:] or [""]
        try:
            offsets[name[0].lstrip("*")] = int(parts["offset"])
        except (KeyError, ValueError):
            continue
    return offsets


@dataclass(frozen=True, slots=True)
class ScanRecord:
    """One complete full scan seen from its start to its stop."""

    seq: int
    start_ns: int
    """CLOCK_MONOTONIC (comparable with time.monotonic_ns())."""
    stop_ns: int
    rmap_items: int
    """KSM's rmap items when the scan stopped (pages it tracks)."""

    @property
    def seconds(self) -> float:
        return (self.stop_ns - self.start_ns) / 1e9


@dataclass(frozen=True, slots=True)
class AdvisorRecord:
    """One adjustment of the scan-time advisor (ksm:ksm_advisor), at the end of a full scan."""

    time_ns: int
    """CLOCK_MONOTONIC."""
    scan_seconds: int
    """The full scan's time as the advisor measured it (whole seconds, at least 1)."""
    pages_to_scan: int
    """What it set pages_to_scan to."""
    cpu_percent: int
    """ksmd's CPU over that scan, as it measured it (at least 1)."""


@dataclass(frozen=True, slots=True)
class KsmTraceSample:
    """Cumulative counts since the tracer opened, plus the scans that completed since the previous read."""

    monotonic_ns: int
    counts: dict[str, int]
    scans: tuple[ScanRecord, ...] = ()
    scan_in_progress_since_ns: int | None = None
    lost_records: int = 0
    advisor: tuple[AdvisorRecord, ...] = ()
    """The advisor's adjustments since the previous read (oldest first)."""

    @property
    def merges(self) -> int:
        return self.counts.get("ksm_merge_with_ksm_page", 0) + self.counts.get("ksm_merge_one_page", 0)

    @property
    def unmerges(self) -> int:
        return self.counts.get("ksm_remove_ksm_page", 0)

    def rates(self, previous: KsmTraceSample) -> dict[str, float]:
        """Per-second rates of every count (and merges_per_s, unmerges_per_s) since ``previous``."""
        seconds = (self.monotonic_ns - previous.monotonic_ns) / 1e9
        if seconds <= 0:
            return {}
        rates = {
            f"{name}_per_s": (value - previous.counts.get(name, 0)) / seconds for name, value in self.counts.items()
        }
        rates["merges_per_s"] = (self.merges - previous.merges) / seconds
        rates["unmerges_per_s"] = (self.unmerges - previous.unmerges) / seconds
        return rates


def advisor_record(stamp: int, raw: bytes, offsets: dict[str, int]) -> AdvisorRecord | None:
    """The advisor's values from one raw ksm_advisor record at ``offsets`` (field name -> byte offset, from the
    tracefs format file); None when the record is too short for them."""
    values = {}
    for name, (default, layout) in ADVISOR_FIELDS.items():
        offset = offsets.get(name, default)
        if len(raw) < offset + struct.calcsize(layout):
            return None
        (values[name],) = struct.unpack_from(layout, raw, offset)
    return AdvisorRecord(stamp, values["scan_time"], values["pages_to_scan"], values["cpu_percent"])


@dataclass
class _Cpu:
    cpu: int
    counters: dict[str, PerfEvent] = field(default_factory=dict)
    ring: RingBuffer | None = None


class KsmTracer:
    """Counts KSM tracepoints on every CPU and times full scans. Use as a context manager.

    with KsmTracer() as tracer:
        if tracer.status.available:
            sample = tracer.read()
    """

    def __init__(self, root: str | Path = "/", *, mount_tracefs: bool = True) -> None:
        self.root = root
        self.mount_tracefs = mount_tracefs
        self.status = PerfStatus(False, "not opened yet")
        self.filtered: dict[str, bool] = {}
        self._cpus: list[_Cpu] = []
        self._ids: dict[str, int] = {}
        self._offsets = {"seq": 8, "rmap_entries": 12}
        self._advisor_offsets = {name: offset for name, (offset, _) in ADVISOR_FIELDS.items()}
        self._open_starts: dict[int, int] = {}
        self._lost = 0

    def __enter__(self) -> KsmTracer:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> PerfStatus:
        self.close()
        tracefs = find_tracefs(self.root, mount=self.mount_tracefs)
        notes = [tracefs.reason] if tracefs.mounted_now else []
        if tracefs.path is None:
            self.status = PerfStatus(False, tracefs.reason)
            return self.status
        events_dir = tracefs.path / "events" / "ksm"
        if not events_dir.is_dir():
            self.status = PerfStatus(False, "this kernel has no KSM tracepoints (events/ksm; they came in Linux 6.4)")
            return self.status
        self._ids = tracepoint_ids(events_dir)
        missing = [name for name in REQUIRED if name not in self._ids]
        if missing:
            reason = f"KSM tracepoints not readable: {', '.join(missing)} (tracefs ids need root)"
            self.status = PerfStatus(False, reason)
            return self.status
        try:
            self._offsets.update(field_offsets((events_dir / "ksm_stop_scan" / "format").read_text()))
        except OSError:
            pass
        if ADVISOR in self._ids:
            try:
                found = field_offsets((events_dir / ADVISOR / "format").read_text())
                self._advisor_offsets.update({name: found[name] for name in ADVISOR_FIELDS if name in found})
            except OSError:
                pass
        cpus = online_cpus(self.root)
        raise_nofile(len(cpus) * len(self._ids))
        try:
            for cpu in cpus:
                self._cpus.append(self._open_cpu(cpu))
        except PerfError as exc:
            self.close()
            self.status = PerfStatus(False, str(exc))
            return self.status
        unfiltered = [name for name, ok in self.filtered.items() if not ok]
        if unfiltered:
            notes.append(f"no tracepoint filter for {', '.join(unfiltered)}: counts include failed merge attempts")
        absent = [name for name in COUNTED if name not in self._ids]
        if absent:
            notes.append(f"not on this kernel: {', '.join(absent)}")
        self.status = PerfStatus(True, f"counting KSM tracepoints on {len(cpus)} CPUs", tuple(notes))
        return self.status

    def _open_cpu(self, cpu: int) -> _Cpu:
        entry = _Cpu(cpu)
        try:
            leader = None
            for name in SAMPLED:
                if name not in self._ids:
                    continue  # ksm_advisor: only on kernels with the advisor
                event = open_event(
                    PERF_TYPE_TRACEPOINT,
                    self._ids[name],
                    cpu=cpu,
                    sample_type=PERF_SAMPLE_TIME | PERF_SAMPLE_RAW,
                    sample_period=1,
                    monotonic_time=True,
                    description=f"tracepoint ksm:{name} on CPU {cpu}",
                )
                entry.counters[name] = event
                if leader is None:
                    leader = event
                    entry.ring = RingBuffer(event, RING_DATA_PAGES)
                else:
                    event.set_output(leader)
            for name in COUNTED:
                if name not in self._ids or name in entry.counters:
                    continue  # missing, or already opened sampled (its count is read the same way)
                event = open_event(
                    PERF_TYPE_TRACEPOINT, self._ids[name], cpu=cpu, description=f"tracepoint ksm:{name} on CPU {cpu}"
                )
                entry.counters[name] = event
                if name in FILTERS:
                    try:
                        event.set_filter(FILTERS[name])
                        self.filtered[name] = self.filtered.get(name, True)
                    except PerfError:
                        self.filtered[name] = False
        except (PerfError, OSError):
            _close_cpu(entry)
            raise
        return entry

    def close(self) -> None:
        for entry in self._cpus:
            _close_cpu(entry)
        self._cpus.clear()
        self._open_starts.clear()

    def read(self) -> KsmTraceSample | None:
        """Counts so far and the full scans that completed since the last read; None when not available."""
        if not self.status.available or not self._cpus:
            return None
        now = time.monotonic_ns()
        counts: dict[str, int] = dict.fromkeys(self._ids, 0)
        events: list[tuple[int, int, bytes]] = []  # (time, tracepoint id, raw record)
        try:
            for entry in self._cpus:
                for name, event in entry.counters.items():
                    counts[name] += event.read_count()
                if entry.ring is not None:
                    events.extend(self._drain(entry.ring))
        except OSError as exc:
            self.close()
            self.status = PerfStatus(False, f"reading the KSM tracepoints failed: {exc}")
            return None
        events.sort(key=lambda event: event[:2])
        scans = self._pair(events)
        starts = self._open_starts.values()
        advisor_id = self._ids.get(ADVISOR)
        offsets = self._advisor_offsets
        advisor = [advisor_record(stamp, raw, offsets) for stamp, type_id, raw in events if type_id == advisor_id]
        return KsmTraceSample(
            monotonic_ns=now,
            counts=counts,
            scans=tuple(scans),
            scan_in_progress_since_ns=max(starts) if starts else None,
            lost_records=self._lost,
            advisor=tuple(record for record in advisor if record is not None),
        )

    def _drain(self, ring: RingBuffer) -> list[tuple[int, int, bytes]]:
        found = []
        for kind, body in ring.records():
            if kind == PERF_RECORD_LOST:
                self._lost += struct.unpack_from("=QQ", body)[1]
                continue
            if kind != PERF_RECORD_SAMPLE or len(body) < 12:
                continue
            stamp, raw_size = struct.unpack_from("=QI", body)
            raw = bytes(body[12 : 12 + raw_size])
            if len(raw) < 2:
                continue
            (type_id,) = struct.unpack_from("=H", raw)
            found.append((stamp, type_id, raw))
        return found

    def _pair(self, events: list[tuple[int, int, bytes]]) -> list[ScanRecord]:
        start_id, stop_id = self._ids["ksm_start_scan"], self._ids["ksm_stop_scan"]
        seq_at, rmap_at = self._offsets["seq"], self._offsets["rmap_entries"]
        scans = []
        for stamp, type_id, raw in events:
            if type_id not in (start_id, stop_id) or len(raw) < max(seq_at, rmap_at) + 4:
                continue
            (seq,) = struct.unpack_from("=i", raw, seq_at)
            (rmap,) = struct.unpack_from("=I", raw, rmap_at)
            if type_id == start_id:
                self._open_starts = {seq: stamp}  # one scan runs at a time; an older unmatched start is stale
            elif type_id == stop_id:
                started = self._open_starts.pop(seq, None)
                if started is not None:
                    scans.append(ScanRecord(seq, started, stamp, rmap))
        return scans


def _close_cpu(entry: _Cpu) -> None:
    if entry.ring is not None:
        entry.ring.close()
        entry.ring = None
    for event in entry.counters.values():
        event.close()
    entry.counters.clear()
