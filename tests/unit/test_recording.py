"""The recording format: round trip, compactness, owner-only files, redaction, and every kind of bad input
(one RecordingError naming the line, or a warning for a cut tail), fuzzed with hypothesis: whatever the reader
accepts also goes through export (JSON and CSV) and the stored() round trip."""

from __future__ import annotations

import dataclasses
import gzip
import json
import os
import stat
from pathlib import Path

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ksmtop.export import export_csv, export_document, export_json
from ksmtop.model import DomainSample, Event, Snapshot
from ksmtop.recording import (
    MAX_LINE_BYTES,
    RecordingError,
    RecordingWriter,
    read_recording,
    redact,
    redact_value,
    stored,
)
from ksmtop.recording.lines import dumps
from ksmtop.safetext import is_safe
from tests.support.hostile_recordings import check_accepted, recording_blobs
from tests.support.synthetic import synthetic_session

SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "docs" / "recording.schema.json").read_text())
SESSION = synthetic_session(guests=3, samples=40)


def write(path: Path, snapshots=SESSION, close: bool = True) -> Path:
    writer = RecordingWriter(path, fsync=False)
    for snapshot in snapshots:
        writer.write(snapshot)
    if close:
        writer.close()
    return path


@pytest.mark.parametrize("name", ["s.jsonl", "s.jsonl.gz"])
def test_round_trip_gives_the_same_snapshots(tmp_path, name):
    path = write(tmp_path / name)
    recording = read_recording(path)
    assert recording.warnings == []
    assert recording.complete
    assert recording.snapshots == [stored(s) for s in SESSION]
    assert recording.header["page_size"] == 4096 and recording.header["version"] == 1
    assert [g["name"] for g in recording.header["guests"]] == ["vm-00", "vm-01", "vm-02"]
    assert [e.text for e in recording.events] == ["switched KSM on"]
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == name.endswith(".gz")


def test_stored_keeps_what_the_screen_shows():
    snapshot = SESSION[5]
    kept = stored(snapshot)
    for before, after in zip(snapshot.guests, kept.guests, strict=True):
        assert after.rss_bytes == before.rss_bytes and after.ksm_merging_pages == before.ksm_merging_pages
        assert after.cpu_percent == pytest.approx(before.cpu_percent, rel=1e-5)
    assert kept.time == pytest.approx(snapshot.time, abs=0.001)


def test_every_line_matches_the_json_schema(tmp_path):
    path = write(tmp_path / "s.jsonl")
    validator = jsonschema.Draft202012Validator(SCHEMA)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["type"] for line in lines[:2]] == ["header", "sample"]
    assert {line["type"] for line in lines} == {"header", "sample", "event", "end"}
    for line in lines:
        validator.validate(line)
    with pytest.raises(jsonschema.ValidationError):
        validator.validate({**lines[1], "time": "noon"})


def test_samples_hold_only_what_changed(tmp_path):
    path = write(tmp_path / "s.jsonl")
    samples = [json.loads(line) for line in path.read_text().splitlines() if '"type":"sample"' in line]
    first, later = samples[0], samples[10]
    assert len(first["guests"][0]) > 15  # the first sample is complete
    assert "pids" in first and "pids" not in later
    assert all("name" not in guest and "start_ticks" not in guest for guest in later["guests"])


def test_size_target_ten_guests_thousand_samples_gzip(tmp_path):
    path = write(tmp_path / "s.jsonl.gz", synthetic_session(guests=10, samples=1000))
    per_guest_sample = path.stat().st_size / 10_000
    assert per_guest_sample <= 100, per_guest_sample


