"""What kind of memory a process has, for "why is this guest not merging?": /proc/PID/smaps per area.

Reading smaps walks the page tables (about 8 ms per GiB of RSS, like smaps_rollup): on demand only, for the
selected guest. No UI imports; takes ``root`` (default "/").
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class SmapsArea:
    start: int
    end: int
    perms: str
    path: str
    rss_bytes: int
    anonymous_bytes: int
    ksm_bytes: int | None
    vm_flags: frozenset[str]

    @property
    def size(self) -> int:
        return self.end - self.start

    @property
    def mergeable(self) -> bool:
        return "mg" in self.vm_flags

    @property
    def shared(self) -> bool:
        return "sh" in self.vm_flags or self.perms[3:4] == "s"

    @property
    def hugetlb(self) -> bool:
        return "ht" in self.vm_flags


@dataclass(frozen=True, slots=True)
class SmapsSummary:
    areas: tuple[SmapsArea, ...]

    @property
    def largest(self) -> SmapsArea | None:
        """The biggest area: a qemu guest's RAM."""
        return max(self.areas, key=lambda area: area.size, default=None)

    @property
    def mergeable_rss_bytes(self) -> int:
        return sum(area.rss_bytes for area in self.areas if area.mergeable)

    @property
    def mergeable_size_bytes(self) -> int:
        return sum(area.size for area in self.areas if area.mergeable)

    @property
    def shared_rss_bytes(self) -> int:
        return sum(area.rss_bytes for area in self.areas if area.shared)

    @property
    def hugetlb_size_bytes(self) -> int:
        return sum(area.size for area in self.areas if area.hugetlb)

    @property
    def ksm_bytes(self) -> int | None:
        values = [area.ksm_bytes for area in self.areas if area.ksm_bytes is not None]
        return sum(values) if values else None


def parse_smaps(text: str) -> SmapsSummary:
    """Areas of /proc/PID/smaps with the figures the diagnosis needs (kB lines in bytes)."""
    areas: list[SmapsArea] = []
    header: list[str] | None = None
    values: dict[str, int] = {}
    flags: frozenset[str] = frozenset()

    def finish() -> None:
        if header is None:
            return
        low, _, high = header[0].partition("-")
        areas.append(
            SmapsArea(
                start=int(low, 16),
                end=int(high, 16),
                perms=header[1],
                path=header[5] if len(header) > 5 else "",
                rss_bytes=values.get("Rss", 0),
                anonymous_bytes=values.get("Anonymous", 0),
                ksm_bytes=values.get("KSM"),
                vm_flags=flags,
            )
        )

    for line in text.splitlines():
        key, colon, rest = line.partition(":")
        if colon and key.isidentifier():
            if key == "VmFlags":
                flags = frozenset(rest.split())
            else:
                parts = rest.split()
                if parts and parts[0].isdigit():
                    values[key] = int(parts[0]) * (1024 if parts[1:2] == ["kB"] else 1)
            continue
        parts = line.split(maxsplit=5)
        if len(parts) >= 5 and "-" in parts[0]:
            finish()
            header, values, flags = parts, {}, frozenset()
    finish()
    return SmapsSummary(tuple(areas))


def read_smaps(pid: int, root: str | Path = "/") -> SmapsSummary | None:
    """The areas of process ``pid``; None when it is gone or unreadable."""
    try:
        with open(Path(root) / "proc" / str(pid) / "smaps") as handle:
            return parse_smaps(handle.read())
    except (OSError, ValueError):
        return None
