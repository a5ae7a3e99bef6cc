"""Hostile recordings: files another user (or a broken disk) hands to `ksmtop replay`, `export` and `plot`.

Every case is a whole file whose lines carry valid checksums (an attacker computes them too), so what is tested
is the reader's validation, not the damage detection. Use them for the reader, export and the replay screen:

    for case, path in hostile_recordings(tmp_path):
        if case.accepted:   # read_recording returns a Recording (maybe with warnings); replay it
            ...
        else:               # read_recording raises RecordingError whose message holds case.expect
            ...

``recording_blobs()`` is the hypothesis strategy the reader's fuzz test draws from (mutations of a real
recording and raw noise); the replay screen's fuzz can draw from it too.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from ksmtop.export import CSV_TABLES, export_csv, export_document, export_json
from ksmtop.model import DomainSample, Event, Snapshot
from ksmtop.recording import Recording, RecordingWriter, read_recording, stored
from ksmtop.recording.lines import seal
from ksmtop.safetext import is_safe
from tests.support.synthetic import synthetic_session

CONTROLS = "\x1b]0;TITLE\x07\x1b[31mred\x9b2J\u202eevil\x00"
"""An OSC title, a colour, a C1 CSI, a bidi override and a NUL: none may reach a terminal raw."""
MARKUP = "[/][@click=app.quit]quit[/] [link=https://example.invalid]x[/link] vm[x=1=2]y [b]"
"""Textual/Rich markup: the screen must show it as text; the reader returns it as a plain str, unchanged."""


@dataclass(frozen=True)
class Hostile:
    name: str
    build: Callable[[Path], Path]
    accepted: bool
    """True: the reader returns a Recording; False: it raises RecordingError."""
    expect: str
    """Accepted: a fragment of one warning ('' for none). Refused: a fragment of the error message."""


def base_session(samples: int = 6) -> list[Snapshot]:
    """A small local session with a libvirt domain, a note and a tunable event."""
    domain = DomainSample("web", "6f1c5e8a-0000-4000-8000-000000000001", "running", 2, 2 << 30, 2 << 30, True, 4000)
    session = []
    for index, snapshot in enumerate(synthetic_session(guests=3, samples=samples)):
        events = (Event(snapshot.time - 0.1, "note", f"note {index}", {"n": index}),) if index in (1, 3) else ()
        session.append(
            dataclasses.replace(
                snapshot, domains=(domain,), libvirt_status="connected to qemu:///system", events=events
            )
        )
    return session


def write_base(path: Path, samples: int = 6) -> Path:
    with RecordingWriter(path, fsync=False) as writer:
        for snapshot in base_session(samples):
            writer.write(snapshot)
    return path


def objects(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def sealed_line(obj: dict[str, Any], raw: dict[str, str] | None = None) -> bytes:
    """One line with a valid checksum; ``raw`` replaces JSON placeholders by raw text (1e999, NaN, digits)."""
    obj = {key: value for key, value in obj.items() if key != "crc"}
    body = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    for placeholder, text in (raw or {}).items():
        body = body.replace(json.dumps(placeholder), text)
    return seal(body.encode())


def _edited(edit: Callable[[list[dict[str, Any]]], dict[str, str] | None], compress: bool = False) -> Callable:
    def build(path: Path) -> Path:
        lines = objects(write_base(path.with_suffix(".base")))
        raw = edit(lines)
        blob = b"".join(sealed_line(obj, raw) for obj in lines)
        path.write_bytes(gzip.compress(blob) if compress else blob)
        return path

    return build


def _samples(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [line for line in lines if line["type"] == "sample"]


def _events(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [line for line in lines if line["type"] == "event"]


def _raw_in_guest(text: str, field: str = "rss_bytes") -> Callable:
    def edit(lines: list[dict[str, Any]]) -> dict[str, str]:
        _samples(lines)[2]["guests"][0][field] = "@RAW@"
        return {"@RAW@": text}

    return edit


def _everywhere(text: str) -> Callable:
    """``text`` in every string a recording carries that a screen or a file shows."""

    def edit(lines: list[dict[str, Any]]) -> None:
        header, first = lines[0], _samples(lines)[0]
        header["host"] = f"host{text}"
        header["kernel"] = f"6.1{text}"
        header["guests"][0]["name"] = f"vm{text}"
        first["guests"][0]["name"] = f"vm{text}"
        first["guests"][1]["kind"] = f"qemu{text}"
        first["host"]["trace_status"] = f"perf off{text}"
        first["ksm"]["error"] = f"ksm error{text}"
        first["ksm"]["values"]["advisor_mode"] = f"none{text}"
        first["ksm"]["values"][f"knob{text}"] = 1
        first["ksm"]["choices"]["advisor_mode"] = [f"none{text}", "scan-time"]
        first["libvirt_status"] = f"connected{text}"
        first["domains"][0]["name"] = f"web{text}"
        first["domains"][0]["state"] = f"running{text}"
        for event in _events(lines):
            event["kind"] = f"note{text}"
            event["text"] = f"event{text}"
            event["data"] = {f"key{text}": [f"value{text}", {"deep": text}]}

    return edit


def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def _directory(path: Path) -> Path:
    path.mkdir()
    return path


def _set(where: Callable[[list[dict[str, Any]]], dict[str, Any]], key: str, value: Any) -> Callable:
    def edit(lines: list[dict[str, Any]]) -> None:
        where(lines)[key] = value

    return edit


def _header(lines: list[dict[str, Any]]) -> dict[str, Any]:
    return lines[0]


def _second_sample(lines: list[dict[str, Any]]) -> dict[str, Any]:
    return _samples(lines)[1]


def _first_event(lines: list[dict[str, Any]]) -> dict[str, Any]:
    return _events(lines)[0]


def _duplicate_pids(lines: list[dict[str, Any]]) -> None:
    first = _samples(lines)[0]
    first["pids"] = [*first["pids"], first["pids"][0]]


def _backwards(lines: list[dict[str, Any]]) -> None:
    _samples(lines)[3]["time"] -= 3600


def _nested(lines: list[dict[str, Any]]) -> None:
    data: Any = "bottom"
    for _ in range(50):
        data = {"d": data}
    _first_event(lines)["data"] = data


HOSTILE: tuple[Hostile, ...] = (
    Hostile("duplicate-pids", _edited(_duplicate_pids), False, "lists PID 4000 twice"),
    Hostile("number-1e999", _edited(_raw_in_guest("1e999")), False, "1e999 is out of range"),
    Hostile("number-minus-1e999", _edited(_raw_in_guest("-1e999")), False, "out of range"),
    Hostile("number-NaN", _edited(_raw_in_guest("NaN")), False, "NaN is not a number JSON allows"),
    Hostile("number-Infinity", _edited(_raw_in_guest("Infinity")), False, "not a number JSON allows"),
    Hostile("integer-4000-digits", _edited(_raw_in_guest("9" * 4000)), False, "4000 digits is out of range"),
    Hostile("integer-5000-digits", _edited(_raw_in_guest("9" * 5000)), False, "5000 digits is out of range"),
    Hostile("integer-2**70", _edited(_raw_in_guest(str(2**70))), False, "guest.rss_bytes is out of range"),
    Hostile("float-1e300-rate", _edited(_raw_in_guest("1e300", "cpu_percent")), False, "cpu_percent is out of"),
    Hostile("float-in-an-int-field", _edited(_raw_in_guest("1.5")), False, "guest.rss_bytes should be int, not 1.5"),
    Hostile("event-time-minus-1e18", _edited(_set(_first_event, "time", -1e18)), False, "event.time is not a time"),
    Hostile("sample-time-1e300", _edited(_set(_second_sample, "time", 1e300)), False, "sample.time is out of range"),
    Hostile("sample-interval-negative", _edited(_set(_second_sample, "interval_s", -5)), False, "out of range"),
    Hostile("sample-time-backwards", _edited(_backwards), True, "the sample time goes back"),
    Hostile("header-interval-abc", _edited(_set(_header, "interval_s", "abc")), False, "header.interval_s should"),
    Hostile("header-interval-1e308", _edited(_set(_header, "interval_s", 1e308)), False, "header.interval_s is out"),
    Hostile("header-start-time-negative", _edited(_set(_header, "start_time", -1e18)), False, "header.start_time"),
    Hostile("header-page-size-zero", _edited(_set(_header, "page_size", 0)), False, "header.page_size is out"),
    Hostile("event-data-nested-50", _edited(_nested), False, "nested deeper than"),
    Hostile("controls-everywhere", _edited(_everywhere(CONTROLS)), True, ""),
    Hostile("controls-everywhere-gzip", _edited(_everywhere(CONTROLS), compress=True), True, ""),
    Hostile("markup-everywhere", _edited(_everywhere(MARKUP)), True, ""),
    Hostile("long-strings", _edited(_everywhere("x" * 100_000)), True, ""),
    Hostile("fifo", _fifo, False, "is a FIFO, not a regular file"),
    Hostile("directory", _directory, False, "is a directory, not a regular file"),
)


def hostile_recordings(directory: Path) -> Iterator[tuple[Hostile, Path]]:
    """Each case built as a file in ``directory``."""
    for case in HOSTILE:
        yield case, case.build(directory / f"{case.name}.jsonl")


def accepted_recordings(directory: Path) -> Iterator[tuple[Hostile, Path]]:
    """Only the files the reader accepts (what a replay screen gets to show)."""
    for case in HOSTILE:
        if case.accepted:
            yield case, case.build(directory / f"{case.name}.jsonl")


# --- checks ---------------------------------------------------------------------------------------------


def strings_in(value: Any) -> list[str]:
    """Every string inside snapshots, events, dicts and lists (keys too)."""
    if isinstance(value, str):
        return [value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [text for f in dataclasses.fields(value) for text in strings_in(getattr(value, f.name))]
    if isinstance(value, dict):
        return [text for k, v in value.items() for text in [*strings_in(k), *strings_in(v)]]
    if isinstance(value, list | tuple):
        return [text for item in value for text in strings_in(item)]
    return []


def check_accepted(recording: Recording, out: Path) -> None:
    """What the reader accepts is safe to show (plain str, no controls) and goes through export (JSON, CSV) and
    a second recording, which reads back as stored() says."""
    texts = strings_in([recording.snapshots, recording.events, recording.header])
    assert all(type(text) is str and is_safe(text, 1000) for text in texts)
    assert all(is_safe(w, 1000) and "\n" not in w for w in recording.warnings)
    document = json.loads(export_json(recording, out / "export.json", force=True).read_text())
    assert document == json.loads(json.dumps(export_document(recording)))
    assert len(document["samples"]) == len(recording.snapshots)
    files = export_csv(recording, out / "csv", force=True)
    assert len(files) == len(CSV_TABLES) and all(path.stat().st_size > 0 for path in files)
    if not recording.snapshots:
        return
    again = RecordingWriter(out / "again.jsonl.gz", fsync=False, overwrite=True)
    for snapshot in recording.snapshots:
        assert again.write(snapshot)
    again.close()
    assert read_recording(again.path).snapshots == [stored(s) for s in recording.snapshots]


# --- fuzz ------------------------------------------------------------------------------------------------

_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10)
    | st.sampled_from([CONTROLS, MARKUP, "[/]", "\x1b", 2**64, -(2**63) - 1, 1e308, -1e18]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@st.composite
def recording_blobs(draw: st.DrawFn, base: list[bytes]) -> bytes:
    """A recording's bytes, mutated: raw noise, a cut, flipped bytes, spliced lines, a cut gzip, a line replaced
    by random JSON (sealed or not), a field of a real line set to a random value (sealed)."""
    choice = draw(st.sampled_from(["noise", "cut", "flip", "splice", "gzip-cut", "gzip-flip", "json", "field"]))
    if choice == "noise":
        return draw(st.binary(max_size=2000))
    lines = list(base)
    if choice == "json":
        index = draw(st.integers(0, len(lines) - 1))
        value = draw(_JSON)
        text = json.dumps(value).encode()
        lines[index] = seal(text) if isinstance(value, dict) and value and draw(st.booleans()) else text + b"\n"
        return b"".join(lines)
    if choice == "field":
        index = draw(st.integers(0, len(lines) - 1))
        obj = json.loads(lines[index])
        target = obj
        for key in ("guests", "host", "ksm", "domains", "data"):
            if key in obj and draw(st.booleans()):
                target = obj[key]
                if isinstance(target, list) and target:
                    target = target[draw(st.integers(0, len(target) - 1))]
                break
        if isinstance(target, dict) and target:
            key = draw(st.sampled_from(sorted(target)))
            target[key] = draw(_JSON)
        try:
            lines[index] = sealed_line(obj)
        except ValueError:
            pass
        return b"".join(lines)
    blob = b"".join(lines)
    if choice.startswith("gzip"):
        blob = gzip.compress(blob)
    if choice in ("cut", "gzip-cut"):
        return blob[: draw(st.integers(0, len(blob)))]
    if choice in ("flip", "gzip-flip"):
        for _ in range(draw(st.integers(1, 8))):
            at = draw(st.integers(0, len(blob) - 1))
            blob = blob[:at] + bytes([draw(st.integers(0, 255))]) + blob[at + 1 :]
        return blob
    a, b = draw(st.integers(0, len(base) - 1)), draw(st.integers(0, len(base) - 1))
    lines.insert(a, base[b])
    return b"".join(lines)
