"""The screen's own CPU cost when left running: the real ksmtop in tmux, htop beside it, same host, same run.

    .venv/bin/python bench/screen_cpu.py [--guests 0 3 50] [--seconds 60] [--interval 1] [--size 200x50]

For each guest count: starts stand-in guests (tests/support/mergeable.py: processes that ksmtop takes for qemu
guests, `-name guest=benchN`, with mergeable memory that is rewritten a few pages a second, so merged pages,
RSS and faults move every sample as in live guests), switches KSM on (pages merged, ksmd scanning: every
counter moves), starts `ksmtop` and `htop -d 10` (1 s) each in its own tmux session of the same size, waits for
a warm-up, then reads both processes' CPU time from /proc/PID/stat over the measuring window. Prints % of one
core for each, the ratio, the target from issue 11 (50 guests: <= 10x htop; 3 guests: <= 1% of a core) and the
conditions beside the figures. KSM knobs are restored and every process stopped at the end, also on errors.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from ksmtop.collect.ksm import read_ksm  # noqa: E402
from ksmtop.collect.procfs import parse_stat  # noqa: E402
from tests.conftest import KSM_LOCK, KsmGuard  # noqa: E402
from tests.support.mergeable import start_guest_like, stop_all  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")
WARM_UP_S = 10.0
"""Default wait before measuring: the screen is drawn and merging has started. The graphs still fill then (a new
column every sample until the window is full); --warm-up 120 measures the screen as it runs for hours."""


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds."""
    return parse_stat(Path(f"/proc/{pid}/stat").read_bytes())[3] / TICKS


def thread_seconds(pid: int) -> dict[str, float]:
    """utime + stime per thread of a process, in seconds, by thread name (the main thread as "main")."""
    seconds: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            comm, _, _, ticks, _, _ = parse_stat((task / "stat").read_bytes())
        except OSError:
            continue  # a worker thread that ended between the listing and the read
        name = "main" if task.name == str(pid) else comm
        seconds[name] = seconds.get(name, 0.0) + ticks / TICKS
    return seconds


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], check=True, capture_output=True, text=True).stdout


def start_in_tmux(session: str, command: str, size: tuple[int, int]) -> int:
    """Runs ``command`` (exec'd, so the pane's PID is the program's) in a detached tmux session."""
    width, height = size
    tmux("new-session", "-d", "-s", session, "-x", str(width), "-y", str(height), f"exec {command}")
    return int(tmux("display-message", "-p", "-t", session, "#{pane_pid}").strip())


def stop_tmux(session: str) -> None:
    subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)


def wait_merged(pids: list[int], timeout: float = 120.0) -> int:
    """Until every stand-in has merged pages; returns the total merged pages."""
    deadline = time.monotonic() + timeout
    while True:
        merged = [int(Path(f"/proc/{pid}/ksm_merging_pages").read_text()) for pid in pids]
        if all(merged) or time.monotonic() > deadline:
            return sum(merged)
        time.sleep(0.5)


