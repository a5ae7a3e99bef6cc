"""Rates and derived figures: what two samples in a row say that one cannot (CPU %, faults/s, scan rate, the
saving, time per full scan). Pure functions over the model; the sampler and the remote source call them.
"""

from __future__ import annotations

import dataclasses

from ksmtop.format import human_bytes
from ksmtop.model import GuestSample, HostSample, KsmRates, KsmState, Snapshot, replace_guest


def _rate(new: float | None, old: float | None, seconds: float) -> float | None:
    if new is None or old is None or seconds <= 0:
        return None
    return (new - old) / seconds


def guest_debt(guest: GuestSample, page_size: int) -> int | None:
    """What the process would need back if its merged pages were unmerged: (merging + zero pages) x page size.

    An upper bound for one guest on its own (each of its mappings of a merged page becomes a private copy again);
    summed over guests it exceeds the host's debt by the kept copies (pages_shared), which are reused.
    """
    if guest.ksm_merging_pages is None:
        return None
    return (guest.ksm_merging_pages + (guest.ksm_zero_pages or 0)) * page_size


def guest_rates(
    guest: GuestSample, previous: Snapshot | None, interval: float | None, clock_ticks: int, page_size: int
) -> GuestSample:
    """Rates since the previous sample, and the guest's unmerge debt."""
    debt = guest_debt(guest, page_size)
    old = previous.guest(guest.pid) if previous is not None else None
    if not interval or old is None or old.start_ticks != guest.start_ticks:
        return guest if debt == guest.unmerge_debt_bytes else replace_guest(guest, unmerge_debt_bytes=debt)
    faults = _rate(guest.minor_faults + guest.major_faults, old.minor_faults + old.major_faults, interval)
    cpu = _rate(guest.cpu_seconds, old.cpu_seconds, interval)
    return replace_guest(
        guest,
        cpu_percent=None if cpu is None else max(0.0, 100.0 * cpu),
        faults_per_s=faults,
        merged_pages_per_s=_rate(guest.ksm_merging_pages, old.ksm_merging_pages, interval),
        unmerge_debt_bytes=debt,
    )


def host_rates(host: HostSample, old: HostSample | None, interval: float | None) -> HostSample:
    if old is None or not interval:
        return host
    cpu = _rate(host.ksmd_cpu_seconds, old.ksmd_cpu_seconds, interval)
    return dataclasses.replace(
        host,
        ksmd_cpu_percent=None if cpu is None else max(0.0, 100.0 * cpu),
        cow_ksm_per_s=_rate(host.cow_ksm, old.cow_ksm, interval),
    )


def debt_exceeds_available(snapshot: Snapshot) -> bool:
    """True when unmerging everything (run=2) would need more memory than MemAvailable says there is."""
    debt = snapshot.rates.unmerge_debt_bytes
    return debt is not None and snapshot.host.mem_total_bytes > 0 and debt > snapshot.host.mem_available_bytes


def unmerge_warning(snapshot: Snapshot) -> str | None:
    """The question to ask before run=2 when unmerging would need more memory than is available (None: no risk
    seen). Says both numbers."""
    if not debt_exceeds_available(snapshot):
        return None
    debt, available = snapshot.rates.unmerge_debt_bytes, snapshot.host.mem_available_bytes
    return (
        f"run=2 unmerges every merged page: the host would need {human_bytes(debt)} back (the unmerge debt), "
        f"but only {human_bytes(available)} is available (MemAvailable). Memory could run out and the OOM killer "
        "wake up. Write run=2 anyway? (y writes it, n leaves run as it is)"
    )


def ksm_rates(
    ksm: KsmState,
    host: HostSample,
    old: KsmState | None,
    interval: float | None,
    guests: list[GuestSample] | tuple[GuestSample, ...] = (),
) -> KsmRates:
    """Saving, ratio, scan rate and time per full scan from the KSM counters (and their change)."""
    sharing = ksm.get("pages_sharing")
    shared = ksm.get("pages_shared")
    zero = ksm.get("ksm_zero_pages") or 0
    saving = None if sharing is None else (sharing + zero) * host.page_size
    ratio = sharing / shared if sharing is not None and shared else None
    to_scan = ksm.get("pages_to_scan")
    sleep_ms = ksm.get("sleep_millisecs")
    scan_rate = None
    if ksm.running and to_scan is not None and sleep_ms is not None:
        # ksmd scans pages_to_scan pages then sleeps; 0 ms sleep still yields the CPU once per batch.
        scan_rate = to_scan * 1000.0 / max(sleep_ms, 1)
    measured = None
    full_scans_delta = None
    sharing_rate = None
    if old is not None and interval:
        measured = _rate(ksm.get("pages_scanned"), old.get("pages_scanned"), interval)
        if ksm.get("full_scans") is not None and old.get("full_scans") is not None:
            full_scans_delta = ksm.get("full_scans") - old.get("full_scans")  # type: ignore[operator]
        sharing_rate = _rate(sharing, old.get("pages_sharing"), interval)
    # rmap_items is roughly the number of mergeable pages ksmd visits per pass; fall back to anon RSS of guests.
    mergeable_pages = sum(g.ksm_rmap_items or 0 for g in guests) or sum(g.anon_bytes for g in guests) // max(
        host.page_size, 1
    )
    rate_for_estimate = measured if measured else scan_rate
    full_scan_seconds = mergeable_pages / rate_for_estimate if rate_for_estimate and mergeable_pages else None
    return KsmRates(
        saving_bytes=saving,
        unmerge_debt_bytes=saving,
        sharing_ratio=ratio,
        scan_rate_pages_per_s=scan_rate,
        measured_scan_pages_per_s=measured,
        full_scan_seconds=full_scan_seconds,
        full_scans_delta=full_scans_delta,
        pages_sharing_per_s=sharing_rate,
    )
