"""The guest controls on the screen: start (s), stop (k, forced after a confirm), destroy (x, with a confirm),
workloads (l). Lab guests are ksmtop's own qemu processes; libvirt domains go through libvirt.

Every control call runs in a thread worker with timeouts, so a hung guest agent or libvirtd never freezes the
screen; the results come back as messages. Which keys are offered depends on the selected row: a process that
is neither a lab guest nor a domain has no stop/workload keys, and the details panel says why.
"""

from __future__ import annotations

import time

from textual import work
from textual.app import App
from textual.binding import Binding
from textual.message import Message

from ksmtop.control import Control, ControlError, GuestControls, NeedsForce
from ksmtop.lab.workloads import WorkloadState
from ksmtop.rows import GuestRow
from ksmtop.tui.screens.controls import (
    ConfirmScreen,
    StartGuestScreen,
    StartRequest,
    WorkloadRequest,
    WorkloadScreen,
)

PING_EVERY_S = 5.0


class ControlsRefreshed(Message):
    def __init__(
        self, controls: dict[str, Control], agents: dict[str, str], workloads: dict[str, WorkloadState]
    ) -> None:
        super().__init__()
        self.controls = controls
        self.agents = agents
        self.workloads = workloads


class ControlResult(Message):
    def __init__(self, text: str, error: bool = False, resample: bool = True) -> None:
        super().__init__()
        self.text = text
        self.error = error
        self.resample = resample


class ForceNeeded(Message):
    def __init__(self, row: GuestRow, text: str) -> None:
        super().__init__()
        self.row = row
        self.text = text


CONTROL_BINDINGS = [
    Binding("s", "start_guest", "Start guest"),
    Binding("k", "stop_guest", "Stop guest"),
    Binding("x", "destroy_guest", "Force off"),
    Binding("l", "workload", "Workload"),
]


