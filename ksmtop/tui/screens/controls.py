"""Dialogs of the guest controls: start a lab guest, choose a workload, confirm a forced stop."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, OptionList
from textual.widgets.option_list import Option

from ksmtop.guest_actions import WORKLOADS

MIN_GUEST_MIB = 64
MAX_GUEST_MIB = 65536

DIALOG_CSS = """
{name} {{ align: center middle; }}
{name} > Vertical {{ width: 70; height: auto; border: thick $primary; background: $surface; padding: 1 2; }}
{name} .error {{ color: $error; }}
{name} Horizontal {{ height: auto; }}
"""


class _Dialog(ModalScreen):
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def action_cancel(self) -> None:
        self.dismiss(None)

    def fail(self, message: str) -> None:
        self.query_one("#error", Label).update(Text(message))


@dataclass(frozen=True, slots=True)
class StartRequest:
    name: str | None
    memory_mib: int


def parse_memory_mib(text: str) -> int:
    value = text.strip().upper().removesuffix("M").removesuffix("MIB")
    if not value.isascii() or not value.isdigit():
        raise ValueError(f"memory is a whole number of MiB, not {text.strip()!r}")
    mib = int(value)
    if not MIN_GUEST_MIB <= mib <= MAX_GUEST_MIB:
        raise ValueError(f"memory must be between {MIN_GUEST_MIB} and {MAX_GUEST_MIB} MiB")
    return mib


class StartGuestScreen(_Dialog):
    DEFAULT_CSS = DIALOG_CSS.format(name="StartGuestScreen")

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Start a lab guest (a small Linux with qemu-guest-agent)")
            yield Label("Memory (MiB):")
            yield Input(value="256", id="memory")
            yield Label("Name (empty: the next free lab-N):")
            yield Input(placeholder="lab-N", id="name")
            yield Label("", id="error", classes="error")
            yield Label("Enter starts, Esc cancels", classes="hint")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        try:
            memory = parse_memory_mib(self.query_one("#memory", Input).value)
        except ValueError as exc:
            self.fail(str(exc))
            return
        name = self.query_one("#name", Input).value.strip() or None
        self.dismiss(StartRequest(name, memory))


@dataclass(frozen=True, slots=True)
class WorkloadRequest:
    workload: str
    argument: int | None


class WorkloadScreen(_Dialog):
    DEFAULT_CSS = DIALOG_CSS.format(name="WorkloadScreen") + "WorkloadScreen OptionList { height: auto; }"

    def __init__(self, guest_name: str) -> None:
        super().__init__()
        self.guest_name = guest_name

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(Text(f"Workload for {self.guest_name} (runs through qemu-guest-agent)"))
            yield OptionList(
                *[Option(f"{w.name:12} {w.description}", id=w.name) for w in WORKLOADS.values()], id="workloads"
            )
            yield Label("", id="argument-label")
            yield Input(id="argument")
            yield Label("", id="error", classes="error")
            yield Label("Enter on a workload, then Enter in the size field; Esc cancels", classes="hint")

    def on_mount(self) -> None:
        self._show_argument(next(iter(WORKLOADS)))

    def _show_argument(self, name: str) -> None:
        workload = WORKLOADS[name]
        field = self.query_one("#argument", Input)
        label = self.query_one("#argument-label", Label)
        if workload.argument:
            label.update(f"{workload.argument}:")
            field.value = "" if workload.default is None else str(workload.default)
            field.display = True
        else:
            label.update("(takes no argument)")
            field.value = ""
            field.display = False

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        if event.option.id:
            self._show_argument(event.option.id)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        name = event.option.id or ""
        if WORKLOADS[name].argument:
            self.query_one("#argument", Input).focus()
        else:
            self.dismiss(WorkloadRequest(name, None))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        options = self.query_one("#workloads", OptionList)
        index = options.highlighted or 0
        name = options.get_option_at_index(index).id or ""
        text = event.value.strip()
        if not text.isascii() or not text.isdigit() or int(text) < 1:
            self.fail(f"{WORKLOADS[name].argument} is a whole number above 0, not {text!r}")
            return
        self.dismiss(WorkloadRequest(name, int(text)))


class ConfirmScreen(_Dialog):
    DEFAULT_CSS = DIALOG_CSS.format(name="ConfirmScreen")
    BINDINGS = [Binding("escape,n", "cancel", "No"), Binding("y", "confirm", "Yes")]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(Text(self.question))
            with Horizontal():
                yield Button("Yes (y)", variant="error", id="yes")
                yield Button("No (n)", variant="primary", id="no")
            yield Label("", id="error", classes="error")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_confirm(self) -> None:
        self.dismiss(True)

    def action_cancel(self) -> None:
        self.dismiss(False)
