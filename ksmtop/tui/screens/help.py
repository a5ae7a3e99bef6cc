"""Help: the keys, and what every column and counter means (from the model's field table)."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from ksmtop.knobs import COUNTERS
from ksmtop.tui.columns import COLUMNS

KEYS = (
    ("?", "this help"),
    ("q", "quit"),
    ("space", "pause / resume sampling"),
    ("d", "change the refresh interval (like top's d)"),
    ("w", "widen: qemu guests only ↔ every process using KSM"),
    ("/", "filter guests by name (Esc clears)"),
    ("< >", "sort by the previous / next column"),
    ("I", "invert the sort order"),
    ("M P K F N", "sort by RSS, CPU, merged pages, faults/s, name (again: invert)"),
    ("click header", "sort by that column"),
    ("f", "choose the guest table's columns (like top's f)"),
    ("W", "save the setup (interval, sort, scope, columns, libvirt URI) to the config file, like top's W"),
    ("tab", "move between the guest table and the tunables"),
    ("enter", "on a tunable: edit it; enter again writes it; esc cancels"),
    ("m", "sharing matrix: pages every pair of guests shares (pagemap + kpageflags; r recomputes, e exact)"),
    ("s", "on a shut-off libvirt domain: start it; elsewhere: start a lab guest (memory and name asked)"),
    ("k", "stop the selected guest: libvirt shutdown (agent, else ACPI) or agent shutdown; forced after a confirm"),
    ("x", "force the selected guest off now (libvirt destroy, or qemu quit), after a confirm"),
    ("l", "run a workload in the selected guest through qemu-guest-agent (libvirt's agent channel for domains)"),
    ("R", "start / stop recording this session (file, size and samples on the status line)"),
    ("a", "add a note to the timeline (and to the recording)"),
    ("replay", "space play/pause, , . step, [ ] speed x1 x2 x10 x100, g G start/end, n next event"),
    ("ctrl+p", "command palette"),
)


def help_table(connection: str | None = None) -> Table:
    table = Table(title="ksmtop keys", show_header=False, expand=True, box=None, padding=(0, 2))
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column()
    for key, meaning in KEYS:
        table.add_row(key, meaning)
    table.add_row("", "")
    table.add_row("[bold]Column[/]", "[bold]Meaning[/]")
    for column in COLUMNS:
        table.add_row(column.label, column.description)
    table.add_row("", "")
    table.add_row("[bold]Counter[/]", "[bold]Meaning[/]")
    for name, meaning in COUNTERS.items():
        table.add_row(name, meaning)
    if connection:
        table.add_row("", "")
        table.add_row("[bold]libvirt[/]", Text(connection))  # the watcher's words in full: data, not markup
    return table


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close")]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen VerticalScroll { width: 90%; height: 90%; border: thick $primary; background: $surface; }
    """

    def __init__(self, connection: str | None = None) -> None:
        super().__init__()
        self.connection = connection

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(help_table(self.connection))

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(None)