@pytest.mark.parametrize("name", ["s.jsonl", "s.jsonl.gz"])
def test_file_is_owner_only_whatever_the_umask(tmp_path, name):
    old = os.umask(0)
    try:
        path = write(tmp_path / name)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_existing_file_is_kept_unless_overwrite(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_text("precious")
    path.chmod(0o644)
    with pytest.raises(FileExistsError):
        RecordingWriter(path)
    assert path.read_text() == "precious"
    RecordingWriter(path, overwrite=True, fsync=False).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_write_after_close_is_ignored(tmp_path):
    writer = RecordingWriter(tmp_path / "s.jsonl", fsync=False)
    assert writer.write(SESSION[0])
    writer.close()
    assert writer.write(SESSION[1]) is False
    assert len(read_recording(tmp_path / "s.jsonl").snapshots) == 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("-object secret,id=sec0,data=c2VjcmV0,format=base64", "-object secret,id=sec0,data=<redacted>,format=base64"),
        ("-spice port=5900,password=hunter2", "-spice port=5900,password=<redacted>"),
        ("-vnc :1,password-secret=vnc0", "-vnc :1,password-secret=vnc0"),
        ("-drive file=iscsi://admin:s3cr3t@10.0.0.1/iqn/1", "-drive file=iscsi://admin:<redacted>@10.0.0.1/iqn/1"),
        ("-iscsi user=me,password=pw,initiator-name=x", "-iscsi user=me,password=<redacted>,initiator-name=x"),
        ("tool --password hunter2 --verbose", "tool --password <redacted> --verbose"),
        ("tool --token=abc123", "tool --token=<redacted>"),
        ("PASSPHRASE=xyz", "PASSPHRASE=<redacted>"),
        ("guest web-01 started", "guest web-01 started"),
        ("pages_to_scan 100 → 5000", "pages_to_scan 100 → 5000"),
    ],
)
def test_redact(text, expected):
    assert redact(text) == expected


def test_secrets_never_reach_the_file(tmp_path):
    snapshot = SESSION[0]
    guest = dataclasses.replace(snapshot.guests[0], name="vm password=hunter2")
    event = Event(snapshot.time, "note", "ran qemu -object secret,id=s,data=TOPSECRET", {"argv": ["token=abc"]})
    path = write(tmp_path / "s.jsonl", [dataclasses.replace(snapshot, guests=(guest,), events=(event,))])
    text = path.read_text()
    assert "hunter2" not in text and "TOPSECRET" not in text and "abc" not in text
    assert text.count("<redacted>") >= 4  # header guest name, sample guest name, event text, event data
    assert redact_value({"a": ("x", "password=p")}) == {"a": ["x", "password=<redacted>"]}


# --- bad input -------------------------------------------------------------------------------------------


def good_lines(tmp_path) -> list[bytes]:
    path = tmp_path / "good.jsonl"
    if not path.exists():
        write(path)
    return path.read_bytes().splitlines(keepends=True)


