"""The selected guest in full: memory split, PSS, KSM figures, unmerge debt, huge pages and faults."""

from __future__ import annotations

from rich.text import Text

from ksmtop.format import human_bytes, human_count, percent
from ksmtop.model import DomainSample, Snapshot
from ksmtop.rows import GuestRow
from ksmtop.tui.widgets.lines import LinesView


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


def _domain_only(domain: DomainSample, snapshot: Snapshot, control: str) -> list[Text]:
    if snapshot.mode == "remote":
        why = "per-process figures (KSM merged pages, PSS, /proc faults) are not available remotely"
    elif domain.running:
        why = "its qemu process was not found in /proc (pid file unreadable?)"
    else:
        why = "not running"
    return [*domain_line(domain).split("\n"), Text(why, style="dim"), *_control_line(control)]


def _control_line(control: str) -> list[Text]:
    return [Text.assemble(("Control     ", ""), (control, "italic"))] if control else []


def _debt(debt: int | None, merged: int | None, unknown_why: str) -> str:
    """The guest's unmerge debt; a recording from before the figure existed has merged pages but no debt."""
    if debt is not None:
        return f"{human_bytes(debt)} if unmerged"
    return "unknown" + unknown_why if merged is None else "– (not recorded)"


def _rollup(value: int | None, unknown_why: str) -> str:
    """A figure from smaps_rollup, read with PSS (pending until the first read)."""
    return human_bytes(value) if value is not None else f"pending{unknown_why}"


def _grid(cells: tuple[str, str, str, str]) -> Text:
    """Two label/value pairs in fixed columns (a Rich Table costs more to lay out, every second)."""
    label, value, label2, value2 = cells
    return Text(f"{label:<12}{value:<{VALUE_WIDTH}}{label2:<12}{value2}")


VALUE_WIDTH = 26


def details_lines(row: GuestRow | None, snapshot: Snapshot, control: str = "", insight: str = "") -> list[Text]:
    """The selected guest in full, one Text per line (names are data: Text, never markup)."""
    if row is None:
        if snapshot.mode == "remote":
            return [Text("No domains on this host (or libvirt did not answer: see the header).", style="dim")]
        if snapshot.scope == "qemu":
            return [Text("No qemu guests on this host. Press w to list every process using KSM.", style="dim")]
        return [Text("No process is using KSM.", style="dim")]
    guest = row.guest
    if guest is None:
        assert row.domain is not None
        return _domain_only(row.domain, snapshot, control)
    page = snapshot.host.page_size
    merged = guest.ksm_merging_pages
    unknown_why = "" if snapshot.is_root else " (root only)"
    pss = _rollup(guest.pss_bytes, unknown_why)
    if guest.pss_age_s is not None and guest.pss_age_s >= 10:  # re-read every 5 s while selected
        pss += f" ({guest.pss_age_s // 10 * 10:.0f} s old)"
    title = Text(guest.name, style="bold")
    title.append(f"  PID {guest.pid} ({guest.kind})  CPU {percent(guest.cpu_percent)}", style="")
    rows: list[tuple[str, str, str, str]] = [
        ("RSS", human_bytes(guest.rss_bytes), "PSS", pss),
        ("Anon", human_bytes(guest.anon_bytes), "File+shmem", human_bytes(guest.shared_bytes)),
        (
            "Merged",
            ("unknown" + unknown_why if merged is None else f"{human_count(merged)} pages")
            + f" = {human_bytes(guest.merged_bytes(page))}",
            "of RSS",
            percent(guest.merged_percent(page)),
        ),
        ("Zero pages", human_count(guest.ksm_zero_pages), "Profit", human_bytes(guest.ksm_process_profit_bytes)),
        ("Mergeable", _yes_no(guest.ksm_mergeable), "Merge any", _yes_no(guest.ksm_merge_any)),
        (
            "Debt",
            _debt(guest.unmerge_debt_bytes, merged, unknown_why),
            "Huge pages",
            f"THP {_rollup(guest.anon_huge_bytes, unknown_why)}, hugetlbfs {_rollup(guest.hugetlb_bytes, unknown_why)}",
        ),
        ("Host THP", snapshot.host.thp_enabled or "–", "THP defrag", snapshot.host.thp_defrag or "–"),
        (
            "Faults",
            f"{human_count(guest.minor_faults)} minor, {human_count(guest.major_faults)} major",
            "Rate",
            f"{human_count(guest.faults_per_s)} /s"
            + ("" if guest.perf_faults_per_s is None else f" (perf {human_count(guest.perf_faults_per_s)} /s)"),
        ),
    ]
    lines = [title, *(_grid(cells) for cells in rows)]
    if row.domain is not None:
        lines += domain_line(row.domain).split("\n")
    lines += _control_line(control)
    lines += [Text(line) for line in insight.split("\n") if line]
    return lines


class GuestDetails(LinesView):
    DEFAULT_CSS = """
    GuestDetails { height: 14; padding: 0 1; border-top: solid $primary; }
    """

    def show_guest(self, row: GuestRow | None, snapshot: Snapshot, control: str = "", insight: str = "") -> None:
        """Only the lines that changed are redrawn (its height is fixed: no layout)."""
        self.show(details_lines(row, snapshot, control, insight))
