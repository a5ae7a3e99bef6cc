"""Damage confined: every line carries its checksum, every 60th sample is complete and (gzip) starts a new
member. A flipped bit anywhere gives back every sample written before it, nothing wrong, a warning naming where
it stopped, and the samples from the next complete one on. Old files (one member, no checksums) still read, and
the reader of the previous version reads the new files the same."""

from __future__ import annotations

import gzip
import importlib.util
import json
import random
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from ksmtop.recording import KEYFRAME_SAMPLES, RecordingError, RecordingWriter, read_recording, stored
from tests.conftest import REPO
from tests.support.synthetic import synthetic_session

SESSION = synthetic_session(guests=3, samples=150)
STORED = [stored(s) for s in SESSION]


def record(path: Path) -> list[int]:
    """Writes SESSION; returns the file size after each sample (where each sample's bytes end)."""
    ends = []
    with RecordingWriter(path, fsync=False) as writer:
        for snapshot in SESSION:
            writer.write(snapshot)
            ends.append(writer.size_bytes)
    return ends


def positions_in_session(snapshots) -> list[int]:
    """Where each snapshot read back sits in SESSION; fails when one is not exactly a stored sample, in order."""
    where, at = [], 0
    for snapshot in snapshots:
        while at < len(STORED) and STORED[at] != snapshot:
            at += 1
        assert at < len(STORED), "a sample read back is not one that was written"
        where.append(at)
        at += 1
    return where


def test_gzip_members_start_with_complete_samples(tmp_path):
    path = tmp_path / "s.jsonl.gz"
    record(path)
    data = path.read_bytes()
    members, lines, rest = 0, [], data
    while rest:
        decomp = zlib.decompressobj(wbits=31)
        lines.append(decomp.decompress(rest).splitlines())
        members += 1
        rest = decomp.unused_data
    assert members == 3  # samples 0, 60 and 120 start one each
    for index, member in enumerate(lines):
        first_sample = next(json.loads(line) for line in member if b'"type":"sample"' in line)
        assert first_sample["full"] is True and first_sample["seq"] == index * KEYFRAME_SAMPLES
        assert all(line.endswith(b'"}') and b',"crc":"' in line for line in member)
    assert gzip.decompress(data).count(b'"full":true') == 3


@pytest.mark.parametrize("name", ["s.jsonl.gz", "s.jsonl"])
def test_a_flipped_bit_loses_nothing_before_it(tmp_path, name):
    """Many random bit flips (seeded): every sample whose bytes end before the flip comes back, every sample that
    comes back is exactly one that was written, in order, and a loss is always named in a warning."""
    path = tmp_path / name
    ends = record(path)
    data = path.read_bytes()
    rng = random.Random(20240610)
    flips = [(rng.randrange(len(data)), rng.randrange(8)) for _ in range(150)]
    flips += [(at, 0) for at in (0, 3, 9, 10, len(data) - 9, len(data) - 1)]  # gzip header, trailer
    resumed = 0
    for at, bit in flips:
        damaged = bytearray(data)
        damaged[at] ^= 1 << bit
        (tmp_path / "d").write_bytes(damaged)
        before = sum(1 for end in ends if end <= at)
        try:
            recording = read_recording(tmp_path / "d")
        except Exception as exc:  # only when nothing was before the flip: the header itself is damaged
            assert before == 0, (at, exc)
            continue
        where = positions_in_session(recording.snapshots)
        assert where[:before] == list(range(before)), (at, recording.warnings)
        if len(where) < len(SESSION):
            assert any("damaged data after sample" in w for w in recording.warnings), (at, recording.warnings)
        resumed += any("reading went on at sample" in w for w in recording.warnings)
    assert resumed > 20  # damage before the last complete sample: the samples after the next one come back


def test_damage_warning_names_the_sample_the_member_and_the_samples_skipped(tmp_path):
    path = tmp_path / "s.jsonl.gz"
    ends = record(path)
    damaged = bytearray(path.read_bytes())
    damaged[ends[70] + 5] ^= 0xFF  # inside sample 72, in the second member (samples 60..119)
    path.write_bytes(damaged)
    recording = read_recording(path)
    assert positions_in_session(recording.snapshots) == [*range(71), *range(120, 150)]
    assert recording.complete
    [warning] = recording.warnings
    member = bytes(damaged).index(b"\x1f\x8b\x08", 10)
    assert warning.startswith(f"{path}: damaged data after sample 71 (in the gzip member at byte {member}: ")
    assert warning.endswith("49 samples skipped, reading went on at sample 121")


def test_old_single_member_gzip_without_checksums_still_reads(tmp_path):
    """The replayed fixtures of the screen tests were written before checksums; gzip one of them whole."""
    plain = REPO / "tests" / "tui" / "data" / "session.jsonl"
    assert b'"crc"' not in plain.read_bytes()
    packed = tmp_path / "session.jsonl.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    old, again = read_recording(plain), read_recording(packed)
    assert again.snapshots == old.snapshots and len(old.snapshots) == 24
    assert old.warnings == again.warnings == [] and old.complete


def test_damage_in_an_old_gzip_file_is_a_warning_or_one_error(tmp_path):
    """Without checksums the reader cannot tell a damaged line that still decompresses from a bad one: it gives
    the samples before the damage with a warning when zlib sees it, else one error naming the line."""
    plain = REPO / "tests" / "tui" / "data" / "session.jsonl"
    good = read_recording(plain).snapshots
    data = gzip.compress(plain.read_bytes())
    rng = random.Random(7)
    warned = 0
    for _ in range(40):
        damaged = bytearray(data)
        damaged[rng.randrange(10, len(data))] ^= 1 << rng.randrange(8)
        (tmp_path / "old.gz").write_bytes(damaged)
        try:
            recording = read_recording(tmp_path / "old.gz")
        except RecordingError as exc:
            assert str(exc).startswith(f"{tmp_path / 'old.gz'}: line ")
            continue
        if recording.snapshots != good:
            assert any("damaged data after sample" in w for w in recording.warnings)
            warned += 1
    assert warned > 0


PREVIOUS_FORMAT_COMMIT = "37148f4"
"""The last commit whose ksmtop/recording.py wrote the format before checksums and complete samples."""


def _previous_reader(tmp_path):
    """ksmtop/recording.py as it was before this format change, from the git history. Its one import of a
    name that has moved since (the knob table) is pointed at where the name lives now."""
    try:
        source = subprocess.run(
            ["git", "show", f"{PREVIOUS_FORMAT_COMMIT}:ksmtop/recording.py"], cwd=REPO, capture_output=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("no git history here (a shallow clone?)")
    source = source.replace(b"from ksmtop.collect.ksm import KNOBS", b"from ksmtop.knobs import KNOBS")
    module_path = tmp_path / "previous_recording.py"
    module_path.write_bytes(source)
    spec = importlib.util.spec_from_file_location("previous_recording", module_path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module


@pytest.mark.parametrize("name", ["s.jsonl", "s.jsonl.gz"])
def test_the_previous_reader_reads_new_files_the_same(tmp_path, name):
    """Checksums, "full" and "seq" are fields an older reader ignores; gzip members it reads one after another;
    a complete sample it applies as a delta that changes everything. (Damaged files it still refuses whole.)"""
    previous = _previous_reader(tmp_path)
    path = tmp_path / name
    record(path)
    recording = previous.read_recording(path)
    assert recording.warnings == [] and recording.complete
    assert recording.snapshots == STORED
