"""FleetSource: many hosts through Prometheus's query API; ``sample()`` returns a FleetSnapshot.

Hosts are the (job, instance) targets that exported ``ksmtop_exporter_info`` within the look-back window
(default one hour). Each look costs a handful of requests, whatever the fleet's size:

1. every host figure at once: one instant query, a union of ``label_replace(EXPR, "ksmtop_field", NAME)``
   terms, plus ``up`` and the exporter's info;
2. every guest of every host: one more such union;
3. the sparklines: one range query for all hosts, one for the selected host's guests;
4. for each host that is down (``up`` 0, or no current sample): the time T of its last scraped sample (a raw
   range selector), then 1 and 2 again for that host, evaluated at T. So a host that stopped answering shows the
   values it had when it stopped, with their age, and is marked stale, never shown as zeros.

A host whose exporter answers but serves a sample older than ``stall_factor`` intervals is stale too.

No UI imports. Labels from Prometheus are outside text: made safe (ksmtop.safetext) before they reach a row.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import replace

from ksmtop.fleet.model import FleetGuestRow, FleetSnapshot, HostRow, Sparkline
from ksmtop.fleet.prom import PrometheusClient, PrometheusError, Sample, Series, promql_string
from ksmtop.safetext import safe, safe_name

FIELD = "ksmtop_field"
LOOKBACK_S = 3600
RANGE_S = 600
POINTS = 60
RATE_WINDOW_S = 120
STALL_FACTOR = 3.0
"""An exporter whose sample is older than this many of its intervals (and 60 s) is stale, though it answers."""

HOST_TERMS = {
    "run": "ksmtop_ksm_run{sel}",
    "available": "ksmtop_ksm_available{sel}",
    "sharing": "ksmtop_ksm_pages_sharing_bytes{sel}",
    "shared": "ksmtop_ksm_pages_shared_bytes{sel}",
    "zero": "ksmtop_ksm_zero_pages_bytes{sel}",
    "profit": "ksmtop_ksm_general_profit_bytes{sel}",
    "debt": "ksmtop_ksm_unmerge_debt_bytes{sel}",
    "mem_available": "ksmtop_host_memory_available_bytes{sel}",
    "mem_total": "ksmtop_host_memory_total_bytes{sel}",
    "libvirt_up": "ksmtop_exporter_libvirt_up{sel}",
    "last_sample": "ksmtop_exporter_last_sample_timestamp_seconds{sel}",
    "interval": "ksmtop_exporter_interval_seconds{sel}",
    "ksmd_cpu": "rate(ksmtop_ksmd_cpu_seconds_total{sel}[{window}s])",
    "guests": "count by (instance, job) (ksmtop_guest_info{sel})",
    "info": "last_over_time(ksmtop_exporter_info{sel}[{lookback}s])",
    "up": "up{sel} and on (instance, job) last_over_time(ksmtop_exporter_info{sel}[{lookback}s])",
}
GUEST_TERMS = {
    "info": "ksmtop_guest_info{sel}",
    "merged": "ksmtop_guest_merged_bytes{sel}",
    "zero": "ksmtop_guest_zero_pages_bytes{sel}",
    "profit": "ksmtop_guest_profit_bytes{sel}",
    "rss": "ksmtop_guest_rss_bytes{sel}",
    "cpu": "rate(ksmtop_guest_cpu_seconds_total{sel}[{window}s])",
    "faults": "sum without (type) (rate(ksmtop_guest_page_faults_total{sel}[{window}s]))",
}
SERIES_TERMS = {
    "saving_bytes": "ksmtop_ksm_unmerge_debt_bytes{sel}",  # = (pages_sharing + ksm_zero_pages) x page size
    "ksmd_cpu_percent": "100 * rate(ksmtop_ksmd_cpu_seconds_total{sel}[{window}s])",
    "profit_bytes": "ksmtop_ksm_general_profit_bytes{sel}",
}


def selector(labels: dict[str, str]) -> str:
    return "{" + ",".join(f"{name}={promql_string(value)}" for name, value in sorted(labels.items())) + "}"


def union(terms: dict[str, str], labels: dict[str, str], window_s: float, lookback_s: float) -> str:
    """One PromQL expression whose samples carry ksmtop_field=NAME for each term."""
    sel = selector(labels) if labels else ""
    parts = []
    for name, template in terms.items():
        expr = template.replace("{sel}", sel).replace("{window}", f"{window_s:g}")
        expr = expr.replace("{lookback}", f"{lookback_s:g}")
        parts.append(f'label_replace({expr}, "{FIELD}", "{name}", "", "")')
    return " or ".join(parts)


def host_key(job: str, instance: str) -> str:
    return f"{job}/{instance}"


def _float(fields: dict[str, Sample], name: str) -> float | None:
    sample = fields.get(name)
    if sample is None or sample.value != sample.value:  # absent or NaN
        return None
    return sample.value


class FleetSource:
    """Looks at the fleet through one Prometheus; read-only. ``select(key)`` picks the host whose guest
    sparklines the next samples fetch (the guest rows of every host are always there)."""

    can_edit = False
    why_read_only = "the fleet view reads Prometheus: change a host's KSM on that host"

    def __init__(
        self,
        prometheus: PrometheusClient | str,
        job: str | None = None,
        range_s: float = RANGE_S,
        points: int = POINTS,
        rate_window_s: float = RATE_WINDOW_S,
        lookback_s: float = LOOKBACK_S,
        stall_factor: float = STALL_FACTOR,
    ) -> None:
        self.client = prometheus if isinstance(prometheus, PrometheusClient) else PrometheusClient(prometheus)
        self.job = job
        self.range_s = range_s
        self.points = max(2, points)
        self.rate_window_s = rate_window_s
        self.lookback_s = lookback_s
        self.stall_factor = stall_factor
        self.description = f"fleet via {safe(self.client.url)}" + (f" (job {safe_name(job)})" if job else "")
        self.selected: str | None = None
        self._targets: dict[str, tuple[str, str]] = {}  # host key -> raw (job, instance) for selectors
        self._previous: FleetSnapshot | None = None

    # --- the source protocol ------------------------------------------------------------------------------
    def select(self, key: str | None) -> None:
        self.selected = key

    def close(self) -> None:
        pass

    def sample(self) -> FleetSnapshot:
        started = time.perf_counter()
        now = time.time()
        try:
            snapshot = self._look(now)
        except PrometheusError as exc:
            previous = self._previous
            return FleetSnapshot(
                time=now,
                prometheus=safe(self.client.url),
                hosts=previous.hosts if previous else (),
                guests=previous.guests if previous else (),
                host_series=previous.host_series if previous else {},
                guest_series=previous.guest_series if previous else {},
                selected=self.selected,
                error=safe(str(exc)),
                query_seconds=time.perf_counter() - started,
            )
        snapshot = replace(snapshot, query_seconds=time.perf_counter() - started)
        self._previous = snapshot
        return snapshot

    # --- the queries --------------------------------------------------------------------------------------
    def _base(self) -> dict[str, str]:
        return {"job": self.job} if self.job else {}

    def _host_fields(self, labels: dict[str, str], at: float | None) -> dict[tuple[str, str], dict[str, Sample]]:
        expr = union(HOST_TERMS, labels, self.rate_window_s, self.lookback_s)
        grouped: dict[tuple[str, str], dict[str, Sample]] = defaultdict(dict)
        for sample in self.client.query(expr, at):
            target = (sample.labels.get("job", ""), sample.labels.get("instance", ""))
            grouped[target][sample.labels.get(FIELD, "")] = sample
        return grouped

    def _guest_fields(
        self, labels: dict[str, str], at: float | None
    ) -> dict[tuple[str, str], dict[str, dict[str, Sample]]]:
        """(job, instance) -> guest label -> field -> sample."""
        expr = union(GUEST_TERMS, labels, self.rate_window_s, self.lookback_s)
        grouped: dict[tuple[str, str], dict[str, dict[str, Sample]]] = defaultdict(lambda: defaultdict(dict))
        for sample in self.client.query(expr, at):
            target = (sample.labels.get("job", ""), sample.labels.get("instance", ""))
            grouped[target][sample.labels.get("guest", "")][sample.labels.get(FIELD, "")] = sample
        return grouped

    def _last_scrape(self, job: str, instance: str, now: float) -> float | None:
        """Time of the last sample Prometheus scraped from this exporter (None: none within the look-back)."""
        labels = {**self._base(), "job": job, "instance": instance}
        expr = f"ksmtop_exporter_samples_total{selector(labels)}[{self.lookback_s:g}s]"
        times = [point[0] for series in self.client.query_raw(expr, now) for point in series.points]
        return max(times) if times else None

    def _look(self, now: float) -> FleetSnapshot:
        base = self._base()
        hosts_now = self._host_fields(base, now)
        guests_now = self._guest_fields(base, now)
        rows: list[HostRow] = []
        guest_rows: list[FleetGuestRow] = []
        targets: dict[str, tuple[str, str]] = {}
        for target in sorted(t for t, fields in hosts_now.items() if "info" in fields):
            job, instance = target
            fields, guests, at = hosts_now[target], guests_now.get(target, {}), now
            current = "last_sample" in fields and _float(fields, "up") == 1
            if not current:
                last = self._last_scrape(job, instance, now)
                if last is not None:
                    labels = {**base, "job": job, "instance": instance}
                    then = self._host_fields(labels, last).get(target, {})
                    fields = {**then, "info": fields["info"], "up": fields.get("up") or then.get("up")}
                    guests = self._guest_fields(labels, last).get(target, {})
                    at = last
            key = host_key(safe_name(job), safe_name(instance))
            targets[key] = target
            row = self._host_row(key, target, fields, now, at, current)
            rows.append(row)
            guest_rows.extend(self._guest_row(key, label, guest) for label, guest in sorted(guests.items()))
        self._targets = targets
        selected = self.selected if self.selected in targets else None
        return FleetSnapshot(
            time=now,
            prometheus=safe(self.client.url),
            hosts=tuple(rows),
            guests=tuple(guest_rows),
            host_series=self._host_series(now),
            guest_series=self._guest_series(selected, now) if selected else {},
            selected=selected,
        )

    def _host_row(
        self,
        key: str,
        target: tuple[str, str],
        fields: dict[str, Sample],
        now: float,
        at: float,
        current: bool,
    ) -> HostRow:
        info = fields["info"].labels
        last_sample = _float(fields, "last_sample")
        age = None if last_sample is None else max(0.0, now - last_sample)
        interval = _float(fields, "interval") or 15.0
        stalled = age is not None and age > max(self.stall_factor * interval, 60.0)
        sharing, shared, zero = _float(fields, "sharing"), _float(fields, "shared"), _float(fields, "zero")
        cpu = _float(fields, "ksmd_cpu")
        run, available, guests, libvirt = (
            _float(fields, name) for name in ("run", "available", "guests", "libvirt_up")
        )
        return HostRow(
            key=key,
            instance=safe_name(target[1]),
            job=safe_name(target[0]),
            hostname=safe_name(info.get("hostname", "")),
            up=_float(fields, "up") == 1,
            stale=not current or stalled,
            age_s=age,
            mode=safe_name(info.get("mode", "")),
            ksm_available=None if available is None else available == 1,
            ksm_run=None if run is None else int(run),
            saving_bytes=None if sharing is None else sharing + (zero or 0.0),
            general_profit_bytes=_float(fields, "profit"),
            sharing_ratio=sharing / shared if sharing is not None and shared else None,
            ksmd_cpu_percent=None if cpu is None else 100.0 * cpu,
            guests=int(guests) if guests is not None else (0 if available is not None else None),
            unmerge_debt_bytes=_float(fields, "debt"),
            mem_available_bytes=_float(fields, "mem_available"),
            mem_total_bytes=_float(fields, "mem_total"),
            libvirt_up=None if libvirt is None else libvirt == 1,
        )

    @staticmethod
    def _guest_row(key: str, label: str, fields: dict[str, Sample]) -> FleetGuestRow:
        info = fields["info"].labels if "info" in fields else {}
        pid = info.get("pid", "")
        cpu = _float(fields, "cpu")
        return FleetGuestRow(
            host=key,
            guest=safe_name(label),
            uuid=safe_name(info.get("uuid", "")),
            pid=int(pid) if pid.isdigit() else None,
            kind=safe_name(info.get("kind", "")),
            merged_bytes=_float(fields, "merged"),
            zero_pages_bytes=_float(fields, "zero"),
            profit_bytes=_float(fields, "profit"),
            rss_bytes=_float(fields, "rss"),
            cpu_percent=None if cpu is None else 100.0 * cpu,
            faults_per_s=_float(fields, "faults"),
        )

    def _grid(self, now: float) -> tuple[float, float, float]:
        step = max(1.0, self.range_s / self.points)
        return now - step * (self.points - 1), now, step

    def _sparkline(self, series: Series, start: float, step: float) -> Sparkline:
        values: list[float | None] = [None] * self.points
        for t, value in series.points:
            index = round((t - start) / step)
            if 0 <= index < self.points and value == value:
                values[index] = value
        return Sparkline(start, step, tuple(values))

    def _host_series(self, now: float) -> dict[str, dict[str, Sparkline]]:
        start, end, step = self._grid(now)
        expr = union(SERIES_TERMS, self._base(), self.rate_window_s, self.lookback_s)
        result: dict[str, dict[str, Sparkline]] = defaultdict(dict)
        for series in self.client.query_range(expr, start, end, step):
            key = host_key(safe_name(series.labels.get("job", "")), safe_name(series.labels.get("instance", "")))
            if key in self._targets:
                result[key][series.labels.get(FIELD, "")] = self._sparkline(series, start, step)
        return dict(result)

    def _guest_series(self, key: str, now: float) -> dict[str, Sparkline]:
        job, instance = self._targets[key]
        start, end, step = self._grid(now)
        labels = {**self._base(), "job": job, "instance": instance}
        expr = f"ksmtop_guest_merged_bytes{selector(labels)}"
        return {
            safe_name(series.labels.get("guest", "")): self._sparkline(series, start, step)
            for series in self.client.query_range(expr, start, end, step)
        }
