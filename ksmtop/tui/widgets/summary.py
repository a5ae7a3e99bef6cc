"""The header: host memory and what KSM is doing, in one glance."""

from __future__ import annotations

import re

from rich.control import strip_control_codes
from rich.text import Span, Text

from ksmtop.convergence import Convergence
from ksmtop.diagnose import SIDE_CHANNEL_WARNING
from ksmtop.format import human_bytes, human_count, human_rate, human_seconds, percent
from ksmtop.history import History
from ksmtop.knobs import advisor_running
from ksmtop.model import Snapshot
from ksmtop.rates import debt_exceeds_available
from ksmtop.tui.widgets.lines import LinesView

CONVERGENCE_WINDOW = 600  # samples (ten minutes at 1 s): enough to see several full scans
RUN_STATES = {0: ("stopped", "yellow"), 1: ("running", "green"), 2: ("unmerging", "magenta")}


NOT_RUNNING = ("No such file or directory", "Connection refused")
"""What a missing libvirtd says through its socket."""
STATUS_WORDS = 120
"""The mode line keeps libvirt's status to this many characters; the whole text is in the help screen (?)."""


def libvirt_words(status: str) -> tuple[str, bool]:
    """libvirt's state in a few words for the mode line, and whether it is in trouble. The watcher's full text
    (socket paths, errors) stays in the help screen (?)."""
    status = re.sub(r"\?[^\s:]*(?=: )", "", status, count=1)  # the URI's parameters (keyfile=, no_tty=) stay in ?
    if ": connected," in status and "no answer" not in status:
        words, trouble = status, False
    elif "cannot connect" in status:
        uri = status.split("cannot connect to ", 1)[-1].split(": ", 1)[0] if "cannot connect to " in status else ""
        uri = uri.split("?", 1)[0]
        state = "not running" if any(sign in status for sign in NOT_RUNNING) else "cannot connect"
        words, trouble = f"libvirt: {state}" + (f" ({uri})" if uri else "") + ", retrying; ? for details", True
    else:
        words, trouble = status, True
    if len(words) > STATUS_WORDS:
        words = words[: STATUS_WORDS - 1] + "…"
    return words, trouble


class Line:
    """One line of the header, built from parts and made into a Text once (Text.append costs a few µs a part,
    and the header has forty parts, built every sample). As with Text: ``Line(text, style)`` styles the whole
    line, also what is appended later; ``append(text, style)`` styles only that part."""

    __slots__ = ("base", "length", "parts", "spans")

    def __init__(self, text: str = "", style: str = "") -> None:
        self.base = style
        self.parts: list[str] = []
        self.spans: list[Span] = []
        self.length = 0
        self.append(text)

    def append(self, text: str | Line, style: str = "") -> Line:
        start = self.length
        if isinstance(text, Line):
            if text.base:
                self.spans.append(Span(start, start + text.length, text.base))
            self.spans.extend(Span(begin + start, end + start, part) for begin, end, part in text.spans)
            self.parts.extend(text.parts)
            self.length += text.length
            return self
        text = strip_control_codes(text)  # as Text.append does: no terminal control from any figure or name
        if style:
            self.spans.append(Span(start, start + len(text), style))
        self.parts.append(text)
        self.length += len(text)
        return self

    def text(self) -> Text:
        spans = [Span(0, self.length, self.base), *self.spans] if self.base else self.spans
        return Text("".join(self.parts), spans=spans)


def mode_text(snapshot: Snapshot) -> Line:
    """Where the figures come from: this host's /proc and /sys, libvirt, or a remote host through libvirt only."""
    status = snapshot.libvirt_status
    if snapshot.mode == "remote":
        line = Line("remote, through libvirt only", "bold magenta")
        if status:
            words, trouble = libvirt_words(status)
            line.append(f"   {words}", "yellow" if trouble else "dim")
        return line
    if not status:
        return Line("local /proc and /sys, no libvirt", "bold")
    words, trouble = libvirt_words(status)
    if trouble:
        return Line().append("local /proc and /sys; ", "bold").append(words, "yellow")
    return Line().append("local /proc and /sys + libvirt", "bold").append(f"   {words}", "dim")