def test_killed_recorder_plain_tail_cut_mid_line(tmp_path):
    lines = good_lines(tmp_path)
    body = b"".join(lines[:-1])  # drop the end marker, then cut the last sample in the middle
    cut = body[: len(body) - len(lines[-2]) // 2]
    path = tmp_path / "cut.jsonl"
    path.write_bytes(cut)
    recording = read_recording(path)
    assert len(recording.snapshots) == len(SESSION) - 1
    assert len(recording.warnings) == 1 and "tail was cut" in recording.warnings[0]
    assert f"line {len(lines) - 1}" in recording.warnings[0]


def test_missing_end_marker_is_a_warning(tmp_path):
    path = write(tmp_path / "open.jsonl", close=False)
    recording = read_recording(path)
    assert len(recording.snapshots) == len(SESSION)
    assert not recording.complete
    assert "tail was cut" in recording.warnings[0] and "no end marker" in recording.warnings[0]


def test_gzip_cut_in_the_middle(tmp_path):
    path = write(tmp_path / "s.jsonl.gz", close=False)  # sync-flushed, never finished: like a killed recorder
    data = path.read_bytes()
    assert len(read_recording(path).snapshots) == len(SESSION)
    for keep in (len(data) - 7, len(data) * 2 // 3, len(data) // 3):
        (tmp_path / "cut.gz").write_bytes(data[:keep])
        recording = read_recording(tmp_path / "cut.gz")
        assert "tail was cut" in recording.warnings[0]
        assert 0 < len(recording.snapshots) <= len(SESSION)
        assert recording.snapshots == [stored(s) for s in SESSION[: len(recording.snapshots)]]


def resealed(data: dict) -> bytes:
    """A line changed by a test, with a valid checksum again (what a hand-made hostile file would have)."""
    return dumps({key: value for key, value in data.items() if key != "crc"})


def unsealed_lines(tmp_path) -> list[bytes]:
    """The good recording as a writer before checksums wrote it (no "crc", no "full"/"seq")."""
    out = []
    for line in good_lines(tmp_path):
        data = {k: v for k, v in json.loads(line).items() if k not in ("crc", "full", "seq")}
        out.append(json.dumps(data, separators=(",", ":")).encode() + b"\n")
    return out


def _lines_with(tmp_path, index: int, replacement: bytes, lines: list[bytes] | None = None) -> Path:
    lines = list(good_lines(tmp_path) if lines is None else lines)
    lines[index] = replacement
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b"".join(lines))
    return path


def header_with(tmp_path, **changes) -> Path:
    header = json.loads(good_lines(tmp_path)[0])
    header.update(changes)
    return _lines_with(tmp_path, 0, resealed(header))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.write_bytes(b""), "empty file"),
        (lambda p: p.write_bytes(b"\n\n"), "empty file"),
        (lambda p: p.write_bytes(b"hello world\n"), "line 1: not JSON"),
        (lambda p: p.write_bytes(b'{"type":"header","format":"ksmt'), "ends inside the header"),
        (lambda p: p.write_bytes(b"[1,2]\n"), "line 1: not a ksmtop recording"),
        (lambda p: p.write_bytes(b'{"time": 1}\n'), "line 1: not a ksmtop recording"),
        (lambda p: p.write_bytes(b"\x1f\x8bnot really gzip"), "line 1: the compressed data is damaged"),
        (lambda p: p.write_bytes(gzip.compress(b"")), "empty file"),
        (lambda p: p.write_bytes(b"\xff\xfe\x00garbage\n"), "line 1: not JSON"),
        (lambda p: p.write_bytes(b"[" * 100000 + b"\n"), "line 1: not JSON"),
        (lambda p: p.write_bytes(b"x" * (MAX_LINE_BYTES + 10)), "line 1 is longer than"),
        (lambda p: p.write_bytes(b"x" * (MAX_LINE_BYTES + 10) + b"\n"), "line 1 is longer than"),
    ],
)
def test_not_a_recording(tmp_path, make, message):
    path = tmp_path / "bad.jsonl"
    make(path)
    with pytest.raises(RecordingError, match=message) as caught:
        read_recording(path)
    assert str(path) in str(caught.value)


def test_missing_file(tmp_path):
    with pytest.raises(RecordingError, match="cannot open"):
        read_recording(tmp_path / "nope.jsonl")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"format": "atop"}, 'line 1: not a ksmtop recording: format is "atop"'),
        ({"version": 2}, "line 1: format version 2 \\(written by a newer ksmtop\\); this ksmtop reads 1"),
        ({"version": "1"}, "line 1: the header has no format version"),
        ({"page_size": "4k"}, "line 1: header.page_size"),
        ({"guests": {}}, "line 1: header.guests"),
    ],
)
def test_bad_header(tmp_path, changes, message):
    with pytest.raises(RecordingError, match=message):
        read_recording(header_with(tmp_path, **changes))


def _sample_with(tmp_path, index: int, change) -> Path:
    lines = good_lines(tmp_path)
    data = json.loads(lines[index])
    change(data)
    return _lines_with(tmp_path, index, resealed(data))


@pytest.mark.parametrize(
    ("line", "change", "message"),
    [
        (1, lambda d: d.update(time="noon"), "line 2: sample.time"),
        (1, lambda d: d["guests"][0].update(rss_bytes="1 GiB"), 'line 2: guest.rss_bytes should be int, not "1 GiB"'),
        (1, lambda d: d["guests"][0].update(rss_bytes=1.5), "line 2: guest.rss_bytes should be int"),
        (1, lambda d: d["guests"][0].update(ksm_mergeable=1), "line 2: guest.ksm_mergeable should be bool"),
        (1, lambda d: d["guests"][0].pop("name"), "line 2: guest 4000 appears without name"),
        (1, lambda d: d["host"].pop("page_size"), "line 2: the first sample has no page_size"),
        (1, lambda d: d.update(scope="all"), "line 2: sample.scope"),
        (1, lambda d: d.update(guests={}), "line 2: sample.guests should be a list"),
        (1, lambda d: d.update(pids=["a"]), "line 2: sample.pids"),
        (2, lambda d: d["guests"].append({"pid": 9}), "line 3: guest 9 is not in the sample's pids"),
        (1, lambda d: d["ksm"]["values"].update(run=[1]), "line 2: ksm.values.run"),
        (1, lambda d: d["rates"].update(sharing_ratio="high"), "line 2: rates.sharing_ratio"),
    ],
)
def test_wrong_types_name_the_line(tmp_path, line, change, message):
    with pytest.raises(RecordingError, match=message):
        read_recording(_sample_with(tmp_path, line, change))


