"""The snapshot model: what one sample of the host holds.

One model serves the live view, headless JSON output, recordings and replay. Every field that reaches a
screen, a JSON key or a CSV column is described once, in FIELDS, with its unit.

No Textual or Rich imports here (tests/unit/test_layering.py checks it).
"""

from __future__ import annotations

import dataclasses
import operator
from dataclasses import dataclass, field
from typing import Any, Literal

Scope = Literal["qemu", "ksm"]


def _meta(unit: str, description: str, label: str = "") -> dict[str, str]:
    return {"unit": unit, "description": description, "label": label}


@dataclass(frozen=True, slots=True)
class GuestSample:
    """One guest (a qemu process), or any process taking part in KSM when the scope is widened."""

    pid: int = field(metadata=_meta("", "process ID", "PID"))
    name: str = field(metadata=_meta("", "guest name from qemu's -name, else the process name", "Name"))
    kind: str = field(metadata=_meta("", "'qemu' for a qemu/KVM guest, 'process' for another KSM user", "Kind"))
    start_ticks: int = field(metadata=_meta("clock ticks", "process start time since boot (PID reuse check)"))
    rss_bytes: int = field(metadata=_meta("bytes", "resident set size (still counts merged pages)", "RSS"))
    anon_bytes: int = field(metadata=_meta("bytes", "resident anonymous memory (guest RAM lives here)", "Anon"))
    shared_bytes: int = field(metadata=_meta("bytes", "resident file and shmem pages (statm 'shared')", "Shared"))
    ksm_merging_pages: int | None = field(
        metadata=_meta("pages", "pages of this process merged by KSM (None: unknown)", "Merged")
    )
    ksm_zero_pages: int | None = field(
        metadata=_meta("pages", "pages merged with the kernel's zero page (use_zero_pages)", "Zero")
    )
    ksm_rmap_items: int | None = field(metadata=_meta("items", "KSM reverse-map items (scanned pages)", "Rmap"))
    ksm_process_profit_bytes: int | None = field(
        metadata=_meta("bytes", "KSM saving of this process minus its rmap_item cost", "Profit")
    )
    ksm_mergeable: bool | None = field(metadata=_meta("", "process has mergeable (MADV_MERGEABLE) memory"))
    ksm_merge_any: bool | None = field(metadata=_meta("", "whole process made mergeable by prctl"))
    cpu_seconds: float = field(metadata=_meta("s", "user + system CPU time so far", "CPU time"))
    minor_faults: int = field(metadata=_meta("faults", "minor page faults so far", "MinFlt"))
    major_faults: int = field(metadata=_meta("faults", "major page faults so far", "MajFlt"))
    pss_bytes: int | None = field(
        default=None, metadata=_meta("bytes", "proportional set size from smaps_rollup (sampled on demand)", "PSS")
    )
    pss_age_s: float | None = field(default=None, metadata=_meta("s", "age of the PSS figure"))
    # Filled by the sampler from the previous sample (None on the first one).
    cpu_percent: float | None = field(default=None, metadata=_meta("%", "CPU use over the last interval", "CPU%"))
    faults_per_s: float | None = field(
        default=None, metadata=_meta("faults/s", "minor + major page faults per second", "Flt/s")
    )
    merged_pages_per_s: float | None = field(
        default=None, metadata=_meta("pages/s", "change of merged pages per second", "ΔMerged/s")
    )
    perf_faults_per_s: float | None = field(
        default=None,
        metadata=_meta("faults/s", "page faults per second counted by perf software events (all threads)", "pFlt/s"),
    )
    unmerge_debt_bytes: int | None = field(
        default=None,
        metadata=_meta(
            "bytes",
            "memory this process would need back if its merged pages were unmerged (it rewrites them, or KSM stops "
            "for it): (ksm_merging_pages + ksm_zero_pages) x page size. An upper bound: the host needs less when "
            "every guest unmerges at once (the kept copies, pages_shared, are reused), see KsmRates",
            "Debt",
        ),
    )
    anon_huge_bytes: int | None = field(
        default=None,
        metadata=_meta(
            "bytes",
            "transparent huge pages mapped (smaps_rollup AnonHugePages, read with PSS); KSM splits those it merges",
            "THP",
        ),
    )
    hugetlb_bytes: int | None = field(
        default=None,
        metadata=_meta(
            "bytes",
            "hugetlbfs pages mapped (smaps_rollup Private_Hugetlb + Shared_Hugetlb, read with PSS); KSM never scans "
            "them, and RSS does not count them",
            "Hugetlb",
        ),
    )

    def merged_bytes(self, page_size: int) -> int | None:
        """Merged pages in bytes."""
        return None if self.ksm_merging_pages is None else self.ksm_merging_pages * page_size

    def merged_percent(self, page_size: int) -> float | None:
        """Share of RSS that KSM has merged, in percent."""
        if self.ksm_merging_pages is None or self.rss_bytes <= 0:
            return None
        return 100.0 * self.ksm_merging_pages * page_size / self.rss_bytes


