"""ksmtop record / export / plot / replay on the command line, on the real machine: a headless recorder of
merging processes, killed with SIGKILL (the file reads back, the tail reported cut), SIGTERM (closed cleanly),
exports checked against the JSON Schema, CSV rows, and a PNG that is the right size and not blank."""

from __future__ import annotations

import csv
import gzip
import itertools
import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import pytest

from ksmtop.recording import read_recording
from tests.conftest import REPO

KSMTOP = [sys.executable, "-m", "ksmtop"]
SESSION = REPO / "tests" / "tui" / "data" / "session.jsonl"
SCHEMA = json.loads((REPO / "docs" / "recording.schema.json").read_text())


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([*KSMTOP, *args], capture_output=True, text=True, timeout=timeout, cwd=REPO)


def lines_of(path: Path) -> list[dict]:
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    return [json.loads(line) for line in data.decode().splitlines()]


@pytest.mark.ksm
def test_record_count_while_processes_merge(tmp_path, ksm_guard, mergeable_processes):
    procs = [mergeable_processes(mib=8, fill="same", name=f"rec{i}") for i in range(2)]
    ksm_guard.set(pages_to_scan=5000, sleep_millisecs=10, run=1)
    out = tmp_path / "merge.jsonl.gz"
    result = run("record", "-o", str(out), "--interval", "0.2", "--count", "12", "--all")
    assert result.returncode == 0, result.stderr
    assert "recorded 12 samples" in result.stderr and "\r" not in result.stderr  # no progress line off a terminal
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    recording = read_recording(out)
    assert recording.complete and recording.warnings == []
    assert len(recording.snapshots) == 12
    assert recording.header["scope"] == "ksm" and recording.header["tunables"]["run"] == 1
    assert recording.header["page_size"] == os.sysconf("SC_PAGE_SIZE")
    last = recording.snapshots[-1]
    for proc in procs:
        assert last.guest(proc.pid) is not None and last.guest(proc.pid).name.startswith("rec")
    assert sum(last.guest(p.pid).ksm_merging_pages or 0 for p in procs) > 0
    validator = jsonschema.Draft202012Validator(SCHEMA)
    for line in lines_of(out):
        validator.validate(line)