def test_bad_line_in_the_middle_of_an_unsealed_file_is_an_error(tmp_path):
    """Files written before lines carried checksums: a bad line cannot be told from damage, so it is an error."""
    old = unsealed_lines(tmp_path)
    with pytest.raises(RecordingError, match="line 5: not JSON"):
        read_recording(_lines_with(tmp_path, 4, b"{oops\n", old))
    with pytest.raises(RecordingError, match="line 5: expected an object, got list"):
        read_recording(_lines_with(tmp_path, 4, b"[]\n", old))
    with pytest.raises(RecordingError, match="line 5: NaN is not a number JSON allows"):
        read_recording(_lines_with(tmp_path, 4, b'{"type":"sample","time":NaN}\n', old))


def test_sealed_line_that_is_not_what_was_written_is_damage(tmp_path):
    """In a sealed file a line that fails its checksum is damaged: a warning, the samples before it, and the
    reader goes on at the next complete sample (none in 40 samples here: the end marker says how many were lost)."""
    recording = read_recording(_lines_with(tmp_path, 4, b"{oops\n"))
    assert recording.snapshots == [stored(s) for s in SESSION[:3]]  # line 1 is the header, 2-4 samples
    assert recording.warnings == [
        f"{tmp_path / 'bad.jsonl'}: damaged data after sample 3 (line 5 does not match its checksum): "
        "37 samples skipped, reading went on at the end marker"
    ]
    assert recording.complete


def test_unknown_object_types_are_skipped_with_a_warning(tmp_path):
    recording = read_recording(_lines_with(tmp_path, 4, resealed({"type": "bookmark", "time": 1})))
    assert 'line 5: unknown object type "bookmark" skipped' in recording.warnings[0]
    assert len(recording.snapshots) == len(SESSION) - 1


def test_only_a_header(tmp_path):
    path = tmp_path / "h.jsonl"
    path.write_bytes(good_lines(tmp_path)[0])
    recording = read_recording(path)
    assert recording.snapshots == [] and any("no sample" in w for w in recording.warnings)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzzed_input_gives_a_recording_or_one_recording_error(tmp_path, data):
    """Mutations of a real recording (cut, flipped bytes, spliced lines, gzip, random JSON, random field values
    with valid checksums) and raw noise: a Recording, or one RecordingError naming the file. What is read goes
    through export (JSON, CSV) and is recorded again and read back as stored() says."""
    blob = data.draw(recording_blobs(good_lines(tmp_path)))
    path = tmp_path / "fuzz.jsonl"
    path.write_bytes(blob)
    try:
        recording = read_recording(path)
    except RecordingError as exc:
        assert str(exc).startswith(f"{path}: ") and "\n" not in str(exc) and is_safe(str(exc), 10_000)
        return
    check_accepted(recording, tmp_path)


def test_schema_names_the_model_fields():
    from ksmtop.model import GuestSample, HostSample, KsmRates

    snapshot = SCHEMA["$defs"]["snapshot"]["properties"]
    for key, cls in (("host", HostSample), ("rates", KsmRates)):
        assert set(snapshot[key]["properties"]) == {f.name for f in dataclasses.fields(cls)}
    assert set(snapshot["guests"]["items"]["properties"]) == {f.name for f in dataclasses.fields(GuestSample)}

    for where in ("sample", "snapshot"):
        domain = SCHEMA["$defs"][where]["properties"]["domains"]["items"]["properties"]
        assert set(domain) == {f.name for f in dataclasses.fields(DomainSample)}, where
    assert set(snapshot) == {f.name for f in dataclasses.fields(Snapshot)}