def _unfrozen_twin(cls: type) -> type:
    """A plain slots dataclass with cls's fields, defaults and slot layout, but no frozen checks in __init__."""
    twin_fields = [
        (f.name, f.type, field(default=f.default) if f.default is not dataclasses.MISSING else field())
        for f in dataclasses.fields(cls)
    ]
    return dataclasses.make_dataclass(f"_{cls.__name__}Builder", twin_fields, slots=True)


_GuestSampleBuilder = _unfrozen_twin(GuestSample)


def guest_sample(*values: Any) -> GuestSample:
    """GuestSample(*values), six times faster: for the collector's per-process, per-tick loop.

    A frozen dataclass sets each of its 25 fields through object.__setattr__ (2.4 µs here); its unfrozen twin sets
    them as plain slots (0.3 µs). Both classes have the same slots in the same order, so the instance can take the
    frozen class afterwards (CPython allows __class__ assignment between identical slot layouts), and from then on
    it is an ordinary, frozen GuestSample. tests/unit/test_model_builder.py checks the twin stays identical.
    """
    sample = _GuestSampleBuilder(*values)
    sample.__class__ = GuestSample
    return sample  # type: ignore[return-value]


_GUEST_FIELDS = tuple(f.name for f in dataclasses.fields(GuestSample))
_GUEST_FIELD_INDEX = {name: index for index, name in enumerate(_GUEST_FIELDS)}
_guest_values = operator.attrgetter(*_GUEST_FIELDS)


def replace_guest(guest: GuestSample, **changes: Any) -> GuestSample:
    """dataclasses.replace(guest, **changes), four times faster (the rates and perf counts of every guest,
    every sample): the values read in one attrgetter call, the copy made as guest_sample makes one."""
    values = list(_guest_values(guest))
    for name, value in changes.items():
        values[_GUEST_FIELD_INDEX[name]] = value  # a KeyError for a field GuestSample does not have
    return guest_sample(*values)


@dataclass(frozen=True, slots=True)
class HostSample:
    """Host-wide memory and ksmd figures."""

    page_size: int = field(metadata=_meta("bytes", "page size from sysconf(SC_PAGE_SIZE)"))
    clock_ticks: int = field(metadata=_meta("Hz", "sysconf(SC_CLK_TCK)"))
    mem_total_bytes: int = field(metadata=_meta("bytes", "MemTotal", "Total"))
    mem_available_bytes: int = field(metadata=_meta("bytes", "MemAvailable", "Avail"))
    mem_free_bytes: int = field(metadata=_meta("bytes", "MemFree", "Free"))
    anon_bytes: int | None = field(
        metadata=_meta("bytes", "AnonPages: all anonymous memory on the host (None: not available remotely)", "Anon")
    )
    cow_ksm: int | None = field(metadata=_meta("breaks", "copy-on-write breaks of KSM pages so far (vmstat)"))
    ksmd_pid: int | None = field(metadata=_meta("", "PID of the ksmd kernel thread"))
    ksmd_cpu_seconds: float | None = field(metadata=_meta("s", "CPU time used by ksmd so far"))
    ncpus: int = field(default=1, metadata=_meta("CPUs", "online CPUs"))
    ksmd_cpu_percent: float | None = field(
        default=None, metadata=_meta("%", "ksmd CPU use over the last interval (of one CPU)", "ksmd CPU")
    )
    cow_ksm_per_s: float | None = field(default=None, metadata=_meta("breaks/s", "COW breaks of KSM pages per s"))
    trace_status: str | None = field(
        default=None, metadata=_meta("", "why KSM tracepoints or perf counters are not counted (None: counting)")
    )
    thp_enabled: str | None = field(
        default=None,
        metadata=_meta("", "transparent huge pages: always, madvise or never (/sys/kernel/mm/transparent_hugepage)"),
    )
    thp_defrag: str | None = field(
        default=None,
        metadata=_meta("", "THP defrag setting: always, defer, defer+madvise, madvise or never"),
    )


