"""`ksmtop study -o DIR`: the paper's study on lab guests, with a Rich progress display (quiet off a terminal).

Refusals and errors are one line on stderr and a non-zero exit, never a traceback: 2 for a study that cannot
start, 1 for one that failed part-way, 130 for Ctrl-C (143 SIGTERM, 129 SIGHUP), 3 when a knob could not be
restored or a guest is left.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import signal
import sys
from pathlib import Path
from typing import Any

from ksmtop.study import plan as plan_module
from ksmtop.study.plan import PlanError, StudyPlan

LOCK_PATH = Path("/run/lock/ksmtop-study.lock") if Path("/run/lock").is_dir() else Path("/tmp/ksmtop-study.lock")
PHASE_SHARE = {"unmerge": 0.0, "boot": 0.0, "workload": 0.3, "steady": 0.35, "window-off": 0.4, "merging": 0.6,
               "window-on": 0.65, "stop": 0.9}  # fmt: skip
"""How far into a measurement each phase starts, for a progress bar that moves within one."""


def _number(kind: type, low: float, high: float) -> Any:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low:g} and {high:g}, not {text}")
        return value

    return parse


def _workloads(text: str) -> tuple[str, ...]:
    try:
        return plan_module.parse_workloads(text)
    except PlanError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _memory(text: str) -> int:
    from ksmtop.lab.cli import parse_memory_mib

    return parse_memory_mib(text)


def register(subparsers: Any) -> None:
    study = subparsers.add_parser(
        "study",
        help="reproduce the KSM study: host memory with KSM off and on, 1..N identical lab guests, four workloads",
        description="Boot lab guests one at a time (1..N) for each workload, measure host memory with KSM off and "
        "on (merging converged), page faults before and after, and write results.json, results.csv, figures, a "
        "capacity model and report.md to DIR. KSM knobs are restored and the guests stopped at the end, on Ctrl-C "
        "and on error. Needs root; refuses to run beside other qemu guests or KSM users unless --go-on.",
    )
    study.add_argument("-o", "--output", required=True, type=Path, metavar="DIR", help="where the results go")
    study.add_argument("--guests", type=_number(int, 1, 16), default=plan_module.DEFAULT_GUESTS, help="1..N (4)")
    study.add_argument(
        "--workloads",
        type=_workloads,
        default=plan_module.STUDY_WORKLOADS,
        help="comma-separated, from " + ",".join(plan_module.STUDY_WORKLOADS) + " (all four)",
    )
    study.add_argument("--memory", type=_memory, default=None, help="RAM per guest (the lab's: 256M)")
    study.add_argument(
        "--fill", type=_number(int, 1, 65536), default=plan_module.DEFAULT_FILL_MIB, help="MiB per fill (64)"
    )
    study.add_argument(
        "--pages-to-scan",
        type=_number(int, 1, 1_000_000),
        default=plan_module.DEFAULT_PAGES_TO_SCAN,
        help=f"KSM pages_to_scan while merging ({plan_module.DEFAULT_PAGES_TO_SCAN})",
    )
    study.add_argument(
        "--sleep-millisecs",
        type=_number(int, 0, 10_000),
        default=plan_module.DEFAULT_SLEEP_MS,
        help=f"KSM sleep_millisecs while merging ({plan_module.DEFAULT_SLEEP_MS})",
    )
    study.add_argument(
        "--window", type=_number(float, 0.3, 600), default=plan_module.DEFAULT_WINDOW_S, help="seconds per measurement"
    )
    study.add_argument(
        "--interval", type=_number(float, 0.1, 10), default=plan_module.DEFAULT_INTERVAL_S, help="seconds per sample"
    )
    study.add_argument(
        "--timeout",
        type=_number(float, 10, 7200),
        default=plan_module.DEFAULT_CONVERGE_TIMEOUT_S,
        help="seconds to wait for merging to converge (reported as not converged after it)",
    )
    study.add_argument("--accel", choices=("auto", "kvm", "tcg"), default="auto", help="auto: probe KVM, else TCG")
    study.add_argument(
        "--host-memory", type=_memory, default=None, help="also size the model for a host this big (64G)"
    )
    study.add_argument("--force", action="store_true", help="write into DIR even if it is not empty")
    study.add_argument("--go-on", action="store_true", help="run beside other qemu guests or KSM users")


def _fail(message: str, code: int = 2) -> int:
    from ksmtop.safetext import safe

    print(f"ksmtop study: {safe(message)}", file=sys.stderr)
    return code


def _plan(args: argparse.Namespace) -> StudyPlan:
    from ksmtop.lab.guests import DEFAULT_MEMORY_MIB

    return StudyPlan(
        workloads=args.workloads,
        guests=args.guests,
        memory_mib=args.memory or DEFAULT_MEMORY_MIB,
        fill_mib=args.fill,
        pages_to_scan=args.pages_to_scan,
        sleep_millisecs=args.sleep_millisecs,
        interval_s=args.interval,
        window_s=args.window,
        converge_timeout_s=args.timeout,
        accel=args.accel,
        host_memory_bytes=args.host_memory * 2**20 if args.host_memory else None,
    ).check()


def _check_output(out: Path, force: bool) -> str | None:
    """Why DIR cannot take the results (None: it can); nothing is created here."""
    if out.exists() and not out.is_dir():
        return f"{out} exists and is not a directory"
    if out.is_dir() and any(out.iterdir()) and not force:
        return f"{out} exists and is not empty (--force writes into it, replacing the study's files)"
    existing = out
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        return f"cannot write to {out}: {existing} is not a writable directory"
    return None


OUR_FILES = ("results.json", "results.csv", "report.md", "study.jsonl.gz", "memory-*.png", "faults.png",
             "convergence.png", "model.png")  # fmt: skip
"""What a study writes in DIR: with --force, an earlier study's files go first (no stale figure stays)."""


