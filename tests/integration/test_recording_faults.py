"""`ksmtop record`, `export`, `plot` and `replay` as a person runs them, against real faults: a full disk (a
small tmpfs mounted here), a file size limit (RLIMIT_FSIZE), SIGTERMs at random moments, hostile files, and
root pointed at /dev/null, a FIFO or someone else's symlink. One clear line, the right exit status, and every
sample written before a fault reads back."""

from __future__ import annotations

import os
import random
import resource
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ksmtop.recording import read_recording
from tests.conftest import REPO
from tests.support.hostile_recordings import HOSTILE, write_base

KSMTOP = [sys.executable, "-m", "ksmtop", "--no-libvirt"]
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (mount, /dev/null, chown)")


def run(*args: str, timeout: float = 60, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([*KSMTOP, *args], capture_output=True, text=True, timeout=timeout, cwd=REPO, **kwargs)


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def filled_up(mount: Path, leave: int) -> None:
    """Fill the disk until about ``leave`` bytes are free."""
    free = os.statvfs(mount).f_bavail * os.statvfs(mount).f_frsize
    (mount / "filler").write_bytes(b"\0" * max(0, free - leave))


def assert_kept(path: Path, stderr: str, why: str) -> None:
    line = one_line(stderr)
    assert line.startswith(f"ksmtop: {path}: {why} while writing sample "), line
    kept = int(line.rsplit("stopped, ", 1)[1].split()[0])
    recording = read_recording(path)
    assert len(recording.snapshots) == kept >= 1
    assert not recording.complete and len(recording.warnings) == 1 and "tail was cut" in recording.warnings[0]
    times = [s.time for s in recording.snapshots]
    assert times == sorted(times)


@root_only
@pytest.mark.parametrize("name", ["full.jsonl", "full.jsonl.gz"])
def test_record_on_a_full_disk_stops_with_one_line_and_keeps_every_sample(small_disk, name):
    filled_up(small_disk, 12 * 1024)
    path = small_disk / name
    result = run("record", "-o", str(path), "--interval", "0.05", timeout=180)
    assert result.returncode == 1
    assert_kept(path, result.stderr, "No space left on device")


def _limit_file_size() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))


@pytest.mark.parametrize("name", ["limit.jsonl", "limit.jsonl.gz"])
def test_record_over_the_file_size_limit_stops_with_one_line_and_keeps_every_sample(tmp_path, name):
    path = tmp_path / name
    result = run("record", "-o", str(path), "--interval", "0.05", timeout=300, preexec_fn=_limit_file_size)
    assert result.returncode == 1
    assert_kept(path, result.stderr, "File too large")
    assert path.stat().st_size <= 20_000


def _samples_on_disk(path: Path) -> int:
    try:
        return len(read_recording(path).snapshots)
    except Exception:
        return 0


