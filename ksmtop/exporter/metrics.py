"""The metrics: one table of names, types, units and sources, and the step from a Snapshot to metric families.

Names follow Prometheus conventions: prefix ``ksmtop_``, base units (bytes, seconds, ratios), ``_total`` on
counters, string values as labels of an ``_info`` series whose value is 1. Every file of /sys/kernel/mm/ksm that
the running kernel has is exported: the known ones under the names in KSM_FILES, any other numeric file as a
gauge ``ksmtop_ksm_<file>`` and any other text file as a label of ``ksmtop_ksm_info``.

A figure that is unknown (None in the Snapshot: not root, a remote host, an old kernel) is left out, never
exported as 0. Label values are outside text: every one goes through ksmtop.safetext (controls and bidi
overrides escaped, length capped) and is then escaped per the text format by prometheus-client.

docs/exporter.md holds ``markdown_table()``; a unit test keeps the two equal (``python -m
ksmtop.exporter.metrics`` prints it).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from ksmtop.model import DomainSample, GuestSample, Snapshot
from ksmtop.rows import guest_rows
from ksmtop.safetext import safe, safe_name

GAUGE, COUNTER, INFO = "gauge", "counter", "info"
PAGES, MILLISECONDS, PERCENT, AS_IS = "pages", "ms", "percent", ""
ERROR_KINDS = ("sample", "ksm", "libvirt", "textfile")
"""What ``ksmtop_exporter_errors_total{kind}`` counts: a sample that raised (the previous one stays served),
a sample without /sys/kernel/mm/ksm, a sample while libvirt was not connected, a textfile write that failed."""
GUEST_LABELS = ("guest", "uuid")
_METRIC_NAME = re.compile(r"[a-z_][a-z0-9_]*")


@dataclass(frozen=True, slots=True)
class Metric:
    """One exported metric: its name as a scrape shows it, its type, its labels, what it means, where it comes from."""

    name: str
    type: str
    help: str
    source: str
    labels: tuple[str, ...] = ()
    scale: str = AS_IS  # KSM files: pages become bytes, milliseconds seconds, percent a ratio


def _ksm(
    file: str, name: str, kind: str, help_text: str, scale: str = AS_IS, labels: tuple[str, ...] = ()
) -> tuple[str, Metric]:
    unit = {PAGES: " x page size", MILLISECONDS: " / 1000", PERCENT: " / 100"}.get(scale, "")
    return file, Metric(name, kind, help_text, f"/sys/kernel/mm/ksm/{file}{unit}", labels, scale)


KSM_FILES: dict[str, Metric] = dict(
    (
        _ksm("run", "ksmtop_ksm_run", GAUGE, "KSM state: 0 stopped, 1 running, 2 stopped and everything unmerged"),
        _ksm("pages_to_scan", "ksmtop_ksm_pages_to_scan", GAUGE, "Pages ksmd scans per wake-up (tunable)."),
        _ksm("sleep_millisecs", "ksmtop_ksm_sleep_seconds", GAUGE, "ksmd's sleep between batches.", MILLISECONDS),
        _ksm("merge_across_nodes", "ksmtop_ksm_merge_across_nodes", GAUGE, "1: pages of NUMA nodes merge together."),
        _ksm("max_page_sharing", "ksmtop_ksm_max_page_sharing", GAUGE, "Most mappings one merged page may have."),
        _ksm(
            "stable_node_chains_prune_millisecs",
            "ksmtop_ksm_stable_node_chains_prune_seconds",
            GAUGE,
            "How often stale stable-node chains are pruned.",
            MILLISECONDS,
        ),
        _ksm("use_zero_pages", "ksmtop_ksm_use_zero_pages", GAUGE, "1: empty pages merge with the zero page."),
        _ksm("smart_scan", "ksmtop_ksm_smart_scan", GAUGE, "1: pages that failed to merge are skipped for a while."),
        _ksm("advisor_max_cpu", "ksmtop_ksm_advisor_max_cpu_ratio", GAUGE, "Advisor: ksmd CPU ceiling.", PERCENT),
        _ksm(
            "advisor_min_pages_to_scan", "ksmtop_ksm_advisor_min_pages_to_scan", GAUGE, "Advisor: pages_to_scan floor."
        ),
        _ksm(
            "advisor_max_pages_to_scan",
            "ksmtop_ksm_advisor_max_pages_to_scan",
            GAUGE,
            "Advisor: pages_to_scan ceiling.",
        ),
        _ksm(
            "advisor_target_scan_time",
            "ksmtop_ksm_advisor_target_scan_time_seconds",
            GAUGE,
            "Advisor: target time of a full scan.",
        ),
        _ksm("pages_scanned", "ksmtop_ksm_pages_scanned_total", COUNTER, "Pages ksmd has scanned."),
        _ksm("pages_shared", "ksmtop_ksm_pages_shared_bytes", GAUGE, "Merged pages kept (one per content).", PAGES),
        _ksm(
            "pages_sharing",
            "ksmtop_ksm_pages_sharing_bytes",
            GAUGE,
            "Extra mappings of merged pages: the memory merging saves.",
            PAGES,
        ),
        _ksm(
            "pages_unshared", "ksmtop_ksm_pages_unshared_bytes", GAUGE, "Unique pages checked and kept unmerged.", PAGES
        ),
        _ksm("pages_volatile", "ksmtop_ksm_pages_volatile_bytes", GAUGE, "Pages changing too fast to merge.", PAGES),
        _ksm("pages_skipped", "ksmtop_ksm_pages_skipped_total", COUNTER, "Pages smart_scan skipped."),
        _ksm("full_scans", "ksmtop_ksm_full_scans_total", COUNTER, "Full passes over all mergeable memory."),
        _ksm("stable_node_chains", "ksmtop_ksm_stable_node_chains", GAUGE, "Stable-tree chains."),
        _ksm("stable_node_dups", "ksmtop_ksm_stable_node_dups", GAUGE, "Duplicates in stable-tree chains."),
        _ksm("ksm_zero_pages", "ksmtop_ksm_zero_pages_bytes", GAUGE, "Empty pages merged with the zero page.", PAGES),
        _ksm(
            "general_profit",
            "ksmtop_ksm_general_profit_bytes",
            GAUGE,
            "Memory saved minus KSM's own metadata; negative when KSM costs more than it saves.",
        ),
        _ksm(
            "advisor_mode",
            "ksmtop_ksm_info",
            INFO,
            "KSM settings that are words, as labels (advisor_mode); value 1.",
            labels=("advisor_mode",),
        ),
    )
)

HOST_METRICS: tuple[Metric, ...] = (
    Metric("ksmtop_ksm_available", GAUGE, "1 when /sys/kernel/mm/ksm could be read.", "/sys/kernel/mm/ksm"),
    Metric(
        "ksmtop_ksm_unmerge_debt_bytes",
        GAUGE,
        "Memory needed if every merged page were unmerged: (pages_sharing + ksm_zero_pages) x page size.",
        "KsmRates.unmerge_debt_bytes",
    ),
    Metric("ksmtop_host_memory_total_bytes", GAUGE, "MemTotal.", "/proc/meminfo"),
    Metric("ksmtop_host_memory_available_bytes", GAUGE, "MemAvailable.", "/proc/meminfo"),
    Metric("ksmtop_ksmd_cpu_seconds_total", COUNTER, "CPU time used by the ksmd thread.", "/proc/<ksmd>/stat"),
    Metric("ksmtop_host_cow_ksm_total", COUNTER, "Copy-on-write breaks of merged pages.", "/proc/vmstat cow_ksm"),
)

GUEST_METRICS: tuple[Metric, ...] = (
    Metric(
        "ksmtop_guest_info",
        INFO,
        "One series per guest: its PID and kind ('qemu', or 'process' with --all); value 1.",
        "/proc/PID, libvirt",
        ("guest", "uuid", "pid", "kind"),
    ),
    Metric(
        "ksmtop_guest_merged_bytes",
        GAUGE,
        "Memory of the guest merged by KSM.",
        "/proc/PID/ksm_stat ksm_merging_pages x page size",
        GUEST_LABELS,
    ),
    Metric(
        "ksmtop_guest_zero_pages_bytes",
        GAUGE,
        "Guest pages merged with the zero page.",
        "/proc/PID/ksm_stat ksm_zero_pages x page size",
        GUEST_LABELS,
    ),
    Metric(
        "ksmtop_guest_profit_bytes",
        GAUGE,
        "KSM saving of the guest minus its metadata cost (may be negative).",
        "/proc/PID/ksm_stat ksm_process_profit",
        GUEST_LABELS,
    ),
    Metric(
        "ksmtop_guest_rss_bytes",
        GAUGE,
        "Resident set size (still counts merged pages).",
        "/proc/PID/statm; libvirt on a remote host",
        GUEST_LABELS,
    ),
    Metric(
        "ksmtop_guest_unmerge_debt_bytes",
        GAUGE,
        "Memory the guest would need back if its merged pages were unmerged: (merged + zero pages) x page size; "
        "an upper bound (the host's debt is smaller when all unmerge at once).",
        "GuestSample.unmerge_debt_bytes",
        GUEST_LABELS,
    ),
    Metric("ksmtop_guest_anon_bytes", GAUGE, "Resident anonymous memory.", "/proc/PID/statm", GUEST_LABELS),
    Metric(
        "ksmtop_guest_page_faults_total",
        COUNTER,
        "Page faults of the guest process, by type (minor, major).",
        "/proc/PID/stat",
        (*GUEST_LABELS, "type"),
    ),
    Metric("ksmtop_guest_cpu_seconds_total", COUNTER, "User + system CPU time.", "/proc/PID/stat", GUEST_LABELS),
)

HEALTH_METRICS: tuple[Metric, ...] = (
    Metric(
        "ksmtop_exporter_info",
        INFO,
        "The exporter: version, mode (local, remote), scope (qemu, ksm), hostname, root (1, 0); value 1.",
        "ksmtop",
        ("version", "mode", "scope", "hostname", "root"),
    ),
    Metric("ksmtop_exporter_interval_seconds", GAUGE, "Seconds between samples.", "--interval"),
    Metric("ksmtop_exporter_samples_total", COUNTER, "Samples taken.", "ksmtop"),
    Metric("ksmtop_exporter_sample_duration_seconds", GAUGE, "Time the last sample took.", "ksmtop"),
    Metric(
        "ksmtop_exporter_last_sample_timestamp_seconds",
        GAUGE,
        "Unix time of the sample being served.",
        "ksmtop",
    ),
    Metric(
        "ksmtop_exporter_errors_total",
        COUNTER,
        f"Samples with a problem, by kind ({', '.join(ERROR_KINDS)}).",
        "ksmtop",
        ("kind",),
    ),
    Metric(
        "ksmtop_exporter_libvirt_up",
        GAUGE,
        "1 when libvirt answered the last sample (absent when libvirt is not used).",
        "libvirt",
    ),
)

METRICS: dict[str, Metric] = {m.name: m for m in (*KSM_FILES.values(), *HOST_METRICS, *GUEST_METRICS, *HEALTH_METRICS)}
"""Every metric the exporter knows, by name (files of a future kernel are added as they are found)."""


@dataclass(frozen=True, slots=True)
class Health:
    """ksmtop's own state, beside the snapshot it serves."""

    version: str
    mode: str
    scope: str
    hostname: str
    is_root: bool
    interval_s: float
    samples: int = 0
    sample_duration_s: float | None = None
    last_sample_time: float | None = None
    errors: dict[str, int] = field(default_factory=dict)
    libvirt_up: bool | None = None