def summary_text(snapshot: Snapshot, source: str, history: History | None = None) -> list[Text]:
    """The header's lines: host memory, where the figures come from, KSM, ksmd, the advisor when it runs,
    convergence, the side-channel warning."""
    host, ksm, rates = snapshot.host, snapshot.ksm, snapshot.rates
    lines: list[Line] = []
    line = Line().append("Host ", "bold")
    line.append(f"{human_bytes(host.mem_total_bytes)} total, {human_bytes(host.mem_available_bytes)} available, ")
    line.append(f"anon {human_bytes(host.anon_bytes)}   ")
    guests = snapshot.guests
    label = "guests" if snapshot.scope == "qemu" else "KSM processes"
    line.append(f"{len(guests)} {label}, ")
    if snapshot.domains:
        running = sum(1 for domain in snapshot.domains if domain.running)
        line.append(f"{len(snapshot.domains)} domains ({running} running), ")
    line.append(f"RSS {human_bytes(snapshot.total_guest_rss_bytes)}   ")
    line.append(f"[{source}]", "dim")
    lines.append(line)
    lines.append(Line().append("Mode ", "bold").append(mode_text(snapshot)))
    line = Line().append("KSM ", "bold")
    lines.append(line)
    if not ksm.available:
        line.append("not available", "red")
        line.append(f": {ksm.error}")
        return [line.text() for line in lines]
    run = ksm.get("run")
    state, style = RUN_STATES.get(run if run is not None else -1, ("unknown", "red"))
    if run is None and snapshot.mode == "remote":
        state, style = "run state not available remotely", "yellow"
    line.append(state, f"bold {style}")
    line.append("   saving ")
    line.append(human_bytes(rates.saving_bytes), "bold cyan")
    profit = ksm.get("general_profit")
    if profit is not None:
        line.append(f" (profit {human_bytes(profit)})")
    ratio = "–" if rates.sharing_ratio is None else f"{rates.sharing_ratio:.1f}x"
    line.append(f"   ratio {ratio}")
    line.append(f"   full scans {human_count(ksm.get('full_scans'))}")
    if rates.full_scans_delta:
        line.append(f" (+{rates.full_scans_delta})", "green")
    line.append("   ")
    line.append(debt_text(snapshot))
    line = Line().append("ksmd ", "bold")
    lines.append(line)
    line.append(f"{percent(host.ksmd_cpu_percent)} CPU")
    line.append(f"   scan {human_rate(rates.scan_rate_pages_per_s, 'pages')} set")
    line.append(f", {human_rate(rates.measured_scan_pages_per_s, 'pages')} measured")
    if rates.measured_full_scan_seconds is not None:
        line.append(f"   full scan {human_seconds(rates.measured_full_scan_seconds)} measured")
    else:
        line.append(f"   full scan ≈ {human_seconds(rates.full_scan_seconds)}")
    if rates.merges_per_s is not None:
        line.append(f"   merges {human_rate(rates.merges_per_s, 'pages')}")
        line.append(f", unmerges {human_rate(rates.unmerges_per_s, 'pages')}")
    line.append(f"   sharing {human_rate(rates.pages_sharing_per_s, 'pages')}")
    line.append(f"   COW breaks {human_rate(host.cow_ksm_per_s, 'pages')}")
    if host.trace_status:
        line.append(f"   ({host.trace_status})", "dim")
    if advisor_running(ksm):
        lines.append(advisor_text(snapshot))
    latest = history.latest if history is not None else None
    if history is not None and latest is not None and snapshot.mode != "remote":  # remote: the run state is unknown
        lines.append(merging_text(history.scans.convergence(latest, CONVERGENCE_WINDOW), host.page_size))
    merging_guests = sum(1 for guest in snapshot.guests if (guest.ksm_merging_pages or 0) > 0)
    if merging_guests > 1:
        lines.append(Line().append("⚠ ", "bold yellow").append(SIDE_CHANNEL_WARNING, "yellow"))
    return [line.text() for line in lines]


def debt_text(snapshot: Snapshot) -> Line:
    """'debt X of Y available': what unmerging every merged page would need back, beside MemAvailable; in the
    warning style when it is more than there is (run=2 then risks the OOM killer)."""
    debt = snapshot.rates.unmerge_debt_bytes
    if debt is None:
        return Line("unmerge debt –", "dim")
    words = f"unmerge debt {human_bytes(debt)} of {human_bytes(snapshot.host.mem_available_bytes)} available"
    if debt_exceeds_available(snapshot):
        return Line(f"⚠ {words}: unmerging all would exhaust memory", "bold red")
    return Line(words)


def advisor_text(snapshot: Snapshot) -> Line:
    """The scan-time advisor at work: the pages_to_scan it chose, the full-scan time against its target, ksmd's
    CPU against its ceiling, and its last adjustment as the ksm:ksm_advisor tracepoint gave it."""
    ksm, rates, host = snapshot.ksm, snapshot.rates, snapshot.host
    text = Line("Advisor ", "bold")
    text.append(f"{ksm.values.get('advisor_mode')}", "bold green")
    text.append(f": pages_to_scan {_exact(ksm.get('pages_to_scan'))} chosen")
    low, high = ksm.get("advisor_min_pages_to_scan"), ksm.get("advisor_max_pages_to_scan")
    if low is not None and high is not None:
        text.append(f" (between {low} and {high})")
    scan = rates.measured_full_scan_seconds
    how = "measured"
    if scan is None:
        scan, how = rates.full_scan_seconds, "estimated"
    text.append(f"   full scan {human_seconds(scan)} {how}, target {_exact(ksm.get('advisor_target_scan_time'))} s")
    text.append(f"   ksmd {percent(host.ksmd_cpu_percent)} CPU, max {ksm.get('advisor_max_cpu')}%")
    if rates.advisor_pages_to_scan is not None:
        text.append(
            f"   last adjustment (ksm:ksm_advisor): scan {rates.advisor_scan_seconds} s, "
            f"pages_to_scan {rates.advisor_pages_to_scan}, {rates.advisor_cpu_percent}% CPU",
            "cyan",
        )
    elif host.trace_status:
        text.append("   ksm:ksm_advisor not read: see the ksmd line", "dim")
    else:
        text.append("   no adjustment seen yet (it adjusts after each full scan)", "dim")
    return text


def _exact(value: int | None) -> str:
    return "–" if value is None else str(value)


def merging_text(state: Convergence, page_size: int) -> Line:
    """The convergence line: where merging stands, how far ksmd has scanned, when the saving levels off."""
    text = Line("Merging ", "bold")
    text.append(state.state, "green" if state.converged else "yellow")
    if state.scanned_fraction is not None:
        text.append(f"   scanned {100 * state.scanned_fraction:.0f}% of mergeable memory")
    if state.eta_s:
        text.append(f"   levels off in ≈ {human_seconds(state.eta_s)}")
    if state.projected_sharing:
        text.append(f"   projected saving {human_bytes(state.projected_sharing * page_size)}")
    return text


class Summary(LinesView):
    """Host memory, where the figures come from, KSM state and saving, ksmd's price, convergence."""

    DEFAULT_CSS = """
    Summary { height: auto; max-height: 10; padding: 0 1; background: $boost; }
    """
