"""The study, run: for each workload and guest count, fresh lab guests measured with KSM off and on, the whole
session recorded, every KSM knob put back and every guest it started stopped at the end, on Ctrl-C, SIGTERM and
on error.

One measurement, for guest count n of a workload (plan.py says why fresh guests each time):
1. unmerge: run=2 (the kernel unmerges every page before the write returns), wait until pages_sharing and the
   guests' merged pages read 0, then run=0;
2. boot guests 1..n together and start the workload in each (fills are waited for);
3. KSM off: wait until the guests' memory is steady (or a timeout, reported), then a window of ``window_s``:
   host memory, guest memory, page faults (perf and /proc), ksmd CPU;
4. KSM on: run=1 with the study's pages_to_scan and sleep_millisecs; sample every ``merge_interval_s`` until
   ksmtop's convergence detector says converged, or the timeout (reported as not converged, never taken as
   converged); then the same window;
5. stop the guests.

No UI imports: progress goes to a callback, which the command line draws with Rich.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ksmtop import __version__
from ksmtop.collect.agent import AgentError
from ksmtop.collect.ksm import WriteResult, read_ksm, write_tunable
from ksmtop.convergence import convergence
from ksmtop.knobs import advisor_running
from ksmtop.lab import Lab, LabError, LabGuest, start_workload
from ksmtop.lab.accel import AccelChoice, choose_accel
from ksmtop.lab.paths import runtime_dir
from ksmtop.lab.qemu import send_signal, start_ticks, wait_gone
from ksmtop.lab.workloads import WorkloadRun
from ksmtop.model import Event
from ksmtop.recording import RecordingWriter
from ksmtop.safetext import safe, safe_name
from ksmtop.sampler import Sampler
from ksmtop.study import preflight
from ksmtop.study.knobs import KnobSnapshot
from ksmtop.study.measure import SamplingError, SamplingThread, Window, measure_window, wait_steady
from ksmtop.study.plan import Step, StudyPlan
from ksmtop.study.rows import baseline_row, measurement_row

RECORDING_NAME = "study.jsonl.gz"
GUEST_PREFIX = "study"
WORKLOAD_TIMEOUT_S = 300.0
UNMERGE_TIMEOUT_S = 60.0
AGENT_TIMEOUT_S = 10.0


class StudyError(Exception):
    """The study cannot go on; the message is one line for the user."""


class StudyStopped(BaseException):
    """SIGTERM or SIGHUP: stop like Ctrl-C (a BaseException, so no `except Exception` swallows it)."""


@dataclass(frozen=True, slots=True)
class Progress:
    phase: str
    workload: str | None = None
    guests: int | None = None
    detail: str = ""
    done_units: int = 0


@dataclass
class StudyResult:
    meta: dict[str, Any]
    rows: list[dict[str, Any]] = field(default_factory=list)
    series: dict[str, dict[str, list[list[float]]]] = field(default_factory=dict)
    """workload -> guests -> [[seconds since run=1, saving bytes, pages_sharing], ...] of each KSM-on phase."""
    baseline: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)
    complete: bool = False
    stopped: str | None = None
    """Why the study ended early ("interrupted (Ctrl-C)", an error), None when it ran to the end."""
    knobs_not_restored: list[str] = field(default_factory=list)
    guests_left: list[str] = field(default_factory=list)


class StudyRunner:
    def __init__(
        self,
        plan: StudyPlan,
        out_dir: Path,
        *,
        progress: Callable[[Progress], None] = lambda _: None,
        overwrite: bool = False,
        lab_runtime: Path | None = None,
    ) -> None:
        self.plan = plan
        self.out_dir = out_dir
        self.progress_callback = progress
        self.overwrite = overwrite
        self.runtime = lab_runtime or runtime_dir().parent / "study" / f"run-{os.getpid()}"
        self.lab = Lab(self.runtime, prefix=GUEST_PREFIX)
        self.knobs: KnobSnapshot | None = None
        self.thread: SamplingThread | None = None
        self.sampler: Sampler | None = None
        self.writer: RecordingWriter | None = None
        self.accel: AccelChoice | None = None
        self.done_units = 0
        self.foreign_seen: set[str] = set()
        self.result = StudyResult(meta={})

    # -- the whole run ----------------------------------------------------------------------------------------

    def run(self) -> StudyResult:
        """Run the plan. Ctrl-C (KeyboardInterrupt), StudyStopped and errors end it early (``result.stopped``
        says why); either way every knob is restored and every guest stopped before this returns."""
        started = time.monotonic()
        self.result.meta = self._meta()
        self.knobs = KnobSnapshot.take()
        self.result.meta["knobs_before"] = dict(self.knobs.values)
        try:
            self._run()
            self.result.complete = True
        except KeyboardInterrupt:
            self.result.stopped = "interrupted (Ctrl-C)"
        except StudyStopped as exc:
            self.result.stopped = f"stopped by {exc}"
        except (StudyError, LabError, AgentError, SamplingError, OSError) as exc:
            self.result.stopped = safe(f"error: {exc}")
        finally:
            previous = _ignore_signals()
            try:
                self._cleanup()
            finally:
                _restore_signals(previous)
            self.result.meta["seconds"] = round(time.monotonic() - started, 1)
            self.result.meta["ended"] = time.time()
        return self.result

    def _run(self) -> None:
        self._progress("image", detail="building or finding the lab image")
        image = self.lab.image()
        self.accel = choose_accel(runtime_dir(), image, self.plan.accel)  # the lab's per-boot probe cache
        self.result.meta["accel"] = {"accel": self.accel.accel, "reason": safe(self.accel.reason)}
        self.result.meta["image"] = {"id": image.image_id, "kernel": safe(image.kernel_version)}
        self._start_sampling()
        self._event(f"study: {len(self.plan.workloads)} workloads x 1..{self.plan.guests} guests", phase="start")
        self._set_study_knobs()
        self._unmerge()
        self._progress("baseline", detail="host memory without the study's guests")
        baseline = measure_window(self._thread(), [], self.plan.window_s)
        self.result.baseline = baseline_row(baseline)
        self.result.meta["baseline_bytes"] = baseline.host_used_bytes
        for workload in self.plan.workloads:
            workload_started = time.monotonic()
            self._workload(workload)
            self.result.meta.setdefault("workload_seconds", {})[workload] = round(time.monotonic() - workload_started)
        self._event("study: all measurements taken", phase="end")

    def _workload(self, workload: str) -> None:
        """Every guest count on fresh guests: boot them, start the workload, KSM off, merge from run=1, KSM on,
        stop them. Each measurement has the same history: guests never merged before, merged once."""
        for count in range(1, self.plan.guests + 1):
            step = Step(workload, count)
            self._unmerge(step)
            since = self._thread().count
            guests, boot_s = self._boot(step)
            runs = [self._start_workload(step, guest) for guest in guests]
            self._wait_workloads(step, guests, runs)
            self._check_workloads(step, guests, runs)
            self._progress("steady", step, "KSM off: waiting for the guests' memory to settle")
            steady, steady_s = wait_steady(self._thread(), {g.pid for g in guests}, self.plan.steady_timeout_s)
            if not steady:
                self._warn(f"{workload}, {count} guests: memory not steady after {steady_s:.0f} s (KSM off)")
            self._progress("window-off", step, f"KSM off: measuring for {self.plan.window_s:g} s")
            self._event(f"study: {workload} x{count}, KSM off: measuring", phase="off", step=step)
            off = measure_window(self._thread(), guests, self.plan.window_s)
            self._add_row(step, "off", off, since, steady=steady, steady_s=steady_s, boot_s=boot_s)
            since = self._thread().count
            merge = self._merge(step)
            self._check_workloads(step, guests, runs)
            self._progress("window-on", step, f"KSM on: measuring for {self.plan.window_s:g} s")
            self._event(f"study: {workload} x{count}, KSM on: measuring", phase="on", step=step)
            on = measure_window(self._thread(), guests, self.plan.window_s)
            self._add_row(step, "on", on, since, **merge)
            self._stop_guests(step)  # on an error or Ctrl-C, _cleanup stops them (after the knobs: quicker)
            self.done_units += self.plan.step_units(step)
        self._unmerge()

    # -- steps ------------------------------------------------------------------------------------------------

    def _boot(self, step: Step) -> tuple[list[LabGuest], float]:
        """Start guests 1..n together and wait for their agents."""
        self._progress("boot", step, f"booting {step.guests} x {self.plan.memory_mib} MiB ({self._accel()})")
        started = time.monotonic()
        guests = self.lab.up(step.guests, self.plan.memory_mib, accel=self._accel(), wait=True)
        seconds = time.monotonic() - started
        for guest in guests:
            self._event(f"{guest.name} started (PID {guest.pid})", kind="guest-start", guest=guest.name, pid=guest.pid)
        self.result.meta.setdefault("boot_seconds", {}).setdefault(step.workload, []).append(round(seconds, 1))
        return guests, seconds

    def _start_workload(self, step: Step, guest: LabGuest) -> WorkloadRun:
        argument = self.plan.workload_argument(step.workload)
        self._progress("workload", step, f"{step.workload} in {guest.name}")
        with guest.agent(timeout=AGENT_TIMEOUT_S) as agent:
            run = start_workload(agent, step.workload, argument, timeout=AGENT_TIMEOUT_S)
        self._event(f"{guest.name}: {run.label} started", kind="workload-start", guest=guest.name, pid=guest.pid)
        return run

    def _wait_workloads(self, step: Step, guests: list[LabGuest], runs: list[WorkloadRun]) -> None:
        """Fills are waited for (they run in every guest at once); the memory is measured once they are written."""
        if not self.plan.waits_for_workload(step.workload):
            return
        self._progress("workload", step, f"{step.workload}: waiting for {len(runs)} guests")
        for guest, run in zip(guests, runs, strict=True):
            with guest.agent(timeout=AGENT_TIMEOUT_S) as agent:
                state = run.wait(agent, timeout=WORKLOAD_TIMEOUT_S)
            self._event(
                f"{guest.name}: {run.label} {state.describe()}",
                kind="workload-end",
                guest=guest.name,
                exitcode=state.exitcode,
            )
            if not state.succeeded:
                raise StudyError(f"{run.label} in {guest.name} failed: {safe(state.error_tail.strip())}")

    def _check_workloads(self, step: Step, guests: list[LabGuest], runs: list[WorkloadRun]) -> None:
        """Workloads that keep running (idle, primes) must still run: one that ended has changed the guest."""
        if self.plan.waits_for_workload(step.workload):
            return
        for guest, run in zip(guests, runs, strict=True):
            with guest.agent(timeout=AGENT_TIMEOUT_S) as agent:
                state = run.poll(agent, timeout=AGENT_TIMEOUT_S)
            if not state.running:
                raise StudyError(f"{run.label} in {guest.name} ended early: {state.describe()}")

    def _merge(self, step: Step) -> dict[str, Any]:
        """run=1, then sample (faster) until converged or the timeout; the row's convergence figures."""
        thread = self._thread()
        before = thread.wait_next(thread.count - 1) if thread.count else None
        thread.set_interval(self.plan.merge_interval_s)
        try:
            self._write("run", "1")
            started = time.time()
            index = thread.count
            first = thread.wait_next(index)
            series: list[list[float]] = []
            if before is not None:
                series.append([0.0, before.rates.saving_bytes or 0, before.ksm.get("pages_sharing") or 0])
            while True:
                snapshot = thread.wait_next()
                window = thread.since(index)
                state = convergence(window)
                series.append(
                    [
                        round(snapshot.time - started, 2),
                        snapshot.rates.saving_bytes or 0,
                        snapshot.ksm.get("pages_sharing") or 0,
                    ]
                )
                elapsed = snapshot.time - started
                eta = f", about {state.eta_s:.0f} s to go" if state.eta_s else ""
                self._progress("merging", step, f"KSM on: {state.state}{eta} ({elapsed:.0f} s)")
                if state.converged or elapsed >= self.plan.converge_timeout_s:
                    break
        finally:
            thread.set_interval(self.plan.interval_s)
        last = window[-1]
        seconds = last.time - started
        self.result.series.setdefault(step.workload, {})[str(step.guests)] = series
        ksmd = None
        base = before or first
        if base.host.ksmd_cpu_seconds is not None and last.host.ksmd_cpu_seconds is not None and last.time > base.time:
            ksmd = 100.0 * (last.host.ksmd_cpu_seconds - base.host.ksmd_cpu_seconds) / (last.time - base.time)
        if state.converged:
            self._event(
                f"study: {step.workload} x{step.guests} converged after {seconds:.0f} s", phase="converged", step=step
            )
        else:
            self._warn(
                f"{step.workload}, {step.guests} guests: not converged within {self.plan.converge_timeout_s:g} s"
            )
            self._event(
                f"study: {step.workload} x{step.guests} NOT converged ({state.state})", phase="timeout", step=step
            )
        return {
            "converged": state.converged,
            "convergence_s": round(seconds, 1) if state.converged else None,
            "merge_seconds": round(seconds, 1),
            "convergence_state": state.state,
            "full_scans": state.full_scans_since_change,
            "merge_ksmd_cpu_percent": None if ksmd is None else round(ksmd, 1),
        }

    def _unmerge(self, step: Step | None = None) -> None:
        """run=2 (unmerges everything before the write returns), wait for 0 merged pages, then run=0."""
        self._progress("unmerge", step, "KSM off: unmerging every page (run=2)")
        thread = self._thread()
        self._write("run", "2")
        deadline = time.monotonic() + UNMERGE_TIMEOUT_S
        index = thread.count
        while True:
            snapshot = thread.wait_next(index)
            index += 1
            if (snapshot.ksm.get("pages_sharing") or 0) == 0 and snapshot.total_guest_merged_pages == 0:
                break
            if time.monotonic() >= deadline:
                raise StudyError(f"pages still merged {UNMERGE_TIMEOUT_S:g} s after run=2")
        self._write("run", "0")

    def _stop_guests(self, step: Step | None = None) -> None:
        guests = self.lab.guests()
        if not guests:
            return
        self._progress("stop", step, f"stopping {len(guests)} guests")
        for name, how in self.lab.down(timeout=10):
            self._event(f"{name} stopped: {how}", kind="guest-stop", guest=name)

    # -- knobs ------------------------------------------------------------------------------------------------

    def _set_study_knobs(self) -> None:
        if advisor_running(read_ksm()):
            self._write("advisor_mode", "none")  # the scan-time advisor would refuse pages_to_scan (EINVAL)
        self._write("pages_to_scan", str(self.plan.pages_to_scan))
        self._write("sleep_millisecs", str(self.plan.sleep_millisecs))
        self.result.meta["knobs_study"] = self.knobs.current()

    def _write(self, name: str, value: str) -> WriteResult:
        result = self._write_knob(name, value)
        if not result.ok:
            raise StudyError(result.message)
        return result

    def _write_knob(self, name: str, value: str) -> WriteResult:
        """write_tunable with its answer as a "tunable" event in the recording (as the screen writes them)."""
        result = write_tunable(name, value)
        if self.sampler is not None:
            data = {"name": name, "old": result.old_value, "requested": result.requested, "new": result.new_value}
            data |= {"ok": result.ok, "errno": result.errno}
            self.sampler.add_event(Event(time.time(), "tunable", safe(result.message), data))
        return result

    # -- cleanup ----------------------------------------------------------------------------------------------

    def _cleanup(self) -> None:
        """Knobs first (milliseconds), then the guests, then the recording."""
        assert self.knobs is not None
        self._progress("restore", detail="restoring KSM knobs and stopping guests")
        problems = self.knobs.restore(write=self._write_knob)
        try:
            self._stop_guests()
        except (LabError, OSError) as exc:
            self._warn(f"stopping guests: {exc}")
        self.result.guests_left = self._kill_leftovers()
        if self.knobs.values.get("run") == "0" and not self.foreign_seen and not problems:
            # With run=0 the counters keep the study's last figures after its guests are gone; run=2 clears them.
            self._write_knob("run", "2")
            self._write_knob("run", "0")
        if problems or self.knobs.differences():
            problems = self.knobs.restore(write=self._write_knob)  # once more, now that no guest holds a page
        self.result.knobs_not_restored = problems
        self.result.meta["knobs_after"] = self.knobs.current()
        if self.thread is not None:
            self.thread.stop()
            if self.thread.error:
                self._warn(self.thread.error)
        if self.writer is not None:
            self.writer.close()
        if self.sampler is not None:
            self.sampler.close()
        try:
            for leftover in sorted(self.runtime.rglob("*"), reverse=True):
                leftover.rmdir() if leftover.is_dir() else leftover.unlink()
            self.runtime.rmdir()
        except OSError:
            pass

    def _kill_leftovers(self) -> list[str]:
        """Guests the lab could not stop (state files still there): SIGKILL; returns any that survive."""
        left = []
        for state_file in self.runtime.glob("*/state.json"):
            try:
                data = json.loads(state_file.read_text())
                pid, ticks, name = int(data["pid"]), int(data["start_ticks"]), str(data["name"])
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if start_ticks(pid) == ticks:
                send_signal(pid, ticks, signal.SIGKILL)
                if not wait_gone(pid, ticks, 0.5):
                    left.append(f"{safe_name(name)} (PID {pid})")
        return left

    # -- helpers ----------------------------------------------------------------------------------------------

    def _start_sampling(self) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.writer = RecordingWriter(
            self.out_dir / RECORDING_NAME, overwrite=self.overwrite, interval_s=self.plan.interval_s
        )
        self.sampler = Sampler(scope="ksm")
        self.thread = SamplingThread(self.sampler, self.writer, self.plan.interval_s)
        self.thread.start()

    def _thread(self) -> SamplingThread:
        assert self.thread is not None
        return self.thread

    def _accel(self) -> str:
        assert self.accel is not None
        return self.accel.accel

    def _event(self, text: str, *, kind: str = "study", step: Step | None = None, **data: Any) -> None:
        if step is not None:
            data |= {"workload": step.workload, "guests": step.guests}
        if self.sampler is not None:
            self.sampler.add_event(Event(time.time(), kind, safe(text), data))

    def _warn(self, text: str) -> None:
        self.result.warnings.append(safe(text))

    def _progress(self, phase: str, step: Step | None = None, detail: str = "") -> None:
        self.progress_callback(
            Progress(
                phase=phase,
                workload=step.workload if step else None,
                guests=step.guests if step else None,
                detail=detail,
                done_units=self.done_units,
            )
        )

    def _add_row(self, step: Step, ksm: str, window: Window, since: int, **extra: Any) -> None:
        """The row, with every other qemu process or KSM user sampled since index ``since`` (boot and KSM off
        for the off row, merging and KSM on for the on row): short-lived ones between windows count too."""
        ours = {g.pid for g in window.guests}
        others: dict[tuple[int, int], str] = {}
        for snapshot in self._thread().since(since):
            for process in preflight.foreign(snapshot.guests, ours):
                others.setdefault((process.pid, process.start_ticks), preflight.label(process))
        names = list(others.values())
        if names:
            self.foreign_seen.update(names)
            self._warn(
                f"{step.workload}, {step.guests} guests, KSM {ksm}: other qemu processes or KSM users appeared: "
                + ", ".join(names)
            )
        self.result.rows.append(measurement_row(step, ksm, window, names, **extra))

    def _meta(self) -> dict[str, Any]:
        uname = os.uname()
        return {
            "format": "ksmtop-study",
            "version": 1,
            "ksmtop": __version__,
            "host": safe_name(socket.gethostname()),
            "kernel": safe(uname.release),
            "machine": safe(uname.machine),
            "cpu": _cpu_model(),
            "ncpus": os.cpu_count() or 1,
            "mem_total_bytes": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"),
            "page_size": os.sysconf("SC_PAGE_SIZE"),
            "started": time.time(),
            "plan": {
                "workloads": list(self.plan.workloads),
                "guests": self.plan.guests,
                "memory_mib": self.plan.memory_mib,
                "fill_mib": self.plan.fill_mib,
                "pages_to_scan": self.plan.pages_to_scan,
                "sleep_millisecs": self.plan.sleep_millisecs,
                "interval_s": self.plan.interval_s,
                "merge_interval_s": self.plan.merge_interval_s,
                "window_s": self.plan.window_s,
                "converge_timeout_s": self.plan.converge_timeout_s,
                "steady_timeout_s": self.plan.steady_timeout_s,
                "accel": self.plan.accel,
                "host_memory_bytes": self.plan.host_memory_bytes,
            },
            "recording": RECORDING_NAME,
        }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return safe(line.partition(":")[2].strip())
    except OSError:
        pass
    return "unknown"


_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _ignore_signals() -> dict[int, Any]:
    """While knobs are restored and guests stopped, a second Ctrl-C must not cut that short."""
    previous = {}
    for signum in _SIGNALS:
        try:
            previous[signum] = signal.signal(signum, signal.SIG_IGN)
        except ValueError:  # not the main thread
            pass
    return previous


def _restore_signals(previous: dict[int, Any]) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, handler)


def raise_stopped(signum: int, frame: object) -> None:
    """A handler for SIGTERM and SIGHUP: stop the study as Ctrl-C does."""
    raise StudyStopped(signal.Signals(signum).name)