@dataclass(frozen=True, slots=True)
class ExportedGuest:
    """A guest as the exporter labels it: ``label`` is unique among the guests of one sample."""

    label: str
    uuid: str
    pid: int | None
    kind: str
    guest: GuestSample | None
    domain: DomainSample | None


def exported_guests(snapshot: Snapshot) -> list[ExportedGuest]:
    """Processes (joined to their libvirt domain) and running domains without a process here.

    Guest names are not unique (two processes may both be called "lab-1"), and series must be: a name that
    occurs more than once becomes "NAME (pid N)" for each process that has it. ``ksmtop_guest_info`` carries
    the pid of every guest anyway. Shut-off domains have no figures and are left out.
    """
    rows = [row for row in guest_rows(snapshot) if row.guest is not None or (row.domain and row.domain.running)]
    guests = [
        ExportedGuest(
            label=safe_name(row.name),
            uuid=safe_name(row.domain.uuid) if row.domain is not None else "",
            pid=row.pid,
            kind=row.guest.kind if row.guest is not None else "domain",
            guest=row.guest,
            domain=row.domain,
        )
        for row in rows
    ]
    for _ in range(4):  # "x (pid 5)" may itself be a name; a second round settles it
        counts = Counter(g.label for g in guests)
        if all(counts[g.label] == 1 for g in guests):
            break
        guests = [
            g if counts[g.label] == 1 else _relabel(g, f"{g.label} (pid {g.pid})" if g.pid else f"{g.label} ({g.uuid})")
            for g in guests
        ]
    return guests