@dataclass(frozen=True, slots=True)
class KsmState:
    """Everything /sys/kernel/mm/ksm holds on this kernel, typed.

    ``values`` maps file name to int (numbers) or str (advisor_mode: the selected choice). ``choices`` holds the
    alternatives of multiple-choice files. ``available`` is False when the directory is missing, with ``error``
    saying why.
    """

    available: bool
    values: dict[str, int | str] = field(default_factory=dict)
    choices: dict[str, tuple[str, ...]] = field(default_factory=dict)
    error: str | None = None

    def get(self, name: str) -> int | None:
        value = self.values.get(name)
        return value if isinstance(value, int) else None

    @property
    def running(self) -> bool:
        return self.get("run") == 1


@dataclass(frozen=True, slots=True)
class KsmRates:
    """Derived host-wide KSM figures; rates need the previous sample and are None on the first."""

    saving_bytes: int | None = field(
        metadata=_meta("bytes", "(pages_sharing + ksm_zero_pages) x page size: memory KSM saves", "Saving")
    )
    sharing_ratio: float | None = field(
        metadata=_meta("x", "pages_sharing / pages_shared: mappings per kept page", "Ratio")
    )
    scan_rate_pages_per_s: float | None = field(
        metadata=_meta("pages/s", "pages_to_scan x 1000 / sleep_millisecs (ignores scan time)", "Scan rate")
    )
    measured_scan_pages_per_s: float | None = field(
        default=None, metadata=_meta("pages/s", "pages_scanned change per second (measured)", "Scanned/s")
    )
    full_scan_seconds: float | None = field(
        default=None,
        metadata=_meta("s", "estimated time per full scan: mergeable pages / scan rate", "Full scan"),
    )
    full_scans_delta: int | None = field(
        default=None, metadata=_meta("scans", "full scans completed in the last interval")
    )
    pages_sharing_per_s: float | None = field(
        default=None, metadata=_meta("pages/s", "change of pages_sharing per second", "ΔSharing/s")
    )
    merges_per_s: float | None = field(
        default=None, metadata=_meta("merges/s", "successful page merges per second (ksm tracepoints)", "Merges/s")
    )
    unmerges_per_s: float | None = field(
        default=None, metadata=_meta("pages/s", "KSM pages dropped per second (ksm_remove_ksm_page)", "Unmerges/s")
    )
    measured_full_scan_seconds: float | None = field(
        default=None,
        metadata=_meta("s", "the last full scan, timed from ksm_start_scan to ksm_stop_scan", "Full scan (measured)"),
    )
    unmerge_debt_bytes: int | None = field(
        default=None,
        metadata=_meta(
            "bytes",
            "memory the host needs if every merged page were unmerged (run=2, KSM off at a restart, guests "
            "rewriting their memory): (pages_sharing + ksm_zero_pages) x page size; compare with MemAvailable",
            "Unmerge debt",
        ),
    )
    advisor_scan_seconds: int | None = field(
        default=None,
        metadata=_meta(
            "s", "the scan-time advisor's last full scan as it measured it (ksm:ksm_advisor scan_time)", "Adv. scan"
        ),
    )
    advisor_pages_to_scan: int | None = field(
        default=None,
        metadata=_meta(
            "pages", "pages_to_scan the advisor chose at its last adjustment (ksm:ksm_advisor)", "Adv. pages"
        ),
    )
    advisor_cpu_percent: int | None = field(
        default=None,
        metadata=_meta(
            "%", "ksmd CPU over the last full scan as the advisor measured it (ksm:ksm_advisor cpu_percent)", "Adv. CPU"
        ),
    )


