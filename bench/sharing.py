"""The sharing matrix for 4 guests of 1 GiB, merged: targets quick <= 100 ms, exact <= 150 ms (issue 11).

    .venv/bin/python bench/sharing.py [--guests 4] [--mib 1024] [--reps 7] [--fill same-random|numbered]
                                      [--no-merge] [--pids PID ...]

Without --pids, starts stand-in processes (tests/support/mergeable.py) with MIB of mergeable, resident memory
each: by default alternately filled with one repeated page and with random bytes ("same-random"); "numbered"
makes every page equal to the same page of the other stand-ins (identical guests: one KSM page per page index).
Booting 1 GiB lab guests under TCG takes minutes; a stand-in maps, touches and reads exactly like a guest's RAM.
By default ksmd first merges them (pages_to_scan raised), then run=0 holds the page tables still while both the
quick and the exact report are timed; every knob is restored afterwards, under the test suite's KSM lock.
--no-merge times unmerged stand-ins without touching KSM (the cheap case: few PFNs to look up). With --pids,
measures existing processes as they are. Each figure is printed with its condition: merged pages, KSM running,
sizes. Needs root.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from ksmtop.collect.pagemap import sharing  # noqa: E402
from tests.conftest import KSM_LOCK, KsmGuard  # noqa: E402
from tests.support.mergeable import start_many, stop_all  # noqa: E402

TARGET_MS = {"quick": 100.0, "exact": 150.0}
FILLS = {"same-random": lambda i: "same" if i % 2 == 0 else "random", "numbered": lambda i: "numbered"}


def merged_pages(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, ValueError):
            total += int(Path(f"/proc/{pid}/ksm_merging_pages").read_text())
    return total


def ksm_run() -> str:
    try:
        return Path("/sys/kernel/mm/ksm/run").read_text().strip()
    except OSError:
        return "?"


@contextlib.contextmanager
def merged_and_still(pids: list[int]) -> Iterator[None]:
    """ksmd merges the stand-ins until the count settles, then run=0 while timing; every knob restored after."""
    with open(KSM_LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        guard = KsmGuard()
        try:
            guard.set(pages_to_scan=20000, sleep_millisecs=0, run=1)
            last, deadline = -1, time.monotonic() + 300
            while time.monotonic() < deadline:
                time.sleep(2)
                now = merged_pages(pids)
                if now and now == last:
                    break
                last = now
            guard.set(run=0)
            yield
        finally:
            guard.restore()


def time_reports(pids: list[int], reps: int) -> dict[str, tuple[list[float], object]]:
    results = {}
    for mode in ("quick", "exact"):
        times, report = [], None
        for _ in range(reps):
            began = time.perf_counter()
            report = sharing(pids, exact=mode == "exact")
            times.append((time.perf_counter() - began) * 1000)
        results[mode] = (times, report)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--guests", type=int, default=4)
    parser.add_argument("--mib", type=int, default=1024)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--fill", choices=sorted(FILLS), default="same-random")
    parser.add_argument("--pids", type=int, nargs="*")
    parser.add_argument("--verbose", action="store_true", help="print the last reports")
    parser.add_argument("--no-merge", action="store_true", help="time unmerged stand-ins (KSM knobs untouched)")
    args = parser.parse_args()
    started: list[subprocess.Popen] = []
    try:
        if args.pids:
            pids, what = args.pids, f"{len(args.pids)} given processes"
        else:
            started = start_many(args.guests, args.mib, FILLS[args.fill], "ksmshare")
            pids, what = [p.pid for p in started], f"{args.guests} stand-ins of {args.mib} MiB ({args.fill})"
        hold = contextlib.nullcontext() if args.pids or args.no_merge else merged_and_still(pids)
        with hold:
            condition = f"{merged_pages(pids)} merged pages, KSM run={ksm_run()}"
            results = time_reports(pids, args.reps)
        failed = False
        for mode, (times, report) in results.items():
            if args.verbose:
                print(report)
            if report.error:
                print(f"{mode}: error: {report.error}")
                return 1
            present = sum(g.present_pages for g in report.guests)
            merged = sum(g.merged_pages for g in report.guests)
            median = statistics.median(times)
            met = median <= TARGET_MS[mode]
            failed |= not met
            print(
                f"{mode:5} sharing matrix of {what}: median {median:.1f} ms, worst {max(times):.1f} ms over "
                f"{args.reps} runs; target {TARGET_MS[mode]:.0f} ms: {'met' if met else 'MISSED'}  "
                f"[{condition}; {present} present pages, {merged} mapped to KSM pages, "
                f"{report.flags_read} flags read]"
            )
        return 2 if failed else 0
    finally:
        stop_all(started)


if __name__ == "__main__":
    raise SystemExit(main())
