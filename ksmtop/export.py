"""Recordings out to other tools: one JSON document, or CSV tables (one per guest metric) for spreadsheets.
No UI imports."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from ksmtop.model import GuestSample, HostSample, KsmRates, to_dict
from ksmtop.recording import Recording

GUEST_METRICS = tuple(
    f.name
    for f in dataclasses.fields(GuestSample)
    if f.name not in ("pid", "name", "kind", "start_ticks", "ksm_mergeable", "ksm_merge_any")
)
"""The numeric guest fields: one CSV table each."""


def _open_private(path: Path) -> Any:
    """Exports hold the same names as the recording: owner-only too."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    os.fchmod(fd, 0o600)
    return os.fdopen(fd, "w", newline="", encoding="utf-8")


def export_document(recording: Recording) -> dict[str, Any]:
    return {
        "format": "ksmtop-export",
        "version": 1,
        "header": recording.header,
        "samples": [to_dict(s) for s in recording.snapshots],
        "events": [dataclasses.asdict(e) for e in recording.events],
        "warnings": recording.warnings,
    }


def export_json(recording: Recording, out: Path) -> Path:
    with _open_private(out) as handle:
        json.dump(export_document(recording), handle, ensure_ascii=False, separators=(",", ":"))
        handle.write("\n")
    return out


def guest_columns(recording: Recording) -> list[tuple[int, int, str]]:
    """(pid, start_ticks, 'name (pid)') for every guest seen, in order of first appearance."""
    seen: dict[tuple[int, int], str] = {}
    for snapshot in recording.snapshots:
        for guest in snapshot.guests:
            seen.setdefault((guest.pid, guest.start_ticks), f"{guest.name} ({guest.pid})")
    return [(pid, ticks, label) for (pid, ticks), label in seen.items()]


def export_csv(recording: Recording, out_dir: Path) -> list[Path]:
    """One table per guest metric (rows: samples; columns: time, seconds since start, one per guest),
    plus host.csv (host, KSM rates and counters) and events.csv."""
    out_dir.mkdir(parents=True, exist_ok=True)
    start = recording.snapshots[0].time if recording.snapshots else 0.0
    columns = guest_columns(recording)
    written = []
    for metric in GUEST_METRICS:
        path = out_dir / f"{metric}.csv"
        with _open_private(path) as handle:
            writer = csv.writer(handle)
            writer.writerow(["time", "elapsed_s", *(label for _, _, label in columns)])
            for snapshot in recording.snapshots:
                row: list[Any] = [f"{snapshot.time:.3f}", f"{snapshot.time - start:.3f}"]
                by_key = {(g.pid, g.start_ticks): g for g in snapshot.guests}
                for pid, ticks, _ in columns:
                    guest = by_key.get((pid, ticks))
                    value = None if guest is None else getattr(guest, metric)
                    row.append("" if value is None else value)
                writer.writerow(row)
        written.append(path)
    host_fields = [f.name for f in dataclasses.fields(HostSample)] + [f.name for f in dataclasses.fields(KsmRates)]
    counters = sorted({k for s in recording.snapshots for k, v in s.ksm.values.items() if isinstance(v, int)})
    path = out_dir / "host.csv"
    with _open_private(path) as handle:
        writer = csv.writer(handle)
        writer.writerow(["time", "elapsed_s", *host_fields, *(f"ksm_{c}" for c in counters)])
        for snapshot in recording.snapshots:
            values = [getattr(snapshot.host, f, None) for f in host_fields[: len(dataclasses.fields(HostSample))]]
            values += [getattr(snapshot.rates, f) for f in host_fields[len(dataclasses.fields(HostSample)) :]]
            values += [snapshot.ksm.get(c) for c in counters]
            row = [f"{snapshot.time:.3f}", f"{snapshot.time - start:.3f}"]
            writer.writerow(row + ["" if v is None else v for v in values])
    written.append(path)
    path = out_dir / "events.csv"
    with _open_private(path) as handle:
        writer = csv.writer(handle)
        writer.writerow(["time", "elapsed_s", "kind", "text", "data"])
        for event in recording.events:
            data = json.dumps(event.data, ensure_ascii=False, separators=(",", ":"))
            writer.writerow([f"{event.time:.3f}", f"{event.time - start:.3f}", event.kind, event.text, data])
    written.append(path)
    return written
