"""The sharing matrix for 4 guests of 1 GiB: target at most 100 ms.

    .venv/bin/python bench/sharing.py [--guests 4] [--mib 1024] [--reps 7] [--pids PID ...]

Without --pids, starts stand-in processes (tests/support/mergeable.py) with MIB of mergeable, resident memory
each, alternately filled with one repeated page and with random bytes. Booting 1 GiB lab guests under TCG takes
minutes; a stand-in maps, touches and reads exactly like a guest's RAM area. With --pids, measures existing
processes (e.g. real qemu guests). With --merge, ksmd first merges the stand-ins (pages_to_scan raised, then
run=0 so nothing moves while timing; every knob is restored afterwards, under the test suite's KSM lock);
without it KSM knobs are not touched. Prints the median and worst wall time of pagemap.sharing(). Needs root.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from ksmtop.collect.pagemap import sharing  # noqa: E402
from tests.support.mergeable import start_many, stop_all  # noqa: E402

TARGET_MS = 100.0


def start_stand_ins(count: int, mib: int) -> list[subprocess.Popen]:
    return start_many(count, mib, lambda i: "same" if i % 2 == 0 else "random", "ksmshare")


def merge_first(pids: list[int]) -> None:
    import fcntl

    from tests.conftest import KSM_LOCK, KsmGuard

    def merged() -> int:
        return sum(int(Path(f"/proc/{pid}/ksm_merging_pages").read_text()) for pid in pids)

    with open(KSM_LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        guard = KsmGuard()
        try:
            guard.set(pages_to_scan=20000, sleep_millisecs=0, run=1)
            last, deadline = -1, time.monotonic() + 120
            while time.monotonic() < deadline:
                time.sleep(2)
                now = merged()
                if now and now == last:
                    break
                last = now
            guard.set(run=0)
        finally:
            guard.restore()
    print(f"merged before timing: {merged()} pages")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--guests", type=int, default=4)
    parser.add_argument("--mib", type=int, default=1024)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--pids", type=int, nargs="*")
    parser.add_argument("--verbose", action="store_true", help="print the last report")
    parser.add_argument("--merge", action="store_true", help="let ksmd merge the stand-ins first")
    parser.add_argument("--exact", action="store_true", help="read every page's flags (finds single-mapped KSM pages)")
    args = parser.parse_args()
    started: list[subprocess.Popen] = []
    try:
        if args.pids:
            pids = args.pids
            what = f"{len(pids)} given processes"
        else:
            started = start_stand_ins(args.guests, args.mib)
            pids = [process.pid for process in started]
            what = f"{args.guests} stand-ins of {args.mib} MiB"
            if args.merge:
                merge_first(pids)
        times = []
        report = None
        for _ in range(args.reps):
            began = time.perf_counter()
            report = sharing(pids, exact=args.exact)
            times.append((time.perf_counter() - began) * 1000)
        assert report is not None
        if args.verbose:
            print(report)
        if report.error:
            print(f"error: {report.error}")
            return 1
        pages = sum(g.present_pages for g in report.guests)
        merged = sum(g.merged_pages for g in report.guests)
        median = statistics.median(times)
        print(
            f"sharing matrix of {what}: median {median:.1f} ms, worst {max(times):.1f} ms over {args.reps} runs "
            f"({pages} present pages, {merged} merged); target {TARGET_MS:.0f} ms: "
            + ("met" if median <= TARGET_MS else "MISSED")
        )
        return 0 if median <= TARGET_MS else 2
    finally:
        stop_all(started)


if __name__ == "__main__":
    raise SystemExit(main())
