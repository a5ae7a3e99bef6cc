"""Record the session the screen snapshot tests replay (tests/tui/data/session.jsonl), on this host:

    .venv/bin/python -m tests.support.make_session [OUT]

Three stand-in processes (two with identical pages, one random) with KSM off for a few samples, then
pages_to_scan and run written through the same LiveSource the screen uses (so the tunable events are real),
a note, and KSM merging. Every KSM knob is restored afterwards (KsmGuard, under the tests' host-wide lock).
"""

from __future__ import annotations

import fcntl
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

from ksmtop.live import LiveSource
from ksmtop.model import Event
from ksmtop.recording import RecordingWriter
from tests.conftest import KSM_LOCK, REPO, KsmGuard

OUT = REPO / "tests" / "tui" / "data" / "session.jsonl"
STANDINS = (("guest-a", 32, "same"), ("guest-b", 32, "same"), ("random-c", 16, "random"))


def record(out: Path, off_samples: int = 4, on_samples: int = 20, interval: float = 0.5) -> int:
    processes = []
    with open(KSM_LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        guard = KsmGuard()
        try:
            guard.set(run=2)  # unmerge: the counters start from nothing
            guard.set(run=0, sleep_millisecs=20, pages_to_scan=100)
            for name, mib, fill in STANDINS:
                argv = [sys.executable, "-m", "tests.support.mergeable", "--mib", str(mib), "--fill", fill]
                process = subprocess.Popen(
                    [*argv, "--name", name], cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
                )
                processes.append(process)
                assert process.stdout is not None and process.stdout.readline().strip() == "ready"
            source = LiveSource(scope="ksm")
            pids = {p.pid for p in processes}
            with RecordingWriter(out, overwrite=True, interval_s=interval) as writer:
                for index in range(off_samples + on_samples):
                    if index == off_samples:
                        source.add_event(Event(time.time(), "note", "stand-ins ready; switching KSM on"))
                        source.write_tunable("pages_to_scan", "150")
                        source.write_tunable("run", "1")
                    snapshot = source.sample()
                    # only the stand-ins: other KSM users on this host would make the pictures vary
                    writer.write(replace(snapshot, guests=tuple(g for g in snapshot.guests if g.pid in pids)))
                    time.sleep(interval)
                samples = writer.samples
            source.close()
        finally:
            for process in processes:
                process.kill()
                process.wait(timeout=10)
            guard.restore()
    return samples


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else OUT
    print(f"recorded {record(target)} samples to {target}")