def _remove_earlier_results(out: Path) -> None:
    for pattern in OUR_FILES:
        for path in out.glob(pattern):
            if path.is_file() and not path.is_symlink():
                path.unlink()


def run(args: argparse.Namespace) -> int:
    from ksmtop.study import preflight

    try:
        plan = _plan(args)
    except PlanError as exc:
        return _fail(str(exc))
    problems = preflight.host_problems()
    if problems:
        return _fail(problems[0])
    problem = _check_output(args.output, args.force)
    if problem:
        return _fail(problem)
    lock = open(LOCK_PATH, "a")  # noqa: SIM115 (held for the whole study)
    try:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return _fail(f"another ksmtop study is running (lock {LOCK_PATH})")
        others, ksm = preflight.other_users()
        reasons = preflight.obstacles(others, ksm)
        if reasons and not args.go_on:
            for reason in reasons:
                print(f"ksmtop study: {reason}", file=sys.stderr)
            return _fail("refusing to run: the figures would mix in memory and merging that are not the study's "
                         "(--go-on runs anyway)")  # fmt: skip
        for reason in reasons:
            print(f"ksmtop study: warning: {reason} (going on, as asked)", file=sys.stderr)
        try:
            args.output.mkdir(parents=True, exist_ok=True)
            _remove_earlier_results(args.output)
        except OSError as exc:
            return _fail(f"cannot write to {args.output}: {exc.strerror or exc}")
        return _study(plan, args)
    finally:
        lock.close()


def _study(plan: StudyPlan, args: argparse.Namespace) -> int:
    from ksmtop.study.runner import StudyRunner, raise_stopped

    previous = {s: signal.signal(s, raise_stopped) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        with _Display(plan) as show:
            result = StudyRunner(plan, args.output, progress=show, overwrite=args.force).run()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return _finish(result, args.output)


def _finish(result: Any, out: Path) -> int:
    from ksmtop.study.report import models, write_results

    figures: list[str] = []
    if result.rows and not (result.stopped or "").startswith("interrupted"):
        from ksmtop.study.figures import FiguresUnavailable, write_figures

        baseline = result.baseline["host_used_bytes"] if result.baseline else None
        try:
            figures = write_figures(out, result.rows, result.series, models(result), result.meta, baseline)
        except FiguresUnavailable as exc:
            result.warnings.append(str(exc))
    write_results(result, out, figures)
    code = 0
    if result.complete:
        print(f"ksmtop study: done in {result.meta['seconds'] / 60:.1f} min: {out / 'report.md'}", file=sys.stderr)
    else:
        code = _exit_code(result.stopped or "")
        _fail(f"{result.stopped}; what was measured is in {out}", code)
    for problem in result.knobs_not_restored:
        _fail(f"KSM knob NOT restored: {problem}", 3)
        code = 3
    for guest in result.guests_left:
        _fail(f"guest still running: {guest}", 3)
        code = 3
    return code


def _exit_code(stopped: str) -> int:
    """130 for Ctrl-C, 128 + N for signal N (SIGTERM 143, SIGHUP 129), 1 for an error."""
    if stopped.startswith("interrupted"):
        return 130
    name = stopped.removeprefix("stopped by ")
    if name in ("SIGTERM", "SIGHUP"):
        return 128 + signal.Signals[name].value
    return 1


class _Display:
    """Rich progress on a terminal; nothing otherwise."""

    def __init__(self, plan: StudyPlan) -> None:
        self.plan = plan
        self.progress: Any = None
        self.task: Any = None

    def __enter__(self) -> Any:
        if sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

            self.progress = Progress(
                TextColumn("{task.description}", markup=False),
                BarColumn(bar_width=20),
                TextColumn("{task.percentage:>3.0f}%"),
                TimeElapsedColumn(),
                TextColumn("left"),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                speed_estimate_period=3600,
            )
            self.progress.start()
            self.task = self.progress.add_task("starting", total=self.plan.total_units)
        return self.show

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()

    def show(self, update: Any) -> None:
        if self.progress is None:
            return
        guests = f" {update.guests}/{self.plan.guests} guests" if update.guests else ""
        workload = f"{update.workload}{guests}: " if update.workload else ""
        done = update.done_units
        if update.guests and update.phase in PHASE_SHARE:
            done += PHASE_SHARE[update.phase] * update.guests
        width = max(24, min(90, self.progress.console.width - 44))  # the bar, %, elapsed and time left take ~44
        text = f"{workload}{update.detail}"
        text = text if len(text) <= width else text[: width - 1] + "…"
        self.progress.update(self.task, completed=done, description=text.ljust(width))
