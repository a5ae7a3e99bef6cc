"""`ksmtop study` for real: a small study (2 guests x idle, fill-random, fill-same) on real TCG lab guests, run as
the command a user runs; then Ctrl-C and SIGTERM in the middle of merging; then the refusal beside another KSM
user. Every test compares every KSM knob before and after, and looks for qemu processes of the study left behind.

The host's knobs are set to values no default has (pages_to_scan 123, sleep_millisecs 31) before each study, so a
restore that wrote defaults instead of what was there would fail.
"""

from __future__ import annotations

import csv
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ksmtop.lab.qemu import QEMU_BINARY
from ksmtop.recording import read_recording
from ksmtop.replay import ReplaySource
from ksmtop.study.knobs import KnobSnapshot
from ksmtop.study.rows import COLUMNS
from tests.conftest import KSM, KSM_LOCK, REPO, KsmGuard, wait_for
from tests.integration.conftest import require_lab_tools

pytestmark = [pytest.mark.guests, pytest.mark.ksm]

KSMTOP = [sys.executable, "-m", "ksmtop"]
WORKLOADS = ("idle", "fill-random", "fill-same")
HOST_KNOBS = {"run": 0, "pages_to_scan": 123, "sleep_millisecs": 31}
STUDY_TIMEOUT_S = 900


