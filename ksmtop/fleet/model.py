"""The fleet model: what one look at Prometheus holds for many hosts. Frozen dataclasses, like ksmtop.model.

A FleetSnapshot has one HostRow per exporter instance (job + instance), the guest rows of every host, and the
sparkline series of range queries. A host whose exporter stopped answering is ``stale``: its values are the
last ones Prometheus scraped from it (evaluated at that moment), never zeros, and ``age_s`` says how old they
are. Every field carries its unit, description and column label (FLEET_FIELDS), for the screen's headers.

No UI imports. Strings are outside text (from Prometheus's labels) and are made safe where they enter, in
source.py and in from_dict().
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ksmtop.safetext import safe, safe_name


def _meta(unit: str, description: str, label: str = "") -> dict[str, str]:
    return {"unit": unit, "description": description, "label": label}


@dataclass(frozen=True, slots=True)
class HostRow:
    """One host (one exporter instance) as Prometheus last saw it."""

    key: str = field(metadata=_meta("", "job/instance: the row's identity, for select()"))
    instance: str = field(metadata=_meta("", "the target's instance label (host:port)", "Instance"))
    job: str = field(metadata=_meta("", "the target's job label", "Job"))
    hostname: str = field(metadata=_meta("", "the host's name as its exporter reports it", "Host"))
    up: bool = field(metadata=_meta("", "Prometheus's last scrape of the exporter succeeded", "Up"))
    stale: bool = field(
        metadata=_meta("", "no current sample (exporter down, or its sampler stalled): values are the last known")
    )
    age_s: float | None = field(metadata=_meta("s", "age of the exporter's sample the values come from", "Age"))
    mode: str = field(default="", metadata=_meta("", "exporter mode: local (/proc and /sys) or remote (libvirt)"))
    ksm_available: bool | None = field(default=None, metadata=_meta("", "the host has /sys/kernel/mm/ksm"))
    ksm_run: int | None = field(default=None, metadata=_meta("", "KSM run: 0 off, 1 on, 2 off and unmerged", "KSM"))
    saving_bytes: float | None = field(
        default=None, metadata=_meta("bytes", "(pages_sharing + ksm_zero_pages) x page size", "Saving")
    )
    general_profit_bytes: float | None = field(
        default=None, metadata=_meta("bytes", "general_profit: saving minus KSM's metadata (signed)", "Profit")
    )
    sharing_ratio: float | None = field(
        default=None, metadata=_meta("x", "pages_sharing / pages_shared: mappings per kept page", "Ratio")
    )
    ksmd_cpu_percent: float | None = field(
        default=None, metadata=_meta("%", "ksmd CPU over the rate window (of one core)", "ksmd CPU")
    )
    guests: int | None = field(default=None, metadata=_meta("guests", "guests the exporter reports", "Guests"))
    unmerge_debt_bytes: float | None = field(
        default=None, metadata=_meta("bytes", "memory needed if everything were unmerged", "Debt")
    )
    mem_available_bytes: float | None = field(default=None, metadata=_meta("bytes", "MemAvailable", "Avail"))
    mem_total_bytes: float | None = field(default=None, metadata=_meta("bytes", "MemTotal", "Total"))
    libvirt_up: bool | None = field(
        default=None, metadata=_meta("", "the exporter's libvirt connection (None: libvirt not used)", "libvirt")
    )

    @property
    def ksm_on(self) -> bool | None:
        return None if self.ksm_run is None else self.ksm_run == 1

    @property
    def debt_exceeds_available(self) -> bool:
        """Unmerging everything would need more than the available memory."""
        return (
            self.unmerge_debt_bytes is not None
            and self.mem_available_bytes is not None
            and self.unmerge_debt_bytes > self.mem_available_bytes
        )


@dataclass(frozen=True, slots=True)
class FleetGuestRow:
    """One guest of one host, as its exporter labels it (names are unique per host)."""

    host: str = field(metadata=_meta("", "HostRow.key of its host"))
    guest: str = field(metadata=_meta("", "guest label (duplicates carry ' (pid N)')", "Guest"))
    uuid: str = field(default="", metadata=_meta("", "libvirt UUID ('' when not a libvirt domain)", "UUID"))
    pid: int | None = field(default=None, metadata=_meta("", "qemu process ID", "PID"))
    kind: str = field(default="", metadata=_meta("", "qemu, process (--all) or domain (libvirt only)", "Kind"))
    merged_bytes: float | None = field(default=None, metadata=_meta("bytes", "memory merged by KSM", "Merged"))
    zero_pages_bytes: float | None = field(default=None, metadata=_meta("bytes", "pages merged with zero", "Zero"))
    profit_bytes: float | None = field(default=None, metadata=_meta("bytes", "ksm_process_profit", "Profit"))
    rss_bytes: float | None = field(default=None, metadata=_meta("bytes", "resident set size", "RSS"))
    cpu_percent: float | None = field(default=None, metadata=_meta("%", "CPU over the rate window", "CPU%"))
    faults_per_s: float | None = field(default=None, metadata=_meta("faults/s", "page faults per second", "Flt/s"))

    @property
    def merged_percent(self) -> float | None:
        if self.merged_bytes is None or not self.rss_bytes:
            return None
        return 100.0 * self.merged_bytes / self.rss_bytes


@dataclass(frozen=True, slots=True)
class Sparkline:
    """Values of a range query on a regular grid: ``values[i]`` is at ``start + i * step_s`` (None: a gap)."""

    start: float
    step_s: float
    values: tuple[float | None, ...]

    def filled(self, missing: float = 0.0) -> list[float]:
        """For sparkline widgets that take numbers only."""
        return [missing if value is None else value for value in self.values]


@dataclass(frozen=True, slots=True)
class FleetSnapshot:
    """One look at the fleet through Prometheus."""

    time: float = field(metadata=_meta("s", "wall-clock time of the queries (Unix epoch)"))
    prometheus: str = field(metadata=_meta("", "the Prometheus URL asked"))
    hosts: tuple[HostRow, ...] = ()
    guests: tuple[FleetGuestRow, ...] = ()
    host_series: dict[str, dict[str, Sparkline]] = field(
        default_factory=dict, metadata=_meta("", "per host key: saving_bytes, ksmd_cpu_percent, profit_bytes")
    )
    guest_series: dict[str, Sparkline] = field(
        default_factory=dict, metadata=_meta("", "per guest label of the selected host: merged_bytes")
    )
    selected: str | None = field(default=None, metadata=_meta("", "HostRow.key whose guest series are here"))
    error: str | None = field(
        default=None, metadata=_meta("", "why this look failed (the rows are then the last good ones)")
    )
    query_seconds: float | None = field(default=None, metadata=_meta("s", "time the queries took"))

    def host(self, key: str) -> HostRow | None:
        return next((host for host in self.hosts if host.key == key), None)

    def guests_of(self, key: str) -> list[FleetGuestRow]:
        return [guest for guest in self.guests if guest.host == key]


def _describe(*classes: type) -> dict[str, dict[str, str]]:
    return {
        f"{cls.__name__}.{f.name}": dict(f.metadata) for cls in classes for f in dataclasses.fields(cls) if f.metadata
    }


FLEET_FIELDS: dict[str, dict[str, str]] = _describe(HostRow, FleetGuestRow, FleetSnapshot)
"""Unit, description and column label of every fleet field, keyed 'Class.field'."""


def to_dict(snapshot: FleetSnapshot) -> dict[str, Any]:
    """A JSON-ready dict with the model's own field names (``--once --json`` and recordings)."""
    return dataclasses.asdict(snapshot)