def test_sigterms_at_random_moments_always_leave_a_complete_file(tmp_path):
    """Several recorders, each sent a burst of SIGTERMs at a random moment (a sample being taken, written,
    fsynced, or the file being closed): every file has its end marker and reads back without a warning."""
    rng = random.Random(os.getpid())
    for run_index in range(8):
        name = f"term{run_index}.jsonl" + (".gz" if run_index % 2 else "")
        path = tmp_path / name
        extra = ["--no-fsync"] if run_index % 4 >= 2 else []
        recorder = subprocess.Popen(
            [*KSMTOP, "record", "-o", str(path), "--interval", "0.05", "--all", *extra],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            wanted = rng.randrange(2, 12)
            deadline = time.monotonic() + 60
            while _samples_on_disk(path) < wanted and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(rng.uniform(0, 0.05))
            for _ in range(3):  # a burst: the later ones land while the first is being handled
                recorder.send_signal(signal.SIGTERM)
                time.sleep(rng.uniform(0, 0.01))
            status = recorder.wait(timeout=30)
        finally:
            if recorder.poll() is None:
                recorder.kill()
                recorder.wait(timeout=10)
        stderr = recorder.stderr.read() if recorder.stderr else ""
        assert "Traceback" not in stderr, stderr
        # 0, or killed by a later SIGTERM after the file was closed (the handlers are restored then)
        assert status in (0, -signal.SIGTERM), (status, stderr)
        recording = read_recording(path)
        assert recording.complete and recording.warnings == [], (name, recording.warnings)
        assert len(recording.snapshots) >= wanted


# --- hostile files on the command line ------------------------------------------------------------------


@pytest.mark.parametrize("case", HOSTILE, ids=[case.name for case in HOSTILE])
def test_hostile_files_on_the_command_line(tmp_path, case):
    path = case.build(tmp_path / f"{case.name}.jsonl")
    result = run("export", str(path), "--json", "-o", str(tmp_path / "out.json"), timeout=30)
    assert "Traceback" not in result.stderr
    if case.accepted:
        assert result.returncode == 0, result.stderr
        assert (tmp_path / "out.json").exists()
        assert "\x1b" not in result.stderr and "\x07" not in result.stderr
        return
    assert result.returncode == 2
    assert case.expect in one_line(result.stderr)
    for command, extra in (("replay", []), ("plot", ["-o", str(tmp_path / "o.png")])):
        other = run(command, str(path), *extra, timeout=30)
        assert other.returncode == 2 and case.expect in one_line(other.stderr), (command, other.stderr)


# --- files root writes ------------------------------------------------------------------------------------


@root_only
@pytest.mark.parametrize("command", ["export-json", "record-force", "plot-force", "export-csv"])
def test_root_pointed_at_dev_null_changes_nothing(tmp_path, command):
    recording = write_base(tmp_path / "r.jsonl")
    argv = {
        "export-json": ["export", str(recording), "--json", "-o", "/dev/null", "--force"],
        "record-force": ["record", "-o", "/dev/null", "--force", "--count", "1"],
        "plot-force": ["plot", str(recording), "-o", "/dev/null", "--force"],
        "export-csv": ["export", str(recording), "--csv", "-o", "/dev/null", "--force"],
    }[command]
    before = os.stat("/dev/null")
    try:
        result = run(*argv)
    finally:
        after = os.stat("/dev/null")
        if stat.S_IMODE(after.st_mode) != stat.S_IMODE(before.st_mode):
            os.chmod("/dev/null", stat.S_IMODE(before.st_mode))  # put the host right even when the test fails
    assert result.returncode == 2
    assert one_line(result.stderr).startswith("ksmtop: /dev/null: is a character device, not a")
    assert (stat.S_IMODE(after.st_mode), after.st_uid, after.st_rdev) == (
        stat.S_IMODE(before.st_mode),
        before.st_uid,
        before.st_rdev,
    )


@pytest.mark.parametrize("command", ["export", "record", "plot"])
def test_a_fifo_as_output_is_refused_without_waiting(tmp_path, command):
    recording = write_base(tmp_path / "r.jsonl")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    argv = {
        "export": ["export", str(recording), "--json", "-o", str(fifo), "--force"],
        "record": ["record", "-o", str(fifo), "--force", "--count", "1"],
        "plot": ["plot", str(recording), "-o", str(fifo), "--force"],
    }[command]
    result = run(*argv, timeout=30)
    assert result.returncode == 2
    assert one_line(result.stderr) == (
        f"ksmtop: {fifo}: is a FIFO, not a regular file: ksmtop writes only regular files"
    )
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


@root_only
def test_a_symlink_to_another_users_file_is_refused(tmp_path):
    recording = write_base(tmp_path / "r.jsonl")
    theirs = tmp_path / "theirs.txt"
    theirs.write_text("their data")
    theirs.chmod(0o644)
    os.chown(theirs, 65534, 65534)
    link = tmp_path / "out.json"
    link.symlink_to(theirs)
    for argv in (
        ["export", str(recording), "--json", "-o", str(link), "--force"],
        ["record", "-o", str(link), "--force", "--count", "1"],
    ):
        result = run(*argv)
        assert result.returncode == 2 and "is a symlink, not a regular file" in one_line(result.stderr)
    info = theirs.stat()
    assert theirs.read_text() == "their data" and stat.S_IMODE(info.st_mode) == 0o644 and info.st_uid == 65534
    assert link.is_symlink()


def test_export_and_plot_refuse_an_existing_file_without_force(tmp_path):
    recording = write_base(tmp_path / "r.jsonl")
    out = tmp_path / "out.json"
    out.write_text("precious")
    result = run("export", str(recording), "--json", "-o", str(out))
    assert result.returncode == 2 and one_line(result.stderr) == f"ksmtop: {out}: exists (--force replaces it)"
    assert out.read_text() == "precious"
    assert run("export", str(recording), "--json", "-o", str(out), "--force").returncode == 0
    assert out.read_text().startswith('{"format":"ksmtop-export"')
    png = tmp_path / "p.png"
    png.write_text("precious")
    result = run("plot", str(recording), "-o", str(png))
    assert result.returncode == 2 and "exists (--force replaces it)" in result.stderr
    assert png.read_text() == "precious"


def test_file_names_with_controls_reach_the_terminal_escaped(tmp_path):
    recording = write_base(tmp_path / "r.jsonl")
    hostile = tmp_path / "\x1b]0;TITLE\x07.jsonl"
    hostile.write_bytes(b"not json\n")
    for argv in (
        ["export", str(hostile), "--json", "-o", str(tmp_path / "o.json")],
        ["export", str(recording), "--json", "-o", str(tmp_path / "\x1b[2J.json")],
        ["record", "-o", str(tmp_path / "\x1b[2J.json"), "--count", "1"],
    ):
        result = run(*argv)
        assert "\x1b" not in result.stderr and "\x07" not in result.stderr, result.stderr
        assert "\\x1b" in result.stderr
