"""The fleet screen: many hosts through Prometheus, with the keys and look of the host screen.

One row per host (exporter instance): KSM on/off, saving, profit, ratio, ksmd CPU, guests, unmerge debt, the
age of its figures; a host that stopped answering is shown stale, with its last values, never as zeros. Enter
drills into a host's guests with its sparklines; Esc goes back. A replayed fleet recording plays in the same
screen (space, , . [ ] g G). The source (ksmtop/fleet/source.py, or its replay) is asked in a worker, one look
at a time; the widgets redraw only what changed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Footer

from ksmtop.fleet.model import FLEET_FIELDS, FleetGuestRow, FleetSnapshot, HostRow
from ksmtop.format import human_bytes, human_count, human_seconds, percent
from ksmtop.tui.base import REPLAY_BINDINGS, SamplingApp
from ksmtop.tui.series import Series
from ksmtop.tui.widgets.graphs import Graphs
from ksmtop.tui.widgets.line_table import LineTable, TableColumn, TableRow
from ksmtop.tui.widgets.lines import LinesView
from ksmtop.tui.work import SampleLoop

KSM_STATES = {0: "off", 1: "on", 2: "unmerged"}


class FleetSource(Protocol):
    description: str

    def sample(self) -> FleetSnapshot: ...
    def select(self, key: str | None) -> None: ...
    def close(self) -> None: ...


HOST_GRAPHS: tuple[tuple[str, str, str, Callable[[float], str]], ...] = (
    ("saving", "saving_bytes", "KSM saving", human_bytes),
    ("cpu", "ksmd_cpu_percent", "ksmd CPU", percent),
    ("profit", "profit_bytes", "general profit", human_bytes),
)
"""The drilled-in host's graphs: name, the host series' field, title, how its figures are written."""
HOST_GRAPH_TITLES = {name: title for name, _, title, _ in HOST_GRAPHS}


def _label(cls: str, name: str) -> str:
    return FLEET_FIELDS[f"{cls}.{name}"]["label"] or name


HOST_COLUMNS = (
    TableColumn("hostname", _label("HostRow", "hostname")),
    TableColumn("instance", _label("HostRow", "instance")),
    TableColumn("ksm_run", _label("HostRow", "ksm_run")),
    TableColumn("saving_bytes", _label("HostRow", "saving_bytes"), right=True),
    TableColumn("general_profit_bytes", _label("HostRow", "general_profit_bytes"), right=True),
    TableColumn("sharing_ratio", _label("HostRow", "sharing_ratio"), right=True),
    TableColumn("ksmd_cpu_percent", _label("HostRow", "ksmd_cpu_percent"), right=True),
    TableColumn("guests", _label("HostRow", "guests"), right=True),
    TableColumn("unmerge_debt_bytes", _label("HostRow", "unmerge_debt_bytes"), right=True),
    TableColumn("mem_available_bytes", _label("HostRow", "mem_available_bytes"), right=True),
    TableColumn("state", "State"),
)
GUEST_COLUMNS = (
    TableColumn("guest", _label("FleetGuestRow", "guest")),
    TableColumn("pid", _label("FleetGuestRow", "pid"), right=True),
    TableColumn("kind", _label("FleetGuestRow", "kind")),
    TableColumn("rss_bytes", _label("FleetGuestRow", "rss_bytes"), right=True),
    TableColumn("merged_bytes", _label("FleetGuestRow", "merged_bytes"), right=True),
    TableColumn("merged_percent", "%RSS", right=True),
    TableColumn("zero_pages_bytes", _label("FleetGuestRow", "zero_pages_bytes"), right=True),
    TableColumn("profit_bytes", _label("FleetGuestRow", "profit_bytes"), right=True),
    TableColumn("cpu_percent", _label("FleetGuestRow", "cpu_percent"), right=True),
    TableColumn("faults_per_s", _label("FleetGuestRow", "faults_per_s"), right=True),
)


def host_state(host: HostRow) -> str:
    age = f" ({human_seconds(host.age_s)} old)" if host.age_s is not None else ""
    if host.stale:
        return f"STALE{age}" + ("" if host.up else ", not answering")
    return "ok" + age


def host_row(host: HostRow) -> TableRow:
    ratio = "–" if host.sharing_ratio is None else f"{host.sharing_ratio:.1f}x"
    run = "–" if host.ksm_run is None else KSM_STATES.get(host.ksm_run, str(host.ksm_run))
    if host.ksm_available is False:
        run = "no KSM"
    cells = (
        host.hostname or host.instance,
        host.instance,
        run,
        human_bytes(host.saving_bytes),
        human_bytes(host.general_profit_bytes),
        ratio,
        percent(host.ksmd_cpu_percent),
        "–" if host.guests is None else str(host.guests),
        human_bytes(host.unmerge_debt_bytes),
        human_bytes(host.mem_available_bytes),
        host_state(host),
    )
    style = "warning" if host.stale else ("error" if host.debt_exceeds_available else "")
    return TableRow(host.key, cells, style)


def guest_row(guest: FleetGuestRow) -> TableRow:
    cells = (
        guest.guest,
        "–" if guest.pid is None else str(guest.pid),
        guest.kind,
        human_bytes(guest.rss_bytes),
        human_bytes(guest.merged_bytes),
        percent(guest.merged_percent),
        human_bytes(guest.zero_pages_bytes),
        human_bytes(guest.profit_bytes),
        percent(guest.cpu_percent),
        human_count(guest.faults_per_s),
    )
    return TableRow(guest.guest, cells)


def header_lines(snapshot: FleetSnapshot, description: str) -> list[Text]:
    hosts = snapshot.hosts
    stale = sum(1 for host in hosts if host.stale)
    on = sum(1 for host in hosts if host.ksm_on)
    saving = sum(host.saving_bytes or 0 for host in hosts if not host.stale)
    debt_short = [host.hostname or host.instance for host in hosts if host.debt_exceeds_available]
    first = Text.assemble(
        ("Fleet ", "bold"),
        f"{len(hosts)} hosts, KSM on in {on}, ",
        (f"{stale} stale" if stale else "none stale", "bold yellow" if stale else "green"),
        f"   saving {human_bytes(saving)} (answering hosts)   ",
        (f"[{description}]", "dim"),
    )
    lines = [first]
    if debt_short:
        lines.append(Text(f"⚠ unmerge debt larger than available memory on: {', '.join(debt_short)}", "bold red"))
    if snapshot.error:
        lines.append(Text(f"Prometheus: {snapshot.error} (showing the last answer)", "yellow"))
    return lines


class FleetApp(SamplingApp):
    TITLE = "ksmtop fleet"
    CSS = """
    #fleet-header { height: auto; padding: 0 1; background: $boost; }
    #hosts { height: 1fr; }
    #guests { height: 1fr; display: none; }
    #host-graphs { height: 10; width: 1fr; display: none; border-top: solid $primary; padding: 0 1; }
    #fleet-status { height: 1; background: $boost; color: $text-muted; padding: 0 1; }
    """
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("space", "pause", "Pause"),
        Binding("d", "interval", "Interval"),
        Binding("escape", "back", "Hosts"),
        *REPLAY_BINDINGS,
    ]

    def __init__(self, source: FleetSource, interval: float = 5.0, *, paused: bool = False) -> None:
        super().__init__()
        self.source = source
        self.interval = interval
        self.clock: Any = source if hasattr(source, "seek") else None  # a replay is its own clock
        self.snapshot: FleetSnapshot | None = None
        self.selected_host: str | None = None
        self.drilled: str | None = None
        self.last_took_s = 0.0
        self.error = ""
        self.loop = SampleLoop(self, self)
        self.loop.paused = paused

    def compose(self) -> ComposeResult:
        yield LinesView(id="fleet-header")
        with Vertical():
            yield LineTable(HOST_COLUMNS, id="hosts")
            yield LineTable(GUEST_COLUMNS, id="guests")
            yield Graphs(HOST_GRAPH_TITLES, id="host-graphs")
        yield LinesView(id="fleet-status", wrap=False)
        yield Footer()

    def on_mount(self) -> None:
        self.header = self.query_one("#fleet-header", LinesView)
        self.hosts = self.query_one("#hosts", LineTable)
        self.guests = self.query_one("#guests", LineTable)
        self.graphs = self.query_one("#host-graphs", Graphs)
        self.status = self.query_one("#fleet-status", LinesView)
        self.hosts.focus()
        self.loop.request()

    # --- the loop's host ----------------------------------------------------------------------------------
    def sample_job(self, advance: bool) -> Callable[[], object]:
        if self.clock is not None and not advance:
            self.clock.hold()
        return self.source.sample

    def next_interval(self) -> float:
        return self.clock.frame_interval(self.interval) if self.clock is not None else self.interval

    def sample_failed(self, error: str) -> None:
        self.error = error
        self.show_status()

    def sample_landed(self, result: object, took_s: float) -> None:
        assert isinstance(result, FleetSnapshot)
        self.snapshot, self.last_took_s, self.error = result, took_s, ""
        if self.clock is not None and self.clock.at_end and not self.paused:
            self.loop.pause(True)
            self.notify("end of the recording (g: back to the start)")
        self._draw()

    # --- drawing ------------------------------------------------------------------------------------------
    def _draw(self) -> None:
        snapshot = self.snapshot
        if snapshot is None:
            return
        self.header.show(header_lines(snapshot, self.source.description))
        self.hosts.set_rows([host_row(host) for host in snapshot.hosts], cursor_key=self.selected_host)
        if self.selected_host is None and snapshot.hosts:
            self._select(snapshot.hosts[0].key)
        if self.drilled is not None:
            self._draw_host(self.drilled)
        self.show_status()

    def _draw_host(self, key: str) -> None:
        snapshot = self.snapshot
        if snapshot is None:
            return
        self.guests.set_rows([guest_row(guest) for guest in snapshot.guests_of(key)])
        series = snapshot.host_series.get(key, {})
        host = snapshot.host(key)
        name = (host.hostname or host.instance) if host is not None else key
        graphs: dict[str, tuple[str, Series | None]] = {}
        for graph, field, what, show in HOST_GRAPHS:
            line = series.get(field)
            known = [value for value in (line.values if line is not None else ()) if value is not None]
            title = f"{name}: {what}"
            label = title + (f": {show(known[-1])}  max {show(max(known))}  (bars from 0)" if known else ": –")
            graphs[graph] = (label, Series.of(line.filled()) if line is not None else None)
        self.graphs.plot(graphs)

    def show_status(self) -> None:
        parts: list[str] = []
        clock = self.clock
        if clock is not None:
            state = "paused" if self.paused else "playing"
            parts += [f"REPLAY x{clock.speed} {state}", clock.position_text()]
        else:
            parts.append("PAUSED (space resumes)" if self.paused else f"asking Prometheus every {self.interval:g} s")
            parts.append(f"last look {self.last_took_s * 1000:.0f} ms")
        parts.append("Enter: a host's guests, Esc: back" if self.drilled is None else f"guests of {self.drilled}")
        if self.error:
            parts.append(self.error)
        self.status.show([Text("  |  ".join(parts))])

    # --- what the user does -------------------------------------------------------------------------------
    def _select(self, key: str | None) -> None:
        self.selected_host = key
        self.source.select(key)

    def on_line_table_cursor_moved(self, message: LineTable.CursorMoved) -> None:
        if message.table is self.hosts:
            self._select(message.key)

    def on_line_table_activated(self, message: LineTable.Activated) -> None:
        if message.table is not self.hosts:
            return
        self._select(message.key)
        self.drilled = message.key
        self.hosts.display = False
        self.guests.display = True
        self.graphs.display = True
        self.guests.focus()
        self._draw_host(message.key)
        self.show_status()
        if not self.paused:
            self.loop.request()  # the guest sparklines of the selected host come with the next look

    def action_back(self) -> None:
        if self.drilled is None:
            return
        self.drilled = None
        self.guests.display = False
        self.graphs.display = False
        self.hosts.display = True
        self.hosts.focus()
        self.show_status()

    def action_pause(self) -> None:
        self.loop.pause(not self.paused)
        self.show_status()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "interval":
            return self.clock is None
        return super().check_action(action, parameters)

    def on_unmount(self) -> None:
        self.loop.stop(close=self.source.close)  # after the sample in progress, never beside it
