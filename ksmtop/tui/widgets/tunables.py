"""The KSM tunables, edited in place (Enter edits, Esc cancels), with the kernel's answer on the knob's own row;
the read-only counters with what they mean; ksmd's price per setting.

Every table is a LineTable fed with formatted rows: a sample redraws only the rows whose values moved (the
counters, mostly), never the knobs that stayed.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Input, Label, Static

from ksmtop.convergence import TradePoint
from ksmtop.format import human_bytes, human_count, human_rate, human_seconds, percent
from ksmtop.knobs import COUNTERS, KNOBS, TunableError, WriteResult, advisor_note, refusal_words, validate
from ksmtop.model import KsmState
from ksmtop.tui.widgets.line_table import LineTable, TableColumn, TableRow

TRADE_ROWS = 5
EDITING = "editing…"
ADVISOR_SETS = "set by the advisor"
"""pages_to_scan's row while the scan-time advisor chooses it."""
ANSWER_WIDTH = 34
"""The answer on a knob's row is cut to this many characters; the whole of it is below the table."""


def short_answer(result: WriteResult | None) -> tuple[str, str]:
    """(text, style) for the knob's row: 'refused: <why>' says the reason right where the value is."""
    if result is None:
        return "", ""
    if not result.ok:
        text = f"refused: {refusal_words(result)}"
        return (text if len(text) <= ANSWER_WIDTH else text[: ANSWER_WIDTH - 1] + "…"), "error"
    if result.warning:
        return "accepted, warning", "warning"
    return "accepted", "ok"


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
    TunablesPanel #knobs { height: auto; max-height: 15; }
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
        self._help: tuple[str | None, object] = (None, None)

    def compose(self) -> ComposeResult:
        yield Label("KSM tunables  (Enter edits, Esc cancels)", classes="title", id="knobs-title")
        yield LineTable(
            (
                TableColumn("knob", "Knob"),
                TableColumn("value", "Value", right=True),
                TableColumn("answer", "Kernel's answer"),
            ),
            id="knobs",
        )
        yield KnobInput(id="knob-input")
        yield Static("", id="knob-answer")
        yield Static("", id="knob-help")
        yield Label("KSM counters", classes="title")
        yield LineTable(
            (
                TableColumn("counter", "Counter"),
                TableColumn("value", "Value", right=True, min_width=8),
                TableColumn("meaning", "Meaning"),
            ),
            id="counters",
            show_header=False,
            cursor=False,
            zebra=False,
        )
        yield Label("ksmd's price per setting (pages_to_scan or the advisor)", classes="title")
        yield LineTable(
            tuple(
                TableColumn(key, label, right=True)
                for key, label in (
                    ("pages", "setting"),
                    ("sleep", "sleep ms"),
                    ("cpu", "ksmd CPU"),
                    ("scanned", "scanned/s"),
                    ("full_scan", "full scan"),
                    ("held", "held for"),
                )
            ),
            id="trade",
            cursor=False,
        )

    def on_mount(self) -> None:
        self.knobs = self.query_one("#knobs", LineTable)
        self.counters = self.query_one("#counters", LineTable)
        self.trade = self.query_one("#trade", LineTable)
        self.knob_input = self.query_one("#knob-input", KnobInput)
        self.knob_help = self.query_one("#knob-help", Static)
        self.knob_answer = self.query_one("#knob-answer", Static)

    def set_read_only(self, reason: str) -> None:
        self.read_only_reason = reason
        self.knobs.disabled = bool(reason)
        title = self.query_one("#knobs-title", Label)
        title.update(
            Text(f"KSM tunables  (read-only: {reason})" if reason else "KSM tunables  (Enter edits, Esc cancels)")
        )

    # --- what the screen hands down ----------------------------------------------------------------------
    def show(self, state: KsmState, unavailable: dict[str, str]) -> None:
        """The knobs and counters of a sample (only the rows that changed are redrawn)."""
        self._state = state
        self.unavailable = unavailable
        if not state.available:
            self.knobs.set_rows([])
            self.counters.set_rows([])
            self._set_help(Text(state.error or "KSM not available", style="red"))
            return
        self._show_knobs()
        rows = []
        for name, meaning in COUNTERS.items():
            if name in state.values:
                shown = human_bytes(state.get(name)) if name == "general_profit" else human_count(state.get(name))
                rows.append(TableRow(name, (name, shown, meaning), "dim"))
        self.counters.set_rows(rows)
        self._show_help()

    def _show_knobs(self) -> None:
        state = self._state
        if state is None:
            return
        rows = []
        for name in KNOBS:
            if name in self.unavailable and name not in state.values:
                rows.append(TableRow(name, (name, "–", "not available remotely"), "dim"))
            elif name in state.values:
                value = EDITING if name == self.editing else str(state.values[name])
                answer, style = short_answer(self.answers.get(name))
                if not answer and advisor_note(name, state):
                    answer, style = ADVISOR_SETS, "dim"
                rows.append(TableRow(name, (name, value, answer), style))
        self.knobs.set_rows(rows)

    def show_trade(self, points: Sequence[TradePoint]) -> None:
        """One row per pages_to_scan/sleep_millisecs setting seen while KSM ran, newest first."""
        rows = []
        for index, point in enumerate(reversed(points[-TRADE_ROWS:])):
            cells = (
                point.setting,
                str(point.sleep_millisecs),
                percent(point.ksmd_cpu_percent),
                human_rate(point.scanned_pages_per_s, "pages"),
                human_seconds(point.full_scan_seconds),
                human_seconds(point.seconds),
            )
            rows.append(TableRow(str(index), cells))
        self.trade.set_rows(rows)

    def show_result(self, result: WriteResult) -> None:
        self.answers[result.name] = result
        self._show_knobs()
        self._show_help()

    # --- help and answers below the table ----------------------------------------------------------------
    def _set_help(self, help_text: Text, answer: Text | None = None) -> None:
        answer = answer if answer is not None else Text("")
        key = (help_text.plain, help_text.style, answer.plain, str(answer.style))
        if key == self._help:
            return
        self._help = key
        self.knob_help.update(help_text)
        self.knob_answer.update(answer)

    def _current_knob(self) -> str | None:
        return self.knobs.cursor_key

    def _show_help(self) -> None:
        name = self.editing or self._current_knob()
        if name is None or name not in KNOBS:
            self._set_help(Text(""))
            return
        knob = KNOBS[name]
        if knob.is_choice:
            allowed = " or ".join(knob.choices)
        else:
            allowed = f"{knob.minimum}–{knob.maximum}" + (f" {knob.unit}" if knob.unit else "")
        why = f" {self.unavailable[name]}." if name in self.unavailable else ""
        help_text = Text(f"{name}: {knob.description}. Accepts {allowed}.{why}")
        note = advisor_note(name, self._state)
        if note:
            help_text.append(f"\n⚠ Now {note}.", "yellow")
        result = self.answers.get(name)
        if result is None:
            answer = Text("")
        elif not result.ok:
            answer = Text(f"✗ {result.message}", style="bold red")
        elif result.warning:
            answer = Text(f"✓ {result.message}\n⚠ {result.warning}", style="yellow")
        else:
            answer = Text(f"✓ {result.message}", style="green")
        self._set_help(help_text, answer)

    # --- editing -----------------------------------------------------------------------------------------
    def on_line_table_cursor_moved(self, event: LineTable.CursorMoved) -> None:
        if event.table is self.knobs:
            event.stop()
            self._show_help()

    def on_line_table_activated(self, event: LineTable.Activated) -> None:
        if event.table is not self.knobs:
            return
        event.stop()
        name = event.key
        if self.read_only_reason or self._state is None:
            self.app.notify(f"Tunables are read-only: {self.read_only_reason}", severity="warning", markup=False)
            return
        if name in self.unavailable:
            self.app.notify(f"{name}: {self.unavailable[name]}", severity="warning", markup=False)
            return
        note = advisor_note(name, self._state)
        if note:  # said before the write: the kernel will refuse it, and the advisor would override it
            self.app.notify(note[0].upper() + note[1:], title="Scan-time advisor", severity="warning", markup=False)
        self.editing = name
        field = self.knob_input
        field.value = str(self._state.values.get(name, ""))
        field.placeholder = f"new value for {name}"
        field.border_title = f"{name} ="
        field.add_class("editing")
        field.focus()
        self._show_knobs()
        self._show_help()

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
            self.answers[name] = WriteResult(name, old, event.value[:64], old, ok=False, message=str(exc))
            self._show_knobs()
            self._show_help()
            return
        self._end_edit()
        self.post_message(self.WriteRequested(name, value))

    def _end_edit(self) -> None:
        self.editing = None
        self.knob_input.remove_class("editing")
        self.knobs.focus()
        self._show_knobs()
        self._show_help()