def study_guests() -> list[tuple[int, str]]:
    """(PID, argv) of every qemu process running a study guest."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(QEMU_BINARY.encode()) and any(a.startswith(b"guest=study-") for a in argv):
            found.append((int(entry.name), b" ".join(argv).decode(errors="replace")[:120]))
    return found


def kill_study_guests() -> None:
    for pid, _ in study_guests():
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def require_host() -> None:
    if os.geteuid() != 0 or not KSM.is_dir():
        pytest.skip("needs root and /sys/kernel/mm/ksm")
    require_lab_tools()


class Study:
    """One finished `ksmtop study` run and what the host looked like around it."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.before = KnobSnapshot.take().values
        started = time.monotonic()
        argv = ["study", "-o", str(out), "--guests", "2", "--workloads", ",".join(WORKLOADS), "--fill", "32"]
        argv += ["--window", "3", "--timeout", "120"]
        self.process = subprocess.run(
            [*KSMTOP, *argv], capture_output=True, text=True, timeout=STUDY_TIMEOUT_S, cwd=REPO, check=False
        )
        self.seconds = time.monotonic() - started
        self.after = KnobSnapshot.take().values
        self.left = study_guests()

    @property
    def results(self) -> dict:
        return json.loads((self.out / "results.json").read_text())

    def saving(self, workload: str, guests: int) -> int:
        return next(
            r["saving_bytes"]
            for r in self.results["rows"]
            if (r["workload"], r["guests"], r["ksm"]) == (workload, guests, "on")
        )


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Study:
    """The small study, once for the module, run with KSM's test lock held; every knob is restored (and the lock
    released) before the tests look at its files."""
    require_host()
    with open(KSM_LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        guard = KsmGuard()
        try:
            guard.set(**HOST_KNOBS)
            return Study(tmp_path_factory.mktemp("study") / "results")
        finally:
            kill_study_guests()
            guard.restore()


def test_the_study_finishes_with_every_row(study: Study):
    assert study.process.returncode == 0, study.process.stderr[-2000:]
    assert "ksmtop study: done in" in study.process.stderr
    assert "\r" not in study.process.stderr and "\x1b" not in study.process.stderr  # no progress off a terminal
    print(f"small study: {study.seconds:.0f} s; boots {study.results.get('boot_seconds')}")
    data = study.results
    assert data["complete"] is True and data["stopped"] is None
    assert data["format"] == "ksmtop-study" and data["ksmtop"] and data["kernel"] == os.uname().release
    assert data["knobs_before"] == study.before
    assert data["knobs_study"]["pages_to_scan"] == "5000" and data["knobs_after"] == study.before
    rows = data["rows"]
    assert [(r["workload"], r["guests"], r["ksm"]) for r in rows] == [
        (w, n, k) for w in WORKLOADS for n in (1, 2) for k in ("off", "on")
    ]
    for row in rows:
        assert tuple(row) == COLUMNS
        assert row["host_used_bytes"] > data["baseline"]["host_used_bytes"] // 2
        assert len(row["per_guest"]) == row["guests"]
        assert all(g["name"].startswith("study-") and g["pss_bytes"] > 0 for g in row["per_guest"])
        assert row["faults_minor"] is not None and row["perf_faults_minor"] is not None
        assert row["fault_window_s"] >= 3 and isinstance(row["foreign"], list)  # others' short-lived qemu may show
        if row["ksm"] == "on":
            assert row["converged"] is True, row["convergence_state"]
            assert 0 < row["convergence_s"] <= 120 and row["merge_ksmd_cpu_percent"] > 0
            assert row["saving_bytes"] > 0 and row["guests_merged_bytes"] > 0
            assert row["guests_pss_bytes"] < next(
                r["guests_pss_bytes"]
                for r in rows
                if (r["workload"], r["guests"], r["ksm"]) == (row["workload"], row["guests"], "off")
            )
        else:
            assert row["saving_bytes"] == 0 and row["pages_sharing"] == 0 and row["steady"] is True
    with open(study.out / "results.csv", newline="") as handle:
        table = list(csv.DictReader(handle))
    assert [(t["workload"], int(t["guests"]), t["ksm"]) for t in table] == [
        (r["workload"], r["guests"], r["ksm"]) for r in rows
    ]
    assert [int(t["host_used_bytes"]) for t in table] == [r["host_used_bytes"] for r in rows]
    figures = [f"memory-{w}.png" for w in WORKLOADS] + ["faults.png", "convergence.png", "model.png"]
    assert data["figures"] == figures
    for name in figures:
        assert (study.out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (study.out / "report.md").read_text()
    assert "## Capacity model" in report and "## The paper's findings, checked" in report
    assert set(data["model"]) == set(WORKLOADS) and data["model"]["idle"]["on"]["per_guest_bytes"] > 0


def test_every_knob_is_restored_and_no_guest_is_left(study: Study):
    assert study.after == study.before
    assert study.before["pages_to_scan"] == "123" and study.before["sleep_millisecs"] == "31"
    assert study.left == []
    runtime = Path("/run/ksmtop/study")
    assert not runtime.is_dir() or not list(runtime.glob("run-*"))  # the study's guest sockets and state are gone


def test_the_papers_findings_hold_here(study: Study):
    assert study.saving("idle", 2) > study.saving("idle", 1)
    for guests in (1, 2):
        assert study.saving("fill-same", guests) > study.saving("fill-random", guests)
    checks = {c["finding"]: c for c in study.results["checks"]}
    assert checks["Merging grows with the number of identical guests"]["held"] is True
    assert checks["Identical-data fill merges more than random fill"]["held"] is True
    assert checks["A CPU-bound workload merges about as much as idle"]["held"] is None  # primes not run


def test_the_recording_replays_exports_and_plots(study: Study, tmp_path: Path):
    path = study.out / "study.jsonl.gz"
    recording = read_recording(path)
    assert recording.complete and recording.warnings == []
    kinds = {event.kind for event in recording.events}
    assert {"study", "tunable", "guest-start", "guest-stop", "workload-start", "workload-end"} <= kinds
    texts = [event.text for event in recording.events if event.kind == "study"]
    assert any("idle x2, KSM on: measuring" in text for text in texts)
    assert any("converged after" in text for text in texts)
    names = {g.name for s in recording.snapshots for g in s.guests}
    assert {"study-1", "study-2"} <= names
    runs = [s.ksm.get("run") for s in recording.snapshots]
    assert 0 in runs and 1 in runs and runs[-1] == int(study.before["run"])
    source = ReplaySource(recording)
    seen = [source.sample() for _ in range(len(recording.snapshots))]
    assert seen == recording.snapshots and source.at_end
    exported = subprocess.run(
        [*KSMTOP, "export", str(path), "--json", "-o", str(tmp_path / "s.json")], capture_output=True, text=True
    )
    assert exported.returncode == 0, exported.stderr
    document = json.loads((tmp_path / "s.json").read_text())
    assert len(document["samples"]) == len(recording.snapshots)
    assert any(e["kind"] == "study" for e in document["events"])
    tables = subprocess.run(
        [*KSMTOP, "export", str(path), "--csv", "-o", str(tmp_path / "csv")], capture_output=True, text=True
    )
    assert tables.returncode == 0 and (tmp_path / "csv" / "events.csv").read_text().count("study") >= 6
    plotted = subprocess.run(
        [*KSMTOP, "plot", str(path), "-o", str(tmp_path / "s.png")], capture_output=True, text=True
    )
    assert plotted.returncode == 0, plotted.stderr
    assert (tmp_path / "s.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_while_merging_restores_every_knob(tmp_path, ksm_guard, signum, code):
    require_host()
    ksm_guard.set(**HOST_KNOBS)
    before = KnobSnapshot.take().values
    out = tmp_path / "results"
    argv = ["study", "-o", str(out), "--guests", "1", "--workloads", "idle", "--window", "3"]
    argv += ["--pages-to-scan", "4321", "--sleep-millisecs", "7"]
    process = subprocess.Popen([*KSMTOP, *argv], cwd=REPO, stderr=subprocess.PIPE, text=True)
    try:

        def merging() -> bool:
            if process.poll() is not None:
                pytest.fail(f"the study ended before merging: {process.stderr.read()[-1000:]}")
            knobs = KnobSnapshot.take().values
            return knobs["run"] == "1" and knobs["pages_to_scan"] == "4321"

        wait_for(merging, timeout=300, interval=0.05)
        assert study_guests(), "no study guest while merging"
        os.kill(process.pid, signum)
        assert process.wait(timeout=90) == code
        stderr = process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        kill_study_guests()
    assert "Traceback" not in stderr
    assert KnobSnapshot.take().values == before
    assert study_guests() == []
    data = json.loads((out / "results.json").read_text())
    assert data["complete"] is False
    assert data["stopped"] == ("interrupted (Ctrl-C)" if signum == signal.SIGINT else "stopped by SIGTERM")
    assert data["knobs_after"] == before and data["knobs_not_restored"] == [] and data["guests_left"] == []
    assert [(r["guests"], r["ksm"]) for r in data["rows"]] == [(1, "off")]
    assert "did not finish" in (out / "report.md").read_text()
    assert read_recording(out / "study.jsonl.gz").complete


def test_refuses_beside_another_ksm_user(tmp_path, ksm_guard, mergeable_processes):
    require_host()
    other = mergeable_processes(mib=4, fill="same", name="otheruser")
    before = KnobSnapshot.take().values
    out = tmp_path / "results"
    result = subprocess.run([*KSMTOP, "study", "-o", str(out)], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert result.returncode == 2
    assert f"other processes use KSM: otheruser (PID {other.pid})" in result.stderr
    assert "refusing to run" in result.stderr and "--go-on" in result.stderr and "Traceback" not in result.stderr
    assert not out.exists()
    assert KnobSnapshot.take().values == before