# --- libvirt domains, remote mode ----------------------------------------------------------------------------

RUNNING = DomainSample(
    name="web",
    uuid="6f1c5e8a-0000-4000-8000-000000000001",
    state="running",
    vcpus=2,
    max_memory_bytes=4 * 1024**3,
    memory_bytes=2 * 1024**3,
    persistent=True,
    pid=4000,
    rss_bytes=1536 * 1024**2,
    minor_faults=120_000,
    major_faults=3,
    faults_per_s=1234.56789012,
)
SHUT_OFF = DomainSample(
    name="db",
    uuid="6f1c5e8a-0000-4000-8000-000000000002",
    state="shut off",
    vcpus=4,
    max_memory_bytes=8 * 1024**3,
    memory_bytes=8 * 1024**3,
    persistent=True,
)


def libvirt_session() -> list[Snapshot]:
    """Six local samples: libvirt connects at the third, 'db' starts at the fourth."""
    started = dataclasses.replace(SHUT_OFF, state="running", pid=4001, rss_bytes=1024**3, faults_per_s=0.5)
    snapshots = []
    for index, snapshot in enumerate(SESSION[:6]):
        status = "connecting to qemu:///system" if index < 2 else "connected to qemu:///system"
        domains = (RUNNING, SHUT_OFF) if index < 3 else (RUNNING, started)
        snapshots.append(dataclasses.replace(snapshot, domains=domains, libvirt_status=status))
    return snapshots


def remote_session() -> list[Snapshot]:
    """What RemoteSource gives: no guests, no host AnonPages, domains from libvirt."""
    return [
        dataclasses.replace(
            snapshot,
            host=dataclasses.replace(snapshot.host, anon_bytes=None),
            guests=(),
            domains=(dataclasses.replace(RUNNING, pid=None, faults_per_s=float(index)), SHUT_OFF),
            mode="remote",
            libvirt_status="connected to qemu+ssh://admin:hunter2@lab/system",
        )
        for index, snapshot in enumerate(SESSION[:4])
    ]


def sample_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if '"type":"sample"' in line]


@pytest.mark.parametrize("name", ["s.jsonl", "s.jsonl.gz"])
def test_domains_and_libvirt_status_round_trip(tmp_path, name):
    session = libvirt_session()
    recording = read_recording(write(tmp_path / name, session))
    assert recording.warnings == []
    assert recording.snapshots == [stored(s) for s in session]
    assert [d.pid for d in recording.snapshots[0].domains] == [4000, None]
    assert [d.pid for d in recording.snapshots[-1].domains] == [4000, 4001]
    assert recording.snapshots[0].domains[0].faults_per_s == pytest.approx(1234.57)
    assert [s.libvirt_status for s in recording.snapshots] == ["connecting to qemu:///system"] * 2 + [
        "connected to qemu:///system"
    ] * 4
    assert {s.mode for s in recording.snapshots} == {"local"}


def test_domains_and_status_are_written_only_when_they_change(tmp_path):
    samples = sample_lines(write(tmp_path / "s.jsonl", libvirt_session()))
    assert [("domains" in s, "libvirt_status" in s, "mode" in s) for s in samples] == [
        (True, True, True),
        (False, False, False),
        (False, True, False),
        (True, False, False),
        (False, False, False),
        (False, False, False),
    ]
    assert [d["name"] for d in samples[3]["domains"]] == ["web", "db"]  # the whole list, not a delta
    assert samples[0]["domains"][1]["pid"] is None


def test_remote_mode_round_trip_without_host_anon(tmp_path):
    session = remote_session()
    path = write(tmp_path / "s.jsonl", session)
    recording = read_recording(path)
    assert recording.snapshots == [stored(s) for s in session]
    assert all(s.mode == "remote" and s.host.anon_bytes is None and s.guests == () for s in recording.snapshots)
    assert recording.snapshots[-1].domains[0].faults_per_s == 3.0  # the list changed every sample
    assert recording.snapshots[0].libvirt_status == "connected to qemu+ssh://admin:<redacted>@lab/system"
    assert "hunter2" not in path.read_text()


