"""Recordings out to other tools: one JSON document, or CSV tables (one per guest metric) for spreadsheets.

Files are written as ksmtop.outfile says: only regular files, an existing one only with ``force``, each written
under a temporary name and renamed into place when complete (0600). Text cells of the CSV tables that a
spreadsheet would take for a formula (starting with = + - @, a tab or a carriage return) get a leading ' .
No UI imports."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path
from typing import Any

from ksmtop.codec import event_to_dict, snapshot_to_dict
from ksmtop.model import GuestSample, HostSample, KsmRates
from ksmtop.outfile import check_target, open_directory, replacing
from ksmtop.recording import Recording

GUEST_METRICS = tuple(
    f.name
    for f in dataclasses.fields(GuestSample)
    if f.name not in ("pid", "name", "kind", "start_ticks", "ksm_mergeable", "ksm_merge_any")
)
"""The numeric guest fields: one CSV table each."""
CSV_TABLES = (*(f"{metric}.csv" for metric in GUEST_METRICS), "host.csv", "events.csv")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
"""What makes a spreadsheet read a cell as a formula (OWASP, CSV injection)."""


def text_cell(text: str) -> str:
    """A text cell no spreadsheet runs: one that starts like a formula gets a leading single quote."""
    return "'" + text if text.startswith(FORMULA_START) else text


def export_document(recording: Recording) -> dict[str, Any]:
    return {
        "format": "ksmtop-export",
        "version": 1,
        "header": recording.header,
        "samples": [snapshot_to_dict(s) for s in recording.snapshots],
        "events": [event_to_dict(e) for e in recording.events],
        "warnings": recording.warnings,
    }


def export_json(recording: Recording, out: Path, force: bool = False) -> Path:
    with replacing(out, force) as handle:
        json.dump(export_document(recording), handle, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        handle.write("\n")
    return out


def guest_columns(recording: Recording) -> list[tuple[int, int, str]]:
    """(pid, start_ticks, 'name (pid)') for every guest seen, in order of first appearance."""
    seen: dict[tuple[int, int], str] = {}
    for snapshot in recording.snapshots:
        for guest in snapshot.guests:
            seen.setdefault((guest.pid, guest.start_ticks), f"{guest.name} ({guest.pid})")
    return [(pid, ticks, label) for (pid, ticks), label in seen.items()]


def _number(value: Any) -> Any:
    return "" if value is None else value


def export_csv(recording: Recording, out_dir: Path, force: bool = False) -> list[Path]:
    """One table per guest metric (rows: samples; columns: time, seconds since start, one per guest),
    plus host.csv (host, KSM rates and counters) and events.csv. Every table is checked before any is written."""
    with open_directory(out_dir) as dir_fd:
        for name in CSV_TABLES:
            check_target(out_dir / name, force, dir_fd)
        start = recording.snapshots[0].time if recording.snapshots else 0.0
        columns = guest_columns(recording)
        written = []
        for metric in GUEST_METRICS:
            path = out_dir / f"{metric}.csv"
            with replacing(path, force, dir_fd=dir_fd) as handle:
                writer = csv.writer(handle)
                writer.writerow(["time", "elapsed_s", *(text_cell(label) for _, _, label in columns)])
                for snapshot in recording.snapshots:
                    row: list[Any] = [f"{snapshot.time:.3f}", f"{snapshot.time - start:.3f}"]
                    by_key = {(g.pid, g.start_ticks): g for g in snapshot.guests}
                    for pid, ticks, _ in columns:
                        guest = by_key.get((pid, ticks))
                        row.append(_number(None if guest is None else getattr(guest, metric)))
                    writer.writerow(row)
            written.append(path)
        host_fields = [f.name for f in dataclasses.fields(HostSample)]
        rate_fields = [f.name for f in dataclasses.fields(KsmRates)]
        counters = sorted({k for s in recording.snapshots for k, v in s.ksm.values.items() if isinstance(v, int)})
        path = out_dir / "host.csv"
        with replacing(path, force, dir_fd=dir_fd) as handle:
            writer = csv.writer(handle)
            header = ["time", "elapsed_s", *host_fields, *rate_fields, *(f"ksm_{c}" for c in counters)]
            writer.writerow([text_cell(h) for h in header])
            for snapshot in recording.snapshots:
                values: list[Any] = [getattr(snapshot.host, f) for f in host_fields]
                values += [getattr(snapshot.rates, f) for f in rate_fields]
                values += [snapshot.ksm.get(c) for c in counters]
                cells = [text_cell(v) if isinstance(v, str) else _number(v) for v in values]
                writer.writerow([f"{snapshot.time:.3f}", f"{snapshot.time - start:.3f}", *cells])
        written.append(path)
        path = out_dir / "events.csv"
        with replacing(path, force, dir_fd=dir_fd) as handle:
            writer = csv.writer(handle)
            writer.writerow(["time", "elapsed_s", "kind", "text", "data"])
            for event in recording.events:
                data = json.dumps(event.data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
                writer.writerow(
                    [
                        f"{event.time:.3f}",
                        f"{event.time - start:.3f}",
                        text_cell(event.kind),
                        text_cell(event.text),
                        text_cell(data),
                    ]
                )
        written.append(path)
    return written
