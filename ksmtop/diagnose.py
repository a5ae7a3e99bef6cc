"""Why is this guest not merging? And how many more guests like it fit? Pure functions over collected figures.

No UI imports and no I/O: the caller passes the GuestSample, the KsmState, the guest's smaps (collect/smaps.py,
read on demand) and, when known, the full scans completed since the guest started (from History).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ksmtop.model import GuestSample, HostSample, KsmState

if TYPE_CHECKING:
    from ksmtop.collect.smaps import SmapsArea, SmapsSummary

SIDE_CHANNEL_WARNING = (
    "KSM across mutually untrusted guests opens side channels (a guest can tell by timing which pages others hold, "
    "as the kernel's KSM documentation warns): merge only guests that trust each other."
)
LOW_MERGE_FRACTION = 0.05
"""Below this share of its mergeable pages merged, a guest counts as "not merging"."""
SCANNED_FRACTION = 0.9
"""ksmd has seen a guest once its rmap items cover this share of the guest's mergeable resident pages."""
SCANS_TO_MERGE = 2
"""A page merges on its second full scan at the earliest (the first only checksums it)."""


@dataclass(frozen=True, slots=True)
class Reason:
    code: str
    """ksm-off, not-mergeable, shared-backing, hugetlb, not-scanned, content-differs."""
    text: str


@dataclass(frozen=True, slots=True)
class Diagnosis:
    pid: int
    merged_fraction: float | None
    """Merged pages / mergeable resident pages (None when unknown)."""
    reasons: tuple[Reason, ...]

    @property
    def merging(self) -> bool:
        return not self.reasons

    @property
    def summary(self) -> str:
        if self.reasons:
            return self.reasons[0].text
        if self.merged_fraction is None:
            return "merging (share unknown)"
        return f"merging: {100 * self.merged_fraction:.0f}% of its mergeable memory is merged"


def diagnose(
    guest: GuestSample,
    ksm: KsmState,
    smaps: SmapsSummary | None,
    page_size: int,
    full_scans_since_start: int | None = None,
) -> Diagnosis:
    """The reasons, most fundamental first; none when the guest merges a fair share of its memory."""
    merged = guest.ksm_merging_pages or 0
    mergeable_pages = smaps.mergeable_rss_bytes // page_size if smaps is not None else None
    basis = mergeable_pages if mergeable_pages else guest.anon_bytes // page_size
    fraction = merged / basis if basis else None
    reasons: list[Reason] = []
    if not ksm.available:
        reasons.append(Reason("ksm-off", f"KSM is not available: {ksm.error or 'no /sys/kernel/mm/ksm'}"))
    elif ksm.get("run") == 0:
        reasons.append(Reason("ksm-off", "KSM is off (run=0): ksmd does not scan"))
    elif ksm.get("run") == 2:
        reasons.append(Reason("ksm-off", "KSM is unmerging everything (run=2)"))
    elif ksm.get("pages_to_scan") == 0 and ksm.values.get("advisor_mode", "none") == "none":
        reasons.append(Reason("ksm-off", "pages_to_scan is 0: ksmd wakes up but scans nothing"))
    largest = smaps.largest if smaps is not None else None
    hugetlb = _hugetlb_ram(smaps)
    if hugetlb is not None:
        reasons.append(
            Reason(
                "hugetlb",
                f"guest RAM is on hugetlbfs ({hugetlb.path or 'hugepages'}, {hugetlb.size // (1024 * 1024)} MiB): "
                "KSM never scans hugetlbfs memory, so it cannot merge any of it",
            )
        )
    elif largest is not None and largest.shared:
        backing = largest.path or "shared anonymous memory"
        reasons.append(
            Reason(
                "shared-backing",
                f"guest RAM is a shared mapping ({backing}; e.g. memory-backend-memfd/file with share=on, vhost-user): "
                "KSM never merges shared memory",
            )
        )
    not_mergeable = (smaps is not None and smaps.mergeable_size_bytes == 0) or (
        smaps is None and guest.ksm_mergeable is False and not guest.ksm_merge_any
    )
    if not_mergeable and not any(r.code in ("hugetlb", "shared-backing") for r in reasons):
        how = (
            "qemu -machine mem-merge=off, or libvirt <memoryBacking><nosharepages/>"
            if guest.kind == "qemu"
            else ("no madvise(MADV_MERGEABLE) or prctl(PR_SET_MEMORY_MERGE)")
        )
        reasons.append(
            Reason("not-mergeable", f"its memory is not marked mergeable (no 'mg' areas, ksm_mergeable no): {how}")
        )
    if reasons:
        return Diagnosis(guest.pid, fraction, tuple(reasons))
    if fraction is not None and fraction >= LOW_MERGE_FRACTION:
        return Diagnosis(guest.pid, fraction, ())
    rmap = guest.ksm_rmap_items
    scanned = rmap / mergeable_pages if rmap is not None and mergeable_pages else None
    scans = full_scans_since_start
    if (scanned is not None and scanned < SCANNED_FRACTION) or (scans is not None and scans < SCANS_TO_MERGE):
        parts = []
        if scanned is not None:
            parts.append(f"ksmd has seen {100 * min(scanned, 1):.0f}% of its mergeable memory")
        if scans is not None:
            parts.append(f"{scans} full scan{'s' if scans != 1 else ''} since it started")
        text = (
            "not scanned yet: " + ", ".join(parts) + f" (pages merge on their {SCANS_TO_MERGE}nd pass at the earliest)"
        )
        return Diagnosis(guest.pid, fraction, (Reason("not-scanned", text),))
    share = f"{100 * fraction:.1f}%" if fraction is not None else "few"
    text = (
        f"scanned, but only {share} of its pages found an identical page: its memory content differs "
        "(random, encrypted or compressed data, or a different OS)"
    )
    return Diagnosis(guest.pid, fraction, (Reason("content-differs", text),))


def _hugetlb_ram(smaps: SmapsSummary | None) -> SmapsArea | None:
    """The largest hugetlbfs area when hugetlbfs holds at least as much as the mergeable areas (the guest's RAM
    is there: qemu's memory-backend-file on hugetlbfs, libvirt's <hugepages/>); None otherwise. Not simply the
    largest area: under TCG qemu's translation buffer (1 GiB) can be larger than the guest's RAM."""
    if smaps is None:
        return None
    areas = [area for area in smaps.areas if area.hugetlb]
    if not areas or smaps.hugetlb_size_bytes < smaps.mergeable_size_bytes:
        return None
    return max(areas, key=lambda area: area.size)


@dataclass(frozen=True, slots=True)
class Capacity:
    available_bytes: int
    cost_without_ksm_bytes: int
    """Memory one more guest like this one needs: its resident size."""
    cost_with_ksm_bytes: int
    """Resident size minus its merged pages (they would map pages KSM already keeps)."""
    fit_without_ksm: int
    fit_with_ksm: int


def capacity(guest: GuestSample, host: HostSample) -> Capacity | None:
    """How many more guests like ``guest`` fit in MemAvailable, with and without KSM (None without a size).

    Assumes a new guest merges as much as this one did so far: the estimate grows as merging converges. Its
    hugetlbfs pages (which RSS leaves out and KSM never merges) count in both costs.
    """
    without = guest.rss_bytes + (guest.hugetlb_bytes or 0)
    if without <= 0:
        return None
    merged = (guest.ksm_merging_pages or 0) * host.page_size
    with_ksm = max(without - merged, host.page_size)
    available = max(host.mem_available_bytes, 0)
    return Capacity(available, without, with_ksm, available // without, available // with_ksm)
