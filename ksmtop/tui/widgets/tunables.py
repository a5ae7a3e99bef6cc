"""The KSM tunables, edited in place (Enter edits, Esc cancels), with the kernel's answer beside each,
and the read-only counters with what they mean."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import DataTable, Input, Label, Static

from ksmtop.collect.ksm import COUNTERS, KNOBS, TunableError, WriteResult, validate
from ksmtop.convergence import TradePoint
from ksmtop.format import human_bytes, human_count, human_rate, human_seconds, percent
from ksmtop.model import KsmState

TRADE_ROWS = 5


class KnobTable(DataTable):
    BINDINGS = [Binding("enter", "edit", "Edit knob")]

    class EditRequested(Message):
        def __init__(self, name: str) -> None:
            super().__init__()
            self.name = name

    def action_edit(self) -> None:
        if self.row_count and self.cursor_row >= 0:
            key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
            if key:
                self.post_message(self.EditRequested(key))


class KnobInput(Input):
    BINDINGS = [Binding("escape", "cancel", "Cancel edit")]

    class Cancelled(Message):
        pass

    def action_cancel(self) -> None:
        self.post_message(self.Cancelled())


class TunablesPanel(Vertical):
    """Writable knobs present on this kernel; their values are re-read from the kernel every sample."""

    DEFAULT_CSS = """
    TunablesPanel { height: 1fr; }
    TunablesPanel KnobTable { height: auto; max-height: 15; }
    TunablesPanel #counters { height: auto; overflow-x: hidden; }
    TunablesPanel #trade { height: 1fr; min-height: 3; }
    TunablesPanel KnobInput { display: none; }
    TunablesPanel KnobInput.editing { display: block; }
    TunablesPanel #knob-help { height: auto; color: $text-muted; padding: 0 1; }
    TunablesPanel #knob-answer { height: auto; padding: 0 1; }
    TunablesPanel .title { text-style: bold; padding: 0 1; background: $boost; width: 1fr; }
    """

    class WriteRequested(Message):
        def __init__(self, name: str, value: str) -> None:
            super().__init__()
            self.name = name
            self.value = value

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.answers: dict[str, WriteResult] = {}
        self.editing: str | None = None
        self.read_only_reason = ""
        self.unavailable: dict[str, str] = {}  # knob -> why it cannot be read or written here (remote hosts)
        self._state: KsmState | None = None
        self._knobs: list[str] = []

    def compose(self) -> ComposeResult:
        yield Label("KSM tunables  (Enter edits, Esc cancels)", classes="title", id="knobs-title")
        yield KnobTable(cursor_type="row", id="knobs")
        yield KnobInput(id="knob-input")
        yield Static("", id="knob-answer")
        yield Static("", id="knob-help")
        yield Label("KSM counters", classes="title")
        yield DataTable(cursor_type="none", id="counters", show_header=False)
        yield Label("ksmd's price per setting (pages_to_scan / sleep_millisecs)", classes="title")
        yield DataTable(cursor_type="none", id="trade")

    def on_mount(self) -> None:
        knobs = self.query_one("#knobs", KnobTable)
        knobs.add_column("Knob", key="knob")
        knobs.add_column("Value", key="value")
        knobs.add_column("Kernel's answer", key="answer")
        counters = self.query_one("#counters", DataTable)
        counters.add_column("Counter", key="counter")
        counters.add_column("Value", key="value", width=10)
        counters.add_column("Meaning", key="meaning")
        trade = self.query_one("#trade", DataTable)
        for label in ("pages", "sleep ms", "ksmd CPU", "scanned/s", "full scan", "held for"):
            trade.add_column(label)

    def set_read_only(self, reason: str) -> None:
        self.read_only_reason = reason
        knobs = self.query_one("#knobs", KnobTable)
        knobs.disabled = bool(reason)
        title = self.query_one("#knobs-title", Label)
        title.update(f"KSM tunables  (read-only: {reason})" if reason else "KSM tunables  (Enter edits, Esc cancels)")

    def show(self, state: KsmState) -> None:
        self._state = state
        knobs = self.query_one("#knobs", KnobTable)
        counters = self.query_one("#counters", DataTable)
        if not state.available:
            knobs.clear()
            counters.clear()
            self.query_one("#knob-help", Static).update(Text(state.error or "KSM not available", style="red"))
            return
        names = [name for name in KNOBS if name in state.values or name in self.unavailable]
        if names != self._knobs:
            knobs.clear()
            for name in names:
                knobs.add_row(name, "", "", key=name)
            self._knobs = names
        for name in names:
            if name in self.unavailable and name not in state.values:
                knobs.update_cell(name, "value", Text("–", justify="right"))
                knobs.update_cell(name, "answer", Text("not available remotely", style="dim"))
                continue
            value = state.values[name]
            shown = "editing…" if name == self.editing else str(value)
            knobs.update_cell(name, "value", Text(shown, justify="right"))
            knobs.update_cell(name, "answer", self._answer_text(name))
        counters.clear()
        for name, meaning in COUNTERS.items():
            if name in state.values:
                shown = human_bytes(state.get(name)) if name == "general_profit" else human_count(state.get(name))
                counters.add_row(name, Text(shown, justify="right"), Text(meaning, style="dim"))
        self._show_help()

    def show_trade(self, points: list[TradePoint]) -> None:
        """One row per pages_to_scan/sleep_millisecs setting seen while KSM ran, newest first."""
        table = self.query_one("#trade", DataTable)
        table.clear()
        for point in reversed(points[-TRADE_ROWS:]):
            table.add_row(
                str(point.pages_to_scan),
                str(point.sleep_millisecs),
                percent(point.ksmd_cpu_percent),
                human_rate(point.scanned_pages_per_s, "pages"),
                human_seconds(point.full_scan_seconds),
                human_seconds(point.seconds),
            )

    def _answer_text(self, name: str) -> Text:
        result = self.answers.get(name)
        if result is None:
            return Text("")
        if not result.ok:
            return Text("refused", style="bold red")
        if result.warning:
            return Text("accepted, warning", style="yellow")
        return Text("accepted", style="green")

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == "knobs":
            event.stop()
            self._show_help()

    def _current_knob(self) -> str | None:
        knobs = self.query_one("#knobs", KnobTable)
        if not knobs.row_count:
            return None
        return knobs.coordinate_to_cell_key(knobs.cursor_coordinate).row_key.value

    def _show_help(self) -> None:
        name = self.editing or self._current_knob()
        help_text = self.query_one("#knob-help", Static)
        answer = self.query_one("#knob-answer", Static)
        if name is None:
            help_text.update("")
            answer.update("")
            return
        knob = KNOBS[name]
        if knob.is_choice:
            allowed = " or ".join(knob.choices)
        else:
            allowed = f"{knob.minimum}–{knob.maximum}" + (f" {knob.unit}" if knob.unit else "")
        why = f" {self.unavailable[name]}." if name in self.unavailable else ""
        help_text.update(f"{name}: {knob.description}. Accepts {allowed}.{why}")
        result = self.answers.get(name)
        if result is None:
            answer.update("")
        elif not result.ok:
            answer.update(Text(f"✗ {result.message}", style="bold red"))
        elif result.warning:
            answer.update(Text(f"✓ {result.message}\n⚠ {result.warning}", style="yellow"))
        else:
            answer.update(Text(f"✓ {result.message}", style="green"))

    def on_knob_table_edit_requested(self, event: KnobTable.EditRequested) -> None:
        event.stop()
        if self.read_only_reason or self._state is None:
            self.app.notify(f"Tunables are read-only: {self.read_only_reason}", severity="warning")
            return
        if event.name in self.unavailable:
            self.app.notify(f"{event.name}: {self.unavailable[event.name]}", severity="warning")
            return
        self.editing = event.name
        field = self.query_one("#knob-input", KnobInput)
        field.value = str(self._state.values.get(event.name, ""))
        field.placeholder = f"new value for {event.name}"
        field.border_title = f"{event.name} ="
        field.add_class("editing")
        field.focus()
        self.show(self._state)

    def on_knob_input_cancelled(self, event: KnobInput.Cancelled) -> None:
        event.stop()
        self._end_edit()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id != "knob-input" or self.editing is None:
            return
        event.stop()
        name = self.editing
        try:
            value = validate(name, event.value)
        except TunableError as exc:
            # Refused before it reaches the kernel: the knob is untouched, the edit stays open to correct.
            old = self._state.values.get(name) if self._state else None
            self.answers[name] = WriteResult(name, old, event.value, old, ok=False, message=str(exc))
            self._show_help()
            return
        self._end_edit()
        self.post_message(self.WriteRequested(name, value))

    def _end_edit(self) -> None:
        self.editing = None
        field = self.query_one("#knob-input", KnobInput)
        field.remove_class("editing")
        self.query_one("#knobs", KnobTable).focus()
        if self._state is not None:
            self.show(self._state)

    def show_result(self, result: WriteResult) -> None:
        self.answers[result.name] = result
        self._show_help()
        if self._state is not None:
            self.show(self._state)