def _start_recorder(path: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [*KSMTOP, "record", "-o", str(path), "--interval", "0.05"],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _samples_on_disk(path: Path) -> int:
    try:
        return len(read_recording(path).snapshots)
    except Exception:
        return 0


@pytest.mark.parametrize("name", ["killed.jsonl", "killed.jsonl.gz"])
def test_kill_9_loses_at_most_the_last_sample(tmp_path, name):
    path = tmp_path / name
    recorder = _start_recorder(path)
    try:
        deadline = time.monotonic() + 30
        while _samples_on_disk(path) < 8 and time.monotonic() < deadline:
            time.sleep(0.05)
        seen = _samples_on_disk(path)
        recorder.send_signal(signal.SIGKILL)
        recorder.wait(timeout=10)
    finally:
        if recorder.poll() is None:
            recorder.kill()
            recorder.wait(timeout=10)
    assert seen >= 8
    recording = read_recording(path)
    assert not recording.complete
    assert len(recording.warnings) == 1 and "tail was cut" in recording.warnings[0], recording.warnings
    assert len(recording.snapshots) >= seen  # everything that was on disk before the kill still reads
    times = [s.time for s in recording.snapshots]
    assert times == sorted(times) and len(set(times)) == len(times)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert max(gaps) < 1.0  # no sample missing in the middle
    replay = run("export", str(path), "--json", "-o", str(tmp_path / "out.json"))
    assert replay.returncode == 0 and "tail was cut" in replay.stderr


def test_sigterm_closes_the_file_cleanly(tmp_path):
    path = tmp_path / "term.jsonl.gz"
    recorder = _start_recorder(path)
    try:
        deadline = time.monotonic() + 30
        while _samples_on_disk(path) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        recorder.send_signal(signal.SIGTERM)
        assert recorder.wait(timeout=10) == 0
    finally:
        if recorder.poll() is None:
            recorder.kill()
            recorder.wait(timeout=10)
    recording = read_recording(path)
    assert recording.complete and recording.warnings == []


def test_record_refuses_to_overwrite_without_force(tmp_path):
    path = tmp_path / "keep.jsonl"
    path.write_text("precious")
    result = run("record", "-o", str(path), "--count", "1")
    assert result.returncode == 2 and "--force" in result.stderr and "Traceback" not in result.stderr
    assert path.read_text() == "precious"
    assert run("record", "-o", str(path), "--count", "1", "--force").returncode == 0
    assert len(read_recording(path).snapshots) == 1


def test_record_duration(tmp_path):
    path = tmp_path / "d.jsonl"
    started = time.monotonic()
    assert run("record", "-o", str(path), "--interval", "0.2", "--duration", "1s").returncode == 0
    assert 0.8 < time.monotonic() - started < 10
    assert 5 <= len(read_recording(path).snapshots) <= 6


def test_export_json_matches_the_schema(tmp_path):
    out = tmp_path / "session.json"
    result = run("export", str(SESSION), "--json", "-o", str(out))
    assert result.returncode == 0, result.stderr
    document = json.loads(out.read_text())
    validator = jsonschema.Draft202012Validator({"$ref": "#/$defs/export", "$defs": SCHEMA["$defs"]})
    validator.validate(document)
    assert len(document["samples"]) == 24 and document["warnings"] == []
    assert [e["kind"] for e in document["events"]] == ["note", "tunable", "tunable"]
    assert document["samples"][-1]["guests"][0]["name"] in ("guest-a", "guest-b", "random-c")
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


def test_export_csv_one_table_per_guest_metric(tmp_path):
    out = tmp_path / "csv"
    result = run("export", str(SESSION), "--csv", "-o", str(out))
    assert result.returncode == 0, result.stderr
    recording = read_recording(SESSION)
    with open(out / "ksm_merging_pages.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    header, body = rows[0], rows[1:]
    assert header[:2] == ["time", "elapsed_s"] and len(header) == 5
    assert {h.split(" (")[0] for h in header[2:]} == {"guest-a", "guest-b", "random-c"}
    assert len(body) == 24
    column = header.index(next(h for h in header if h.startswith("guest-a")))
    pid = int(header[column].split("(")[1].rstrip(")"))
    assert [int(r[column]) for r in body] == [s.guest(pid).ksm_merging_pages for s in recording.snapshots]
    for name in ("rss_bytes.csv", "cpu_percent.csv", "host.csv", "events.csv"):
        assert (out / name).exists()
    with open(out / "events.csv", newline="") as handle:
        assert len(list(csv.reader(handle))) == 4


def test_plot_png_is_the_right_size_and_not_blank(tmp_path):
    from PIL import Image, ImageStat

    from ksmtop.plot import HEIGHT_PX, WIDTH_PX, ksm_phases

    assert ksm_phases(read_recording(SESSION).snapshots) is not None  # KSM off, then on: the bars are drawn
    out = tmp_path / "session.png"
    result = run("plot", str(SESSION), "-o", str(out))
    assert result.returncode == 0, result.stderr
    with Image.open(out) as image:
        assert image.format == "PNG" and image.size == (WIDTH_PX, HEIGHT_PX)
        gray = image.convert("L")
        assert ImageStat.Stat(gray).stddev[0] > 20  # lines, bars and text, not one flat colour
        assert len(gray.getcolors(maxcolors=1 << 16) or []) > 50


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty file"),
        (b"not json\n", "line 1: not JSON"),
        (b'{"type":"header","format":"ksmtop-recording","version":9}\n', "format version 9"),
    ],
)
@pytest.mark.parametrize("command", ["replay", "export", "plot"])
def test_bad_files_get_one_clear_line(tmp_path, content, message, command):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(content)
    extra = {"replay": [], "export": ["--json", "-o", str(tmp_path / "o")], "plot": ["-o", str(tmp_path / "o.png")]}
    result = run(command, str(path), *extra[command])
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