def test_domain_lines_match_the_json_schema(tmp_path):
    validator = jsonschema.Draft202012Validator(SCHEMA)
    for session, name in ((libvirt_session(), "local.jsonl"), (remote_session(), "remote.jsonl")):
        for line in write(tmp_path / name, session).read_text().splitlines():
            validator.validate(json.loads(line))
    line = sample_lines(tmp_path / "local.jsonl")[0]
    line["domains"][0]["vcpus"] = "two"
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(line)


def domain_lines(tmp_path) -> list[bytes]:
    path = tmp_path / "domains.jsonl"
    if not path.exists():
        write(path, libvirt_session())
    return path.read_bytes().splitlines(keepends=True)


def _domain_sample_with(tmp_path, index: int, change) -> Path:
    lines = domain_lines(tmp_path)
    data = json.loads(lines[index])
    change(data)
    lines[index] = resealed(data)
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b"".join(lines))
    return path


@pytest.mark.parametrize(
    ("line", "change", "message"),
    [
        (1, lambda d: d["domains"][0].update(vcpus="two"), 'line 2: domain.vcpus should be int, not "two"'),
        (1, lambda d: d["domains"][1].update(pid="4001"), "line 2: domain.pid should be int or null"),
        (4, lambda d: d["domains"][0].update(persistent=1), "line 5: domain.persistent should be bool"),
        (1, lambda d: d["domains"][0].pop("uuid"), 'line 2: domain "web" appears without uuid'),
        (1, lambda d: d["domains"][0].pop("name"), "line 2: a domain appears without name"),
        (1, lambda d: d["domains"].append("web"), "line 2: domain should be an object, not str"),
        (1, lambda d: d.update(domains={}), "line 2: sample.domains should be a list"),
        (1, lambda d: d.update(mode="cloud"), "line 2: sample.mode should be 'local' or 'remote'"),
        (4, lambda d: d.update(libvirt_status=1), "line 5: sample.libvirt_status should be a string or null"),
    ],
)
def test_malformed_domain_rows_name_the_line(tmp_path, line, change, message):
    with pytest.raises(RecordingError, match=message) as caught:
        read_recording(_domain_sample_with(tmp_path, line, change))
    assert "\n" not in str(caught.value)


def test_recording_without_the_new_keys_reads_with_defaults(tmp_path):
    """A file written before domains, mode and libvirt_status existed."""
    lines = []
    for raw in good_lines(tmp_path):
        data = json.loads(raw)
        if data["type"] == "sample":
            for key in ("domains", "mode", "libvirt_status"):
                data.pop(key, None)
        lines.append(json.dumps(data).encode() + b"\n")
    path = tmp_path / "old.jsonl"
    path.write_bytes(b"".join(lines))
    recording = read_recording(path)
    assert recording.warnings == []
    assert recording.snapshots == [stored(s) for s in SESSION]
    assert all(s.domains == () and s.mode == "local" and s.libvirt_status is None for s in recording.snapshots)


def test_export_carries_domains_in_json_and_survives_csv(tmp_path):

    for session, name in ((libvirt_session(), "local"), (remote_session(), "remote")):
        recording = read_recording(write(tmp_path / f"{name}.jsonl", session))
        out = export_json(recording, tmp_path / f"{name}.json")
        document = json.loads(out.read_text())
        assert document == json.loads(json.dumps(export_document(recording)))
        jsonschema.Draft202012Validator({"$ref": "#/$defs/export", "$defs": SCHEMA["$defs"]}).validate(document)
        assert [d["name"] for d in document["samples"][-1]["domains"]] == ["web", "db"]
        assert document["samples"][0]["mode"] == name
        files = export_csv(recording, tmp_path / f"{name}-csv")
        assert all(path.exists() for path in files)
    host_csv = (tmp_path / "remote-csv" / "host.csv").read_text().splitlines()
    column = host_csv[0].split(",").index("anon_bytes")
    assert all(row.split(",")[column] == "" for row in host_csv[1:])