def measure(guests: int, args: argparse.Namespace, ksmtop: str) -> dict:
    stand_ins = start_guest_like(guests, args.mib, "bench", fill="same", churn=args.churn) if guests else []
    sessions = []
    try:
        merged = wait_merged([p.pid for p in stand_ins])
        tag = f"ksmtop-bench-{os.getpid()}-{guests}"
        command = f"{ksmtop} --interval {args.interval:g} {'--no-libvirt' if args.no_libvirt else ''}"
        pids = {}
        for name, program in (("ksmtop", command), ("htop", f"htop -d {round(args.interval * 10)}")):
            session = f"{tag}-{name}"
            sessions.append(session)
            pids[name] = start_in_tmux(session, program, args.size)
        time.sleep(args.warm_up)
        screen = tmux("capture-pane", "-p", "-t", sessions[0])
        counted = re.search(r"\b(\d+) guests,", screen)
        shown = counted is not None and int(counted.group(1)) == guests  # no other qemu on the host in the picture
        before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        threads_before = thread_seconds(pids["ksmtop"])
        started = time.monotonic()
        time.sleep(args.seconds)
        elapsed = time.monotonic() - started
        after = {name: cpu_seconds(pid) for name, pid in pids.items()}
        threads_after = thread_seconds(pids["ksmtop"])
        threads = {  # worker threads that came and went in between are in the process's figure only
            name: 100 * (threads_after[name] - threads_before.get(name, 0.0)) / elapsed for name in threads_after
        }
        ksm = read_ksm("/")
        return {
            "guests": guests,
            "percent": {name: 100 * (after[name] - before[name]) / elapsed for name in pids},
            "threads": threads,
            "seconds": elapsed,
            "shown": shown,
            "merged_pages": merged,
            "pages_sharing": ksm.get("pages_sharing"),
            "run": ksm.get("run"),
        }
    finally:
        for session in sessions:
            stop_tmux(session)
        stop_all(stand_ins)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--guests", type=int, nargs="+", default=[0, 3, 50])
    parser.add_argument("--seconds", type=float, default=60.0, help="measuring window per guest count")
    parser.add_argument("--warm-up", type=float, default=WARM_UP_S, help="seconds between start and measuring")
    parser.add_argument("--interval", type=float, default=1.0, help="ksmtop's and htop's refresh interval")
    parser.add_argument("--size", default="200x50", help="terminal size, COLUMNSxLINES")
    parser.add_argument("--mib", type=int, default=4, help="mergeable memory per stand-in")
    parser.add_argument("--churn", type=int, default=4, help="pages each stand-in rewrites per second")
    parser.add_argument("--libvirt", dest="no_libvirt", action="store_false", help="let ksmtop use libvirt")
    parser.add_argument("--ksmtop", default=str(REPO / ".venv" / "bin" / "ksmtop"), help="the program measured")
    args = parser.parse_args()
    args.size = tuple(int(part) for part in args.size.lower().split("x"))
    if os.geteuid() != 0:
        parser.error("needs root (per-process KSM figures, KSM knobs)")
    for tool in ("tmux", "htop"):
        if shutil.which(tool) is None:
            parser.error(f"needs {tool} (apt-get install {tool})")

    results = []
    lock = open(KSM_LOCK, "a")  # noqa: SIM115 (held for the whole run: KSM is one per host, tests take turns on it)
    fcntl.flock(lock, fcntl.LOCK_EX)
    guard = KsmGuard()
    try:
        guard.set(run=1, pages_to_scan=1000, sleep_millisecs=20)
        for guests in args.guests:
            print(
                f"measuring {guests} guests for {args.seconds:g} s (after {args.warm_up:g} s warm-up) ...", flush=True
            )
            results.append(measure(guests, args, args.ksmtop))
    finally:
        guard.restore()
        lock.close()

    cols, lines = args.size
    print(
        f"\nksmtop vs htop, % of one core, interval {args.interval:g} s, terminal {cols}x{lines}, "
        f"{os.cpu_count()} CPUs, measured after {args.warm_up:g} s, KSM running (pages_to_scan 1000), stand-ins: {args.mib} MiB same-data memory, "
        f"{args.churn} pages rewritten/s each, libvirt {'off' if args.no_libvirt else 'on'}"
    )
    print(f"{'guests':>6} {'ksmtop %':>9} {'htop %':>7} {'ratio':>7}  {'target':<22} conditions")
    failed = False
    for result in results:
        ours, htop = result["percent"]["ksmtop"], result["percent"]["htop"]
        ratio = ours / htop if htop > 0 else float("inf")
        if result["guests"] >= 50:
            target, ok = "<= 10x htop", ratio <= 10
        elif result["guests"] >= 1:
            target, ok = "<= 1.0% of a core", ours <= 1.0
        else:
            target, ok = "(reference)", True
        if not result["shown"]:
            target, ok = "INVALID: other qemu guests on the host", False
        if result["run"] != 1 or (result["guests"] and not result["merged_pages"]):
            target, ok = "INVALID: KSM was not merging (another process switched it?)", False
        failed |= not ok
        conditions = (
            f"{result['seconds']:.0f} s; {result['merged_pages']} pages merged in the stand-ins, "
            f"pages_sharing {result['pages_sharing']}; "
            + ("rows on screen: just the stand-ins" if result["shown"] else "OTHER GUESTS ON THE HOST: not comparable")
        )
        verdict = target + ("" if ok else " MISSED")
        print(f"{result['guests']:>6} {ours:>9.2f} {htop:>7.2f} {ratio:>6.1f}x  {verdict:<22} {conditions}")
        busiest = sorted(result["threads"].items(), key=lambda item: -item[1])
        print(f"{'':>6} ksmtop's threads: " + ", ".join(f"{name} {share:.2f}%" for name, share in busiest if share > 0))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
