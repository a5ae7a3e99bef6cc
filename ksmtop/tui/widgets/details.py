"""The selected guest in full: memory split, PSS, KSM figures and faults."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from ksmtop.format import human_bytes, human_count, percent
from ksmtop.model import DomainSample, Snapshot
from ksmtop.rows import GuestRow


def _yes_no(value: bool | None) -> str:
    return "unknown" if value is None else ("yes" if value else "no")


def domain_line(domain: DomainSample) -> Text:
    """The libvirt side of a guest in two lines."""
    text = Text.assemble(("Domain      ", ""), (domain.name, "bold"), f"  {domain.state}  {domain.vcpus} vCPU")
    text.append(f"  memory {human_bytes(domain.memory_bytes)} of {human_bytes(domain.max_memory_bytes)} defined")
    if domain.rss_bytes is not None:
        text.append(f"  RSS {human_bytes(domain.rss_bytes)} (libvirt)")
    text.append(f"\nUUID        {domain.uuid}" + ("" if domain.persistent else " (transient)"), style="dim")
    if domain.minor_faults is not None:
        text.append(f"  libvirt perf faults {human_count(domain.minor_faults)} minor, ", style="dim")
        text.append(f"{human_count(domain.major_faults)} major, {human_count(domain.faults_per_s)} /s", style="dim")
        text.append(" (qemu's main thread only)", style="dim")
    return text


def _domain_only(domain: DomainSample, snapshot: Snapshot, control: str) -> Group:
    if snapshot.mode == "remote":
        why = "per-process figures (KSM merged pages, PSS, /proc faults) are not available remotely"
    elif domain.running:
        why = "its qemu process was not found in /proc (pid file unreadable?)"
    else:
        why = "not running"
    control_line = Text.assemble(("Control     ", ""), (control, "italic")) if control else Text("")
    return Group(domain_line(domain), Text(why, style="dim"), control_line)


def details_renderable(row: GuestRow | None, snapshot: Snapshot, control: str = "", insight: str = "") -> Group | Text:
    if row is None:
        if snapshot.mode == "remote":
            return Text("No domains on this host (or libvirt did not answer: see the header).", style="dim")
        if snapshot.scope == "qemu":
            return Text("No qemu guests on this host. Press w to list every process using KSM.", style="dim")
        return Text("No process is using KSM.", style="dim")
    guest = row.guest
    if guest is None:
        assert row.domain is not None
        return _domain_only(row.domain, snapshot, control)
    page = snapshot.host.page_size
    table = Table.grid(padding=(0, 2))
    for _ in range(4):
        table.add_column()
    merged = guest.ksm_merging_pages
    unknown_why = "" if snapshot.is_root else " (root only)"
    pss = human_bytes(guest.pss_bytes) if guest.pss_bytes is not None else f"pending{unknown_why}"
    if guest.pss_age_s is not None:
        pss += f" ({guest.pss_age_s:.0f} s old)"
    table.add_row(
        Text(f"{guest.name}", style="bold"),
        f"PID {guest.pid} ({guest.kind})",
        "CPU",
        percent(guest.cpu_percent),
    )
    table.add_row("RSS", human_bytes(guest.rss_bytes), "PSS", pss)
    table.add_row("Anon", human_bytes(guest.anon_bytes), "File+shmem", human_bytes(guest.shared_bytes))
    merged_text = "unknown" + unknown_why if merged is None else f"{human_count(merged)} pages"
    table.add_row(
        "Merged",
        f"{merged_text} = {human_bytes(guest.merged_bytes(page))}",
        "of RSS",
        percent(guest.merged_percent(page)),
    )
    table.add_row(
        "Zero pages",
        human_count(guest.ksm_zero_pages),
        "Profit",
        human_bytes(guest.ksm_process_profit_bytes),
    )
    table.add_row("Mergeable", _yes_no(guest.ksm_mergeable), "Merge any", _yes_no(guest.ksm_merge_any))
    table.add_row(
        "Faults",
        f"{human_count(guest.minor_faults)} minor, {human_count(guest.major_faults)} major",
        "Rate",
        f"{human_count(guest.faults_per_s)} /s"
        + ("" if guest.perf_faults_per_s is None else f" (perf {human_count(guest.perf_faults_per_s)} /s)"),
    )
    control_line = Text.assemble(("Control     ", ""), (control, "italic")) if control else Text("")
    parts = [table] + ([domain_line(row.domain)] if row.domain is not None else [])
    return Group(*parts, control_line, Text(insight))


class GuestDetails(Static):
    DEFAULT_CSS = """
    GuestDetails { height: 12; padding: 0 1; border-top: solid $primary; }
    """

    def show(self, row: GuestRow | None, snapshot: Snapshot, control: str = "", insight: str = "") -> None:
        self.update(details_renderable(row, snapshot, control, insight))