def _relabel(guest: ExportedGuest, label: str) -> ExportedGuest:
    return ExportedGuest(label, guest.uuid, guest.pid, guest.kind, guest.guest, guest.domain)


def _family(metric: Metric, labels: Iterable[str] | None = None) -> GaugeMetricFamily | CounterMetricFamily:
    names = list(metric.labels if labels is None else labels)
    if metric.type == COUNTER:
        return CounterMetricFamily(metric.name, metric.help, labels=names)
    return GaugeMetricFamily(metric.name, metric.help, labels=names)


def _scaled(metric: Metric, value: int, page_size: int) -> float:
    if metric.scale == PAGES:
        return float(value * page_size)
    if metric.scale == MILLISECONDS:
        return value / 1000
    if metric.scale == PERCENT:
        return value / 100
    return float(value)


def ksm_families(snapshot: Snapshot) -> list[GaugeMetricFamily | CounterMetricFamily]:
    """Every file /sys/kernel/mm/ksm has on this kernel (known names first, then unknown ones as they are)."""
    ksm = snapshot.ksm
    result: list[GaugeMetricFamily | CounterMetricFamily] = []
    words: dict[str, str] = {}
    for file, value in sorted(ksm.values.items()):
        metric = KSM_FILES.get(file)
        if isinstance(value, str):
            if _METRIC_NAME.fullmatch(file):
                words[file] = safe(value)
            continue
        if metric is None:
            if not _METRIC_NAME.fullmatch(file):
                continue
            metric = Metric(f"ksmtop_ksm_{file}", GAUGE, f"/sys/kernel/mm/ksm/{file} as it is.", file)
        family = _family(metric)
        family.add_metric([], _scaled(metric, value, snapshot.host.page_size))
        result.append(family)
    if words:
        info = GaugeMetricFamily(KSM_FILES["advisor_mode"].name, KSM_FILES["advisor_mode"].help, labels=sorted(words))
        info.add_metric([words[name] for name in sorted(words)], 1)
        result.append(info)
    return result


