"""The guest controls on the screen: start (s), stop (k, forced after a confirm), destroy (x, with a confirm),
workloads (l). Lab guests are ksmtop's own qemu processes; libvirt domains go through libvirt.

A plain object the app owns. Every control call runs in a thread worker with timeouts, so a hung guest agent or
libvirtd never freezes the screen; results come back on the UI thread (tui/work.py). Which keys are offered
depends on the selected row: a process that is neither a lab guest nor a domain has no stop/workload keys, and
the details panel says why.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from textual.app import App
from textual.binding import Binding

from ksmtop.guest_actions import Control, ControlError, NeedsForce, WorkloadState
from ksmtop.rows import GuestRow
from ksmtop.source import Controls, Source
from ksmtop.tui.screens.controls import ConfirmScreen, StartGuestScreen, StartRequest, WorkloadRequest, WorkloadScreen
from ksmtop.tui.work import error_text, in_thread

PING_EVERY_S = 5.0
RECHECK_EVERY_S = 5.0
"""Which rows can be controlled is worked out again when the rows change, else at most this often."""

CONTROL_BINDINGS = [
    Binding("s", "start_guest", "Start guest"),
    Binding("k", "stop_guest", "Stop guest"),
    Binding("x", "destroy_guest", "Force off"),
    Binding("l", "workload", "Workload"),
]


class GuestController:
    """What the guest keys do, and what the details panel says about controlling the selected guest.

    ``changed`` is called when what it shows changed (the control line, the keys offered); ``said`` shows a
    result in the status line and a notification; ``sample_soon`` asks for a sample after a start or a stop.
    """

    def __init__(
        self,
        app: App[Any],
        source: Source,
        changed: Callable[[], None],
        sample_soon: Callable[[], None],
    ) -> None:
        self._app = app
        self.controls: Controls | None = source.controls
        self.why_not = source.limits.controls or "guest controls are not available here"
        self._changed = changed
        self._sample_soon = sample_soon
        self.control_map: dict[str, Control] = {}
        self.agent_status: dict[str, str] = {}
        self.workload_state: dict[str, WorkloadState] = {}
        self._last_ping: dict[str, float] = {}
        self._refreshing = False
        self._checked: tuple[frozenset[tuple[str, bool]], float] = (frozenset(), -1e9)
        self.message = ""

    # --- what the screen shows ----------------------------------------------------------------------------
    def text_for(self, row: GuestRow | None) -> str:
        if row is None:
            return ""
        if self.controls is None:
            return self.why_not
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

    def control(self, row: GuestRow | None) -> Control | None:
        """The control of ``row`` when it can be controlled (None: no controls here, not known yet, or not ours)."""
        control = self.control_map.get(row.key) if row is not None else None
        if self.controls is None or control is None or not control.can_control:
            return None
        return control

    def allows(self, action: str, row: GuestRow | None) -> bool | None:
        """Whether a guest key is offered for the selected row (None: not a guest key)."""
        if action == "start_guest":
            return self.controls is not None
        if action in ("stop_guest", "destroy_guest", "workload"):
            control = self.control(row)
            return control is not None and control.running
        return None

    # --- after each snapshot ------------------------------------------------------------------------------
    def refresh(self, rows: list[GuestRow], selected: GuestRow | None) -> None:
        """Work out which rows can be controlled, ping the selected guest's agent now and then, follow running
        workloads: one round at a time, in a worker."""
        controls = self.controls
        if controls is None or self._refreshing:
            return
        now = time.monotonic()
        ping = selected is not None and now - self._last_ping.get(selected.key, 0.0) >= PING_EVERY_S
        if ping and selected is not None and (known_control := self.control_map.get(selected.key)) is not None:
            ping = known_control.can_control
        if ping and selected is not None:
            self._last_ping[selected.key] = now
        polled = [
            row
            for row in rows
            if (run := controls.workload(row.key)) is not None and (run.state is None or run.state.running)
        ]
        shape = frozenset((row.key, row.domain.running if row.domain else True) for row in rows)
        recheck = shape != self._checked[0] or now - self._checked[1] >= RECHECK_EVERY_S
        if not (recheck or polled or ping):
            return  # nothing to ask: no worker this sample
        if recheck:
            self._checked = (shape, now)
        known = self.control_map
        self._refreshing = True

        def work() -> tuple[dict[str, Control], dict[str, str], dict[str, WorkloadState], list[str]]:
            control_map = controls.controls_for(rows) if recheck else known
            agents: dict[str, str] = {}
            states: dict[str, WorkloadState] = {}
            ended: list[str] = []
            if ping and selected is not None and control_map.get(selected.key, Control(False)).can_control:
                agents[selected.key] = controls.ping(selected)
            for row in polled:
                try:
                    state = controls.poll_workload(row)
                except ControlError as exc:
                    agents[row.key] = f"not answering: {exc}"
                    continue
                if state is not None:
                    states[row.key] = state
                    run = controls.workload(row.key)
                    if not state.running and run is not None:
                        ended.append(f"{run.label} in {row.name}: {state.describe()}")
            return control_map, agents, states, ended

        in_thread(self._app, work, self._refreshed, group="controls", failed=self._refresh_failed)

    def _refreshed(self, found: tuple[dict[str, Control], dict[str, str], dict[str, WorkloadState], list[str]]) -> None:
        self._refreshing = False
        control_map, agents, states, ended = found
        news = (
            control_map != self.control_map
            or any(self.agent_status.get(key) != text for key, text in agents.items())
            or any(self.workload_state.get(key) != state for key, state in states.items())
        )
        self.control_map = control_map
        self.agent_status.update(agents)
        self.workload_state.update(states)
        for text in ended:
            self._said(text, resample=True)
        if news:  # the same answers again: the screen shows them already, no second pass this second
            self._changed()

    def _refresh_failed(self, exc: BaseException) -> None:
        self._refreshing = False
        text = f"guest controls: {error_text(exc)}"
        if text != self.message:  # a bug must not stop the refreshes: say it once in the status line
            self._said(text, error=True)

    def _said(self, text: str, error: bool = False, resample: bool = False) -> None:
        self.message = text
        self._app.notify(text, severity="error" if error else "information", timeout=6, markup=False)
        self._changed()
        if resample:
            self._sample_soon()

    def _run(self, call: Callable[[], str]) -> None:
        """A control call in a worker; its answer (or its error, in one line) is said on the screen."""
        in_thread(
            self._app,
            call,
            lambda text: self._said(text, resample=True),
            group="control-action",
            failed=self._failed,
        )

    def _failed(self, exc: BaseException) -> None:
        self._said(str(exc) if isinstance(exc, ControlError) else error_text(exc), error=True, resample=True)

    # --- the keys -----------------------------------------------------------------------------------------
    def start(self, row: GuestRow | None) -> None:
        controls = self.controls
        if controls is None:
            self._app.notify(self.why_not, severity="warning", markup=False)
            return
        control = self.control(row)
        if row is not None and control is not None and control.kind == "domain" and not control.running:
            self._app.notify(f"starting domain {control.name} through libvirt…", markup=False)
            self._run(lambda: controls.start_domain(row))
            return
        if not controls.local:
            self._app.notify(
                "lab guests run on this host only: select a shut-off domain to start it", severity="warning"
            )
            return

        def chosen(request: StartRequest | None) -> None:
            if request is None:
                return
            self._app.notify(f"starting {request.name or 'a lab guest'} ({request.memory_mib} MiB)…", markup=False)

            def start() -> str:
                guest = controls.start(request.name, request.memory_mib)
                return f"started {guest.name} (PID {guest.pid}, {guest.accel})"

            self._run(start)

        self._app.push_screen(StartGuestScreen(), chosen)

    def _running(self, row: GuestRow | None) -> tuple[GuestRow, Control] | None:
        control = self.control(row)
        if row is None or control is None or not control.running:
            self._app.notify(self.text_for(row) or "no guest selected", severity="warning", markup=False)
            return None
        return row, control

    def stop(self, row: GuestRow | None) -> None:
        chosen = self._running(row)
        if chosen is None:
            return
        row, control = chosen
        how = "libvirt shutdown: guest agent, else ACPI" if control.kind == "domain" else "guest agent shutdown"
        self._app.notify(f"stopping {control.name} ({how})…", markup=False)
        self._stop(row, force=False)

    def destroy(self, row: GuestRow | None) -> None:
        chosen = self._running(row)
        if chosen is not None:
            self._confirm_force(chosen[0], f"{chosen[1].name} is running")

    def _stop(self, row: GuestRow, force: bool) -> None:
        controls = self.controls
        assert controls is not None

        def failed(exc: BaseException) -> None:
            if isinstance(exc, NeedsForce):
                self._confirm_force(row, str(exc))
            else:
                self._failed(exc)

        in_thread(
            self._app,
            lambda: controls.stop(row, force=force),
            lambda text: self._said(text, resample=True),
            group="control-action",
            failed=failed,
        )

    def _confirm_force(self, row: GuestRow, text: str) -> None:
        def confirmed(yes: bool | None) -> None:
            if yes:
                self._app.notify("forcing the stop…")
                self._stop(row, True)
            else:
                self._app.notify("left running")

        self._app.push_screen(ConfirmScreen(f"{text}. Force it off (like pulling the plug)?"), confirmed)

    def workload(self, row: GuestRow | None) -> None:
        chosen = self._running(row)
        if chosen is None:
            return
        row, control = chosen
        controls = self.controls
        assert controls is not None

        def picked(request: WorkloadRequest | None) -> None:
            if request is None:
                return

            def start() -> str:
                run = controls.start_workload(row, request.workload, request.argument)
                return f"{run.label} started"

            self._run(start)

        self._app.push_screen(WorkloadScreen(control.name), picked)