class GuestControlsMixin(App[None]):
    """Mixed into the app; expects ``self.controls`` (None: no controls, e.g. a replay) and ``selected_row()``."""

    controls: GuestControls | None
    why_no_controls: str = "guest controls are not available here"

    def init_controls(self) -> None:
        self.control_map: dict[str, Control] = {}
        self.agent_status: dict[str, str] = {}
        self.workload_state: dict[str, WorkloadState] = {}
        self._last_ping: dict[str, float] = {}
        self._refreshing_controls = False
        self.control_message = ""

    def refresh_keys(self) -> None:
        """Re-check which keys are offered; messages can still arrive while the app closes (no screen then)."""
        if self.screen_stack:
            self.refresh_bindings()

    def selected_row(self) -> GuestRow | None:
        """The highlighted row (the app provides it)."""
        return None

    def control_text(self, row: GuestRow | None) -> str:
        if row is None:
            return ""
        if self.controls is None:
            return self.why_no_controls
        control = self.control_map.get(row.key)
        if control is None:
            return "checking…"
        if not control.can_control:
            return control.why
        if control.kind == "domain" and not control.running:
            return f"libvirt domain {control.name}: s starts it"
        if control.kind == "domain":
            parts = [f"libvirt domain {control.name}: k shut down, x force off, l workload"]
        else:
            parts = [f"lab guest {control.name}: s start another, k stop, x force off, l workload"]
        parts.append(f"agent {self.agent_status.get(row.key, 'not asked yet')}")
        state = self.workload_state.get(row.key)
        run = self.controls.workload(row.key)
        if run is not None:
            parts.append(f"workload {run.label}: {state.describe() if state else 'started'}")
        return "; ".join(parts)

    def selected_control(self) -> Control | None:
        row = self.selected_row()
        control = self.control_map.get(row.key) if row is not None else None
        if self.controls is None or control is None or not control.can_control:
            return None
        return control

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "start_guest":
            return self.controls is not None
        if action in ("stop_guest", "destroy_guest", "workload"):
            control = self.selected_control()
            return control is not None and control.running
        return True

    # --- refresh (after each snapshot) --------------------------------------------------------------------
    def refresh_controls(self, rows: list[GuestRow]) -> None:
        if self.controls is None or self._refreshing_controls:
            return
        self._refreshing_controls = True
        self._refresh_controls(rows, self.selected_row())

    @work(thread=True, group="controls")
    def _refresh_controls(self, rows: list[GuestRow], selected: GuestRow | None) -> None:
        controls = self.controls
        assert controls is not None
        control_map: dict[str, Control] = {}
        agents: dict[str, str] = dict(self.agent_status)
        workloads: dict[str, WorkloadState] = dict(self.workload_state)
        try:
            control_map = {row.key: controls.control_for(row) for row in rows}
            now = time.monotonic()
            if selected is not None:
                selected = next((row for row in rows if row.key == selected.key), None)
            key = selected.key if selected is not None else None
            due = key is not None and now - self._last_ping.get(key, 0.0) >= PING_EVERY_S
            if selected is not None and due and key in control_map and control_map[key].can_control:
                self._last_ping[selected.key] = now
                agents[selected.key] = controls.ping(selected)
            for row in rows:
                run = controls.workload(row.key)
                if run is None or (run.state is not None and not run.state.running):
                    continue
                try:
                    state = controls.poll_workload(row)
                except ControlError as exc:
                    agents[row.key] = f"not answering: {exc}"
                    continue
                if state is not None:
                    workloads[row.key] = state
                    if not state.running:
                        self.post_message(ControlResult(f"{run.label} in {row.name}: {state.describe()}"))
        except Exception as exc:  # a bug must not stop the refreshes: say it once in the status line
            text = f"guest controls: {type(exc).__name__}: {exc}"
            if text != self.control_message:
                self.post_message(ControlResult(text, error=True, resample=False))
        finally:
            self._refreshing_controls = False  # a plain flag: the next snapshot may start another refresh
        self.post_message(ControlsRefreshed(control_map, agents, workloads))

    def on_controls_refreshed(self, message: ControlsRefreshed) -> None:
        self.control_map = message.controls
        self.agent_status = message.agents
        self.workload_state = message.workloads
        self.refresh_keys()
        self.controls_changed()

    def controls_changed(self) -> None:
        """Redraw what depends on the controls (the app draws the details panel)."""

    def on_control_result(self, message: ControlResult) -> None:
        self.control_message = message.text
        self.notify(message.text, severity="error" if message.error else "information", timeout=6)
        self.controls_changed()
        if message.resample:
            self.sample_soon()

    def sample_soon(self) -> None:
        """Take a sample now (the app provides it)."""

    # --- actions ------------------------------------------------------------------------------------------
    def action_start_guest(self) -> None:
        if self.controls is None:
            self.notify(self.why_no_controls, severity="warning")
            return
        row, control = self.selected_row(), self.selected_control()
        if row is not None and control is not None and control.kind == "domain" and not control.running:
            self.notify(f"starting domain {control.name} through libvirt…")
            self._start_domain(row)
            return
        if not self.controls.local:
            self.notify("lab guests run on this host only: select a shut-off domain to start it", severity="warning")
            return

        def chosen(request: StartRequest | None) -> None:
            if request is not None:
                self.notify(f"starting {request.name or 'a lab guest'} ({request.memory_mib} MiB)…")
                self._start_guest(request)

        self.push_screen(StartGuestScreen(), chosen)

    @work(thread=True, group="control-action")
    def _start_guest(self, request: StartRequest) -> None:
        assert self.controls is not None
        try:
            guest = self.controls.start(request.name, request.memory_mib)
        except Exception as exc:  # ControlError, or a bug: a message, never a crashed screen
            self.post_message(ControlResult(str(exc), error=True))
            return
        self.post_message(ControlResult(f"started {guest.name} (PID {guest.pid}, {guest.accel})"))

    @work(thread=True, group="control-action")
    def _start_domain(self, row: GuestRow) -> None:
        assert self.controls is not None
        try:
            text = self.controls.start_domain(row)
        except Exception as exc:  # ControlError, or a bug: a message, never a crashed screen
            self.post_message(ControlResult(str(exc), error=True))
            return
        self.post_message(ControlResult(text))

    def _running_selection(self) -> tuple[GuestRow, Control] | None:
        row, control = self.selected_row(), self.selected_control()
        if row is None or control is None or not control.running:
            self.notify(self.control_text(row) or "no guest selected", severity="warning")
            return None
        return row, control

    def action_stop_guest(self) -> None:
        chosen = self._running_selection()
        if chosen is None:
            return
        row, control = chosen
        how = "libvirt shutdown: guest agent, else ACPI" if control.kind == "domain" else "guest agent shutdown"
        self.notify(f"stopping {control.name} ({how})…")
        self._stop_guest(row, False)

    def action_destroy_guest(self) -> None:
        chosen = self._running_selection()
        if chosen is None:
            return
        row, control = chosen
        self.post_message(ForceNeeded(row, f"{control.name} is running"))

    @work(thread=True, group="control-action")
    def _stop_guest(self, row: GuestRow, force: bool) -> None:
        assert self.controls is not None
        try:
            how = self.controls.stop(row, force=force)
        except NeedsForce as exc:
            self.post_message(ForceNeeded(row, str(exc)))
            return
        except Exception as exc:  # ControlError, or a bug: a message, never a crashed screen
            self.post_message(ControlResult(str(exc), error=True))
            return
        self.post_message(ControlResult(how))

    def on_force_needed(self, message: ForceNeeded) -> None:
        def confirmed(yes: bool | None) -> None:
            if yes:
                self.notify("forcing the stop…")
                self._stop_guest(message.row, True)
            else:
                self.notify("left running")

        self.push_screen(ConfirmScreen(f"{message.text}. Force it off (like pulling the plug)?"), confirmed)

    def action_workload(self) -> None:
        chosen = self._running_selection()
        if chosen is None:
            return
        row, control = chosen

        def picked(request: WorkloadRequest | None) -> None:
            if request is not None:
                self._start_workload(row, request)

        self.push_screen(WorkloadScreen(control.name), picked)

    @work(thread=True, group="control-action")
    def _start_workload(self, row: GuestRow, request: WorkloadRequest) -> None:
        assert self.controls is not None
        try:
            run = self.controls.start_workload(row, request.workload, request.argument)
        except Exception as exc:  # ControlError, or a bug: a message, never a crashed screen
            self.post_message(ControlResult(str(exc), error=True))
            return
        self.post_message(ControlResult(f"{run.label} started"))