def host_families(snapshot: Snapshot) -> list[GaugeMetricFamily | CounterMetricFamily]:
    host = snapshot.host
    values: dict[str, float | int | None] = {
        "ksmtop_ksm_available": int(snapshot.ksm.available),
        "ksmtop_ksm_unmerge_debt_bytes": snapshot.rates.unmerge_debt_bytes,
        "ksmtop_host_memory_total_bytes": host.mem_total_bytes or None,
        "ksmtop_host_memory_available_bytes": host.mem_available_bytes if host.mem_total_bytes else None,
        "ksmtop_ksmd_cpu_seconds_total": host.ksmd_cpu_seconds,
        "ksmtop_host_cow_ksm_total": host.cow_ksm,
    }
    result = []
    for metric in HOST_METRICS:
        value = values[metric.name]
        if value is None:
            continue
        family = _family(metric)
        family.add_metric([], float(value))
        result.append(family)
    return result


def _guest_values(guest: ExportedGuest, page_size: int) -> dict[str, float | int | None]:
    process, domain = guest.guest, guest.domain
    if process is None:  # a running domain with no process here (a remote host): what libvirt says
        return {"ksmtop_guest_rss_bytes": domain.rss_bytes if domain is not None else None}
    zero = process.ksm_zero_pages
    return {
        "ksmtop_guest_merged_bytes": process.merged_bytes(page_size),
        "ksmtop_guest_zero_pages_bytes": None if zero is None else zero * page_size,
        "ksmtop_guest_profit_bytes": process.ksm_process_profit_bytes,
        "ksmtop_guest_unmerge_debt_bytes": process.unmerge_debt_bytes,
        "ksmtop_guest_rss_bytes": process.rss_bytes,
        "ksmtop_guest_anon_bytes": process.anon_bytes,
        "ksmtop_guest_cpu_seconds_total": process.cpu_seconds,
    }


