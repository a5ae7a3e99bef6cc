"""Guest rows: each qemu process joined to its libvirt domain, then the domains without a process here (shut
off, or on a remote host). One list serves the table, the details panel and the controls. No UI imports."""

from __future__ import annotations

from dataclasses import dataclass

from ksmtop.model import DomainSample, GuestSample, Snapshot

DOMAIN_KEY_PREFIX = "domain:"


@dataclass(frozen=True, slots=True)
class GuestRow:
    """A process, a domain, or both. ``key`` is the PID for a process and ``domain:UUID`` for a domain alone."""

    key: str
    guest: GuestSample | None = None
    domain: DomainSample | None = None

    @property
    def name(self) -> str:
        if self.domain is not None:
            return self.domain.name
        return self.guest.name if self.guest is not None else ""

    @property
    def pid(self) -> int | None:
        if self.guest is not None:
            return self.guest.pid
        return self.domain.pid if self.domain is not None else None

    @property
    def rss_bytes(self) -> int | None:
        if self.guest is not None:
            return self.guest.rss_bytes
        return self.domain.rss_bytes if self.domain is not None else None

    @property
    def state(self) -> str | None:
        return self.domain.state if self.domain is not None else None


def guest_rows(snapshot: Snapshot) -> list[GuestRow]:
    """Processes first (joined to their domain by PID), then domains with no process among the guests."""
    by_pid = {domain.pid: domain for domain in snapshot.domains if domain.pid is not None}
    rows = [GuestRow(str(guest.pid), guest, by_pid.get(guest.pid)) for guest in snapshot.guests]
    shown = {row.domain.uuid for row in rows if row.domain is not None}
    rows += [
        GuestRow(DOMAIN_KEY_PREFIX + domain.uuid, None, domain)
        for domain in snapshot.domains
        if domain.uuid not in shown
    ]
    return rows


def find_row(snapshot: Snapshot, key: str | None) -> GuestRow | None:
    if key is None:
        return None
    return next((row for row in guest_rows(snapshot) if row.key == key), None)
