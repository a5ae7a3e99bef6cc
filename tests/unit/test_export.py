"""CSV export: text cells a spreadsheet would run as a formula are neutralised (a leading '), numbers stay
numbers (a negative number is not a formula)."""

from __future__ import annotations

import csv
import dataclasses

import pytest

from ksmtop.export import export_csv, text_cell
from ksmtop.model import Event
from ksmtop.recording import RecordingWriter, read_recording
from tests.support.hostile_recordings import base_session

FORMULAS = ("=cmd|' /C calc'!A0", "+1+1", "-2+3", "@SUM(A1:A9)", '=HYPERLINK("http://x","y")')


@pytest.mark.parametrize(
    ("text", "cell"),
    [
        ("=1+1", "'=1+1"),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("@A1", "'@A1"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("vm-01", "vm-01"),
        ("a=b", "a=b"),
        ("", ""),
    ],
)
def test_text_cell(text, cell):
    assert text_cell(text) == cell


def table(path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


def test_names_and_event_texts_cannot_become_formulas(tmp_path):
    session = base_session()
    names = dict(zip((4000, 4001, 4002), FORMULAS, strict=False))
    hostile = []
    for index, snapshot in enumerate(session):
        guests = tuple(dataclasses.replace(g, name=names[g.pid]) for g in snapshot.guests)
        # a falling merged-pages rate: a negative number, which must stay a number
        guests = (dataclasses.replace(guests[0], merged_pages_per_s=-12.5), *guests[1:])
        events = (Event(snapshot.time - 0.1, "-note", FORMULAS[index % len(FORMULAS)], {"x": "=1"}),)
        host = dataclasses.replace(snapshot.host, trace_status="=perf off")
        hostile.append(dataclasses.replace(snapshot, guests=guests, events=events, host=host))
    with RecordingWriter(tmp_path / "r.jsonl", fsync=False) as writer:
        for snapshot in hostile:
            writer.write(snapshot)
    export_csv(read_recording(tmp_path / "r.jsonl"), tmp_path / "csv")

    header = table(tmp_path / "csv" / "rss_bytes.csv")[0]
    assert header[2:] == [f"'{name} ({pid})" for pid, name in names.items()]
    rates = table(tmp_path / "csv" / "merged_pages_per_s.csv")
    assert {row[2] for row in rates[2:]} == {"-12.5"}  # numbers are not quoted
    events = table(tmp_path / "csv" / "events.csv")[1:]
    assert [row[2] for row in events] == ["'-note"] * len(events)
    assert [row[3] for row in events] == [f"'{FORMULAS[i % len(FORMULAS)]}" for i in range(len(events))]
    assert {row[4] for row in events} == {'{"x":"=1"}'}  # a JSON object starts with {: no formula
    host = table(tmp_path / "csv" / "host.csv")
    column = host[0].index("trace_status")
    assert {row[column] for row in host[1:]} == {"'=perf off"}
    for path in (tmp_path / "csv").iterdir():
        for row in table(path)[1:]:
            assert not any(cell.startswith(("=", "+", "@")) for cell in row), (path.name, row)
            assert all(cell[1:].replace(".", "", 1).isdigit() for cell in row if cell.startswith("-")), row