def _clean(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    """Known fields only, strings made safe (a recording is outside text too)."""
    names = {f.name for f in dataclasses.fields(cls)}
    return {key: (safe_name(value) if isinstance(value, str) else value) for key, value in data.items() if key in names}


def _sparkline(data: dict[str, Any]) -> Sparkline:
    values = tuple(None if v is None else float(v) for v in data["values"])
    return Sparkline(float(data["start"]), float(data["step_s"]), values)


def from_dict(data: dict[str, Any]) -> FleetSnapshot:
    """Inverse of to_dict; raises KeyError, TypeError or ValueError on malformed input."""
    return FleetSnapshot(
        time=float(data["time"]),
        prometheus=safe(data["prometheus"]),
        hosts=tuple(HostRow(**_clean(HostRow, host)) for host in data.get("hosts", ())),
        guests=tuple(FleetGuestRow(**_clean(FleetGuestRow, guest)) for guest in data.get("guests", ())),
        host_series={
            safe_name(key): {safe_name(name): _sparkline(line) for name, line in lines.items()}
            for key, lines in data.get("host_series", {}).items()
        },
        guest_series={safe_name(name): _sparkline(line) for name, line in data.get("guest_series", {}).items()},
        selected=None if data.get("selected") is None else safe_name(data["selected"]),
        error=None if data.get("error") is None else safe(data["error"]),
        query_seconds=data.get("query_seconds"),
    )
