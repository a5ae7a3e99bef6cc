"""The guest controls on the screen: start (s), stop (k, forced after a confirm), workloads (l).

Every control call runs in a thread worker with timeouts, so a hung guest agent never freezes the screen; the
results come back as messages. Which keys are offered depends on the selected guest: one that ksmtop did not
start has no start/stop/workload keys, and the details panel says why.
"""

from __future__ import annotations

import time

from textual import work
from textual.app import App
from textual.binding import Binding
from textual.message import Message

from ksmtop.control import Control, ControlError, GuestControls, NeedsForce
from ksmtop.lab.workloads import WorkloadState
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
        self, controls: dict[int, Control], agents: dict[int, str], workloads: dict[int, WorkloadState]
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
    def __init__(self, pid: int, text: str) -> None:
        super().__init__()
        self.pid = pid
        self.text = text


CONTROL_BINDINGS = [
    Binding("s", "start_guest", "Start guest"),
    Binding("k", "stop_guest", "Stop guest"),
    Binding("l", "workload", "Workload"),
]


class GuestControlsMixin(App[None]):
    """Mixed into the app; expects ``self.controls`` (None: no controls, e.g. a replay) and ``self.selected_pid``."""

    controls: GuestControls | None
    selected_pid: int | None
    why_no_controls: str = "guest controls are not available here"

    def init_controls(self) -> None:
        self.control_map: dict[int, Control] = {}
        self.agent_status: dict[int, str] = {}
        self.workload_state: dict[int, WorkloadState] = {}
        self._last_ping: dict[int, float] = {}
        self._refreshing_controls = False
        self.control_message = ""

    def refresh_keys(self) -> None:
        """Re-check which keys are offered; messages can still arrive while the app closes (no screen then)."""
        if self.screen_stack:
            self.refresh_bindings()

    def control_text(self, pid: int | None) -> str:
        if pid is None:
            return ""
        if self.controls is None:
            return self.why_no_controls
        control = self.control_map.get(pid)
        if control is None:
            return "checking…"
        if not control.can_control:
            return control.why
        parts = [f"lab guest {control.name}: s start another, k stop, l workload"]
        parts.append(f"agent {self.agent_status.get(pid, 'not asked yet')}")
        state = self.workload_state.get(pid)
        run = self.controls.workload(pid)
        if run is not None:
            parts.append(f"workload {run.label}: {state.describe() if state else 'started'}")
        return "; ".join(parts)

    def selected_controllable(self) -> bool:
        control = self.control_map.get(self.selected_pid) if self.selected_pid is not None else None
        return bool(self.controls is not None and control and control.can_control)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "start_guest":
            return self.controls is not None
        if action in ("stop_guest", "workload"):
            return self.selected_controllable()
        return True

    # --- refresh (after each snapshot) --------------------------------------------------------------------
    def refresh_controls(self, pids: list[int]) -> None:
        if self.controls is None or self._refreshing_controls:
            return
        self._refreshing_controls = True
        self._refresh_controls(pids, self.selected_pid)

    @work(thread=True, group="controls")
    def _refresh_controls(self, pids: list[int], selected: int | None) -> None:
        controls = self.controls
        assert controls is not None
        control_map: dict[int, Control] = {}
        agents: dict[int, str] = dict(self.agent_status)
        workloads: dict[int, WorkloadState] = dict(self.workload_state)
        try:
            control_map = {pid: controls.control_for(pid) for pid in pids}
            now = time.monotonic()
            due = selected is not None and now - self._last_ping.get(selected, 0.0) >= PING_EVERY_S
            if due and selected in control_map and control_map[selected].can_control:
                self._last_ping[selected] = now
                agents[selected] = controls.ping(selected)
            for pid in pids:
                run = controls.workload(pid)
                if run is None or (run.state is not None and not run.state.running):
                    continue
                try:
                    state = controls.poll_workload(pid)
                except ControlError as exc:
                    agents[pid] = f"not answering: {exc}"
                    continue
                if state is not None:
                    workloads[pid] = state
                    if not state.running:
                        self.post_message(ControlResult(f"{run.label} in {control_map[pid].name}: {state.describe()}"))
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

    def action_stop_guest(self) -> None:
        pid = self.selected_pid
        if pid is None or not self.selected_controllable():
            self.notify(self.control_text(pid) or "no guest selected", severity="warning")
            return
        self.notify(f"stopping {self.control_map[pid].name} (guest agent shutdown)…")
        self._stop_guest(pid, False)

    @work(thread=True, group="control-action")
    def _stop_guest(self, pid: int, force: bool) -> None:
        assert self.controls is not None
        try:
            how = self.controls.stop(pid, force=force)
        except NeedsForce as exc:
            self.post_message(ForceNeeded(pid, str(exc)))
            return
        except Exception as exc:  # ControlError, or a bug: a message, never a crashed screen
            self.post_message(ControlResult(str(exc), error=True))
            return
        self.post_message(ControlResult(how))

    def on_force_needed(self, message: ForceNeeded) -> None:
        def confirmed(yes: bool | None) -> None:
            if yes:
                self.notify("forcing the stop…")
                self._stop_guest(message.pid, True)
            else:
                self.notify("left running")

        self.push_screen(ConfirmScreen(f"{message.text}. Force it off (like pulling the plug)?"), confirmed)

    def action_workload(self) -> None:
        pid = self.selected_pid
        if pid is None or not self.selected_controllable():
            self.notify(self.control_text(pid) or "no guest selected", severity="warning")
            return

        def chosen(request: WorkloadRequest | None) -> None:
            if request is not None:
                self._start_workload(pid, request)

        self.push_screen(WorkloadScreen(self.control_map[pid].name), chosen)

    @work(thread=True, group="control-action")
    def _start_workload(self, pid: int, request: WorkloadRequest) -> None:
        assert self.controls is not None
        try:
            run = self.controls.start_workload(pid, request.workload, request.argument)
        except Exception as exc:  # ControlError, or a bug: a message, never a crashed screen
            self.post_message(ControlResult(str(exc), error=True))
            return
        self.post_message(ControlResult(f"{run.label} started"))