@dataclass(frozen=True, slots=True)
class DomainSample:
    """One libvirt domain, running or shut off; joined to its qemu process (a GuestSample) by ``pid``."""

    name: str = field(metadata=_meta("", "libvirt domain name", "Domain"))
    uuid: str = field(metadata=_meta("", "libvirt domain UUID", "UUID"))
    state: str = field(metadata=_meta("", "domain state: running, paused, shut off, ...", "State"))
    vcpus: int = field(metadata=_meta("vCPUs", "virtual CPUs", "vCPU"))
    max_memory_bytes: int = field(metadata=_meta("bytes", "defined (maximum) memory", "Defined"))
    memory_bytes: int = field(metadata=_meta("bytes", "current memory (balloon target)", "Mem"))
    persistent: bool = field(metadata=_meta("", "defined (persistent) rather than transient"))
    pid: int | None = field(
        default=None, metadata=_meta("", "PID of the domain's qemu process (None: not running or remote)")
    )
    rss_bytes: int | None = field(
        default=None, metadata=_meta("bytes", "resident set size of the qemu process as libvirt reports it", "RSS")
    )
    minor_faults: int | None = field(
        default=None, metadata=_meta("faults", "minor page faults counted by libvirt's perf events", "MinFlt")
    )
    major_faults: int | None = field(
        default=None, metadata=_meta("faults", "major page faults counted by libvirt's perf events", "MajFlt")
    )
    faults_per_s: float | None = field(
        default=None, metadata=_meta("faults/s", "page faults per second from libvirt's perf events", "lvFlt/s")
    )

    @property
    def running(self) -> bool:
        return self.state in ("running", "blocked", "paused")


@dataclass(frozen=True, slots=True)
class Event:
    """Something that happened between samples: a tunable write, a guest start or stop, a workload, a note."""

    time: float = field(metadata=_meta("s", "wall-clock time (Unix epoch)"))
    kind: str = field(metadata=_meta("", "tunable, guest-start, guest-stop, workload-start, workload-end, note, study"))
    text: str = field(metadata=_meta("", "what happened, in words"))
    data: dict[str, Any] = field(default_factory=dict, metadata=_meta("", "kind-specific details"))


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One sample of the host: what the live screen, JSON output and recordings show."""

    time: float = field(metadata=_meta("s", "wall-clock time of the sample (Unix epoch)"))
    interval_s: float | None = field(metadata=_meta("s", "time since the previous sample"))
    scope: Scope = field(metadata=_meta("", "'qemu': qemu guests; 'ksm': every process taking part in KSM"))
    host: HostSample
    ksm: KsmState
    rates: KsmRates
    guests: tuple[GuestSample, ...]
    events: tuple[Event, ...] = ()
    is_root: bool = field(default=True, metadata=_meta("", "sampled with root rights"))
    domains: tuple[DomainSample, ...] = ()
    mode: str = field(
        default="local",
        metadata=_meta("", "'local': /proc and /sys of this host; 'remote': only what libvirt gives"),
    )
    libvirt_status: str | None = field(
        default=None, metadata=_meta("", "libvirt connection in words (None: libvirt not used)")
    )

    def guest(self, pid: int) -> GuestSample | None:
        for guest in self.guests:
            if guest.pid == pid:
                return guest
        return None

    def domain_of(self, pid: int) -> DomainSample | None:
        for domain in self.domains:
            if domain.pid == pid:
                return domain
        return None

    @property
    def total_guest_rss_bytes(self) -> int:
        """RSS of the guests' processes; on a remote host, of the domains as libvirt reports it."""
        if self.mode == "remote":
            return sum(d.rss_bytes or 0 for d in self.domains)
        return sum(g.rss_bytes for g in self.guests)

    @property
    def total_guest_merged_pages(self) -> int:
        return sum(g.ksm_merging_pages or 0 for g in self.guests)


@dataclass(frozen=True, slots=True)
class FieldInfo:
    name: str
    unit: str
    description: str
    label: str


def _describe(*classes: type) -> dict[str, FieldInfo]:
    table: dict[str, FieldInfo] = {}
    for cls in classes:
        for f in dataclasses.fields(cls):
            if not f.metadata:
                continue
            key = f"{cls.__name__}.{f.name}"
            table[key] = FieldInfo(f.name, f.metadata["unit"], f.metadata["description"], f.metadata["label"])
    return table


FIELDS: dict[str, FieldInfo] = _describe(GuestSample, DomainSample, HostSample, KsmRates, Event, Snapshot)
"""Unit and description of every model field, keyed 'Class.field'."""


def field_info(cls: type, name: str) -> FieldInfo:
    return FIELDS[f"{cls.__name__}.{name}"]


def to_dict(snapshot: Snapshot) -> dict[str, Any]:
    """A JSON-ready dict with the model's own field names (ksmtop.codec.snapshot_to_dict)."""
    from ksmtop.codec import snapshot_to_dict

    return snapshot_to_dict(snapshot)


def snapshot_from_dict(data: dict[str, Any]) -> Snapshot:
    """Inverse of to_dict, for untrusted input (ksmtop.codec.snapshot_from_dict): raises CodecError, a
    ValueError naming the field, on malformed input."""
    from ksmtop.codec import snapshot_from_dict as decode

    return decode(data)
