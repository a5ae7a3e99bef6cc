"""libvirt polled in a thread of its own, so that a slow, hung or restarting libvirtd never holds up a sample.

The sampler asks for a fetch (``poke``) as it starts a sample and takes whatever the watcher has when it is done
(``latest``, waiting a bounded time). What libvirt did not answer in time is shown as old, in words.

The thread never dies of a surprise: an unexpected exception in a round becomes the status (in safe words) and
the watcher goes on, retrying with a back-off. ``close`` returns within CLOSE_WAIT_S whatever libvirtd does: a
call hung in a stopped libvirtd keeps the daemon thread and its connection, which are abandoned, not waited for.

No UI imports.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from dataclasses import dataclass

from ksmtop.collect.libvirt import LibvirtConnection, LibvirtError
from ksmtop.model import DomainSample
from ksmtop.safetext import safe

STALE_AFTER_S = 5.0
"""A view older than this is labelled as old in the status."""
CLOSE_WAIT_S = 1.0
"""How long ``close`` waits for the thread to finish its round before abandoning it (quit stays under 2 s)."""
BACKOFF_S = (0.5, 1.0, 2.0, 4.0)
"""Pauses after 1, 2, 3, 4+ unexpected failures in a row (below STALE_AFTER_S, so the error stays the status)."""


@dataclass(frozen=True, slots=True)
class LibvirtView:
    """What one round of libvirt calls returned."""

    domains: tuple[DomainSample, ...] = ()
    status: str = "libvirt: not asked yet"
    connected: bool = False
    fetched_at: float = 0.0  # time.monotonic() of the answer
    node_ksm: dict[str, int] | None = None  # remote mode only
    node_memory: dict[str, int] | None = None
    node_cpus: int | None = None
    page_size: int | None = None


class DomainWatcher:
    """Fetches domains (and, for a remote host, the node's memory and KSM figures) whenever poked."""

    def __init__(self, connection: LibvirtConnection, node: bool = False, fault_counters: bool = True) -> None:
        self.connection = connection
        self.node = node
        self.fault_counters = fault_counters
        self._view = LibvirtView(status=f"libvirt {connection.label}: connecting…")
        self._wanted = threading.Event()
        self._stop = threading.Event()
        self._failures = 0
        self._fetched = threading.Condition()
        self._rounds = 0
        self._stopped = False
        self._perf_tried: dict[tuple[str, int | None], str] = {}
        self._previous_faults: dict[str, tuple[int, float]] = {}
        self._page_size: int | None = None
        self.first_wait_s = 0.0
        """Until the first round has finished, ``latest`` waits this long at least (a libvirtd that has just
        started probes qemu first; headless output would rather wait than print no domains)."""
        self._thread = threading.Thread(target=self._run, name="ksmtop-libvirt", daemon=True)
        self._thread.start()

    # --- for the sampler ----------------------------------------------------------------------------------
    def poke(self) -> int:
        """Ask for a fresh round; returns a ticket for ``latest``."""
        with self._fetched:
            ticket = self._rounds + 1
        self._wanted.set()
        return ticket

    def latest(self, ticket: int = 0, wait_s: float = 0.0) -> LibvirtView:
        """The newest view; waits up to ``wait_s`` for round ``ticket`` (from poke) to finish."""
        if self._rounds == 0:
            wait_s = max(wait_s, self.first_wait_s)
        deadline = time.monotonic() + wait_s
        with self._fetched:
            while self._rounds < ticket and not self._stopped:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._fetched.wait(left)
            view = self._view
        age = time.monotonic() - view.fetched_at
        if view.fetched_at and age > STALE_AFTER_S:
            return dataclasses.replace(
                view, status=f"libvirt {self.connection.label}: no answer for {age:.0f} s (showing the last answer)"
            )
        return view

    def close(self) -> None:
        """Stop the thread; returns within about CLOSE_WAIT_S even while a libvirt call hangs (see the module)."""
        self._stopped = True
        self._stop.set()
        self._wanted.set()
        with self._fetched:
            self._fetched.notify_all()
        self._thread.join(timeout=CLOSE_WAIT_S)
        self.connection.close(wait_s=0.0 if self._thread.is_alive() else CLOSE_WAIT_S)

    # --- the thread ---------------------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            self._wanted.wait()
            self._wanted.clear()
            if self._stopped:
                return
            view = self._round()
            with self._fetched:
                self._view = view
                self._rounds += 1
                self._fetched.notify_all()
            if self._failures:
                self._stop.wait(BACKOFF_S[min(self._failures, len(BACKOFF_S)) - 1])

    def _round(self) -> LibvirtView:
        """fetch(), with any surprise turned into the status: the thread must outlive every bug and library."""
        try:
            view = self.fetch()
        except Exception as exc:  # reported in the status, then retried
            self._failures += 1
            what = f"{type(exc).__name__}: {' '.join(str(exc).split())}".rstrip(": ")
            return LibvirtView(
                status=f"libvirt {self.connection.label}: unexpected error ({safe(what)}); retrying",
                fetched_at=time.monotonic(),
            )
        self._failures = 0
        return view

    def fetch(self) -> LibvirtView:
        """One round of calls (blocking)."""
        try:
            domains = self.connection.domains()
        except LibvirtError as exc:
            self._page_size = None
            return LibvirtView(status=f"libvirt: {exc}; retrying", fetched_at=time.monotonic())
        errors: list[str] = []
        if self.fault_counters:
            self._enable_fault_counters(domains)
        stats: dict[str, dict[str, int]] = {}
        try:
            stats = self.connection.domain_stats()
        except LibvirtError as exc:
            errors.append(str(exc))
        now = time.monotonic()
        samples = tuple(self._with_stats(domain, stats.get(domain.uuid, {}), now) for domain in domains)
        view = LibvirtView(domains=samples, connected=True, fetched_at=now)
        if self.node:
            view = self._with_node(view, errors)
        running = sum(1 for domain in samples if domain.running)
        status = f"libvirt {self.connection.label}: connected, {len(samples)} domains, {running} running"
        if errors:
            status += f" ({errors[0]})"
        perf_note = self._perf_note(samples)
        if perf_note:
            status += f"; {perf_note}"
        return dataclasses.replace(view, status=status)

    def _with_stats(self, domain: DomainSample, figures: dict[str, int], now: float) -> DomainSample:
        if not figures:
            return domain
        rate = None
        minor, major = figures.get("minor_faults"), figures.get("major_faults")
        if minor is not None or major is not None:
            total = (minor or 0) + (major or 0)
            key = f"{domain.uuid}/{domain.pid}"
            previous = self._previous_faults.get(key)
            if previous is not None and now > previous[1] and total >= previous[0]:
                rate = (total - previous[0]) / (now - previous[1])
            self._previous_faults[key] = (total, now)
        return dataclasses.replace(
            domain,
            rss_bytes=figures.get("rss_bytes"),
            minor_faults=minor,
            major_faults=major,
            faults_per_s=rate,
        )

    def _enable_fault_counters(self, domains: list[DomainSample]) -> None:
        """Switch on libvirt's page-fault perf events once per running domain (live only, not its config)."""
        for domain in domains:
            key = (domain.uuid, domain.pid)
            if not domain.running or domain.state == "paused" or key in self._perf_tried:
                continue
            try:
                self.connection.enable_fault_counters(domain)
                self._perf_tried[key] = ""
            except LibvirtError as exc:
                self._perf_tried[key] = str(exc)

    def _perf_note(self, domains: tuple[DomainSample, ...]) -> str:
        failures = [why for why in self._perf_tried.values() if why]
        if failures and not any(d.faults_per_s is not None or d.minor_faults is not None for d in domains):
            return f"libvirt perf faults unavailable: {failures[-1]}"
        return ""

    def _with_node(self, view: LibvirtView, errors: list[str]) -> LibvirtView:
        changes: dict[str, object] = {}
        for name, call in (
            ("node_ksm", self.connection.node_ksm),
            ("node_memory", self.connection.node_memory),
            ("node_cpus", self.connection.node_cpus),
        ):
            try:
                changes[name] = call()
            except LibvirtError as exc:
                errors.append(str(exc))
        if self._page_size is None:
            try:
                self._page_size = self.connection.page_size()
            except LibvirtError as exc:
                errors.append(str(exc))
        changes["page_size"] = self._page_size
        return dataclasses.replace(view, **changes)  # type: ignore[arg-type]