def guest_families(snapshot: Snapshot) -> list[GaugeMetricFamily | CounterMetricFamily]:
    guests = exported_guests(snapshot)
    page_size = snapshot.host.page_size
    families = {metric.name: _family(metric) for metric in GUEST_METRICS}
    for guest in guests:
        families["ksmtop_guest_info"].add_metric(
            [guest.label, guest.uuid, "" if guest.pid is None else str(guest.pid), guest.kind], 1
        )
        for name, value in _guest_values(guest, page_size).items():
            if value is not None:
                families[name].add_metric([guest.label, guest.uuid], float(value))
        if guest.guest is not None:
            faults = families["ksmtop_guest_page_faults_total"]
            faults.add_metric([guest.label, guest.uuid, "minor"], float(guest.guest.minor_faults))
            faults.add_metric([guest.label, guest.uuid, "major"], float(guest.guest.major_faults))
    return [family for family in families.values() if family.samples]


def health_families(health: Health) -> list[GaugeMetricFamily | CounterMetricFamily]:
    by_name = {m.name: m for m in HEALTH_METRICS}
    info = _family(by_name["ksmtop_exporter_info"])
    info.add_metric(
        [health.version, health.mode, health.scope, safe_name(health.hostname), "1" if health.is_root else "0"], 1
    )
    result = [info]
    for name, value in (
        ("ksmtop_exporter_interval_seconds", health.interval_s),
        ("ksmtop_exporter_samples_total", health.samples),
        ("ksmtop_exporter_sample_duration_seconds", health.sample_duration_s),
        ("ksmtop_exporter_last_sample_timestamp_seconds", health.last_sample_time),
    ):
        if value is not None:
            family = _family(by_name[name])
            family.add_metric([], float(value))
            result.append(family)
    errors = _family(by_name["ksmtop_exporter_errors_total"])
    for kind in ERROR_KINDS:
        errors.add_metric([kind], float(health.errors.get(kind, 0)))
    result.append(errors)
    if health.libvirt_up is not None:
        up = _family(by_name["ksmtop_exporter_libvirt_up"])
        up.add_metric([], float(health.libvirt_up))
        result.append(up)
    return result


def families(snapshot: Snapshot | None, health: Health) -> list[GaugeMetricFamily | CounterMetricFamily]:
    """Everything one scrape shows: the snapshot's host and guests (none before the first sample), then health."""
    if snapshot is None:
        return health_families(health)
    if snapshot.ksm.available:
        ksm = ksm_families(snapshot)
    else:
        ksm = []
    return [*ksm, *host_families(snapshot), *guest_families(snapshot), *health_families(health)]


class FixedCollector(Collector):
    """A prometheus-client collector that yields the families it was given (built once per sample)."""

    def __init__(self, items: list[GaugeMetricFamily | CounterMetricFamily]) -> None:
        self.items = items

    def collect(self) -> Iterable[GaugeMetricFamily | CounterMetricFamily]:
        return iter(self.items)


def render(items: list[GaugeMetricFamily | CounterMetricFamily]) -> bytes:
    """The Prometheus text exposition (format 0.0.4) of these families."""
    from prometheus_client.exposition import generate_latest

    return generate_latest(FixedCollector(items))


def markdown_table() -> str:
    """The metric list for docs/exporter.md."""
    lines = ["| Metric | Type | Labels | Meaning | From |", "|---|---|---|---|---|"]
    for metric in METRICS.values():
        labels = ", ".join(metric.labels)
        lines.append(f"| `{metric.name}` | {metric.type} | {labels} | {metric.help} | {metric.source} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown_table(), end="")
