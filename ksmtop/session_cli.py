"""Subcommands for sessions: record (headless), replay (the screen), export (JSON, CSV), plot (PNG)."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

COMMANDS = ("record", "replay", "export", "plot")


def _seconds(text: str) -> float:
    """'90', '1.5', '30s', '10m', '2h'."""
    units = {"s": 1, "m": 60, "h": 3600}
    scale = units.get(text[-1:].lower(), 1)
    number = text[:-1] if text[-1:].lower() in units else text
    try:
        value = float(number) * scale
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 90, 30s, 10m, 2h)") from None
    if not value > 0:
        raise argparse.ArgumentTypeError("a duration must be positive")
    return value


def register(subparsers: Any) -> None:
    from ksmtop.cli import _positive_int, _positive_seconds

    record = subparsers.add_parser(
        "record",
        help="record a session to a file (JSON Lines; .gz compresses)",
        description="Record samples to FILE, headless (cron, CI). Ctrl-C or SIGTERM ends it cleanly.",
    )
    record.add_argument("-o", "--output", required=True, type=Path, metavar="FILE", help="FILE.jsonl or FILE.jsonl.gz")
    record.add_argument(
        "-i", "--interval", dest="record_interval", type=_positive_seconds, default=1.0, help="seconds between samples"
    )
    stop = record.add_mutually_exclusive_group()
    stop.add_argument("--duration", type=_seconds, help="stop after this long (90, 30s, 10m, 2h)")
    stop.add_argument("-n", "--count", dest="record_count", type=_positive_int, help="stop after N samples")
    record.add_argument("-a", "--all", dest="record_all", action="store_true", help="every process using KSM")
    record.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    record.add_argument(
        "--no-fsync", action="store_true", help="do not fsync each sample (kill -9 safe, not power-loss safe)"
    )

    replay = subparsers.add_parser("replay", help="replay a recording in the screen", description="Replay FILE.")
    replay.add_argument("file", type=Path, metavar="FILE")
    replay.add_argument("--speed", type=int, choices=(1, 2, 10, 100), default=1, help="start at this speed")
    replay.add_argument("--paused", action="store_true", help="start paused on the first sample")

    export = subparsers.add_parser("export", help="export a recording as JSON or CSV tables")
    export.add_argument("file", type=Path, metavar="FILE")
    kind = export.add_mutually_exclusive_group(required=True)
    kind.add_argument("--json", dest="as_json", action="store_true", help="one JSON document")
    kind.add_argument("--csv", dest="as_csv", action="store_true", help="a directory: one CSV table per guest metric")
    export.add_argument("-o", "--output", required=True, type=Path, metavar="OUT")

    plot = subparsers.add_parser("plot", help="plot a recording to a PNG (needs ksmtop[plot])")
    plot.add_argument("file", type=Path, metavar="FILE")
    plot.add_argument("-o", "--output", required=True, type=Path, metavar="PNG")


def _read(path: Path) -> Any:
    from ksmtop.recording import read_recording

    recording = read_recording(path)
    for warning in recording.warnings:
        print(f"ksmtop: warning: {warning}", file=sys.stderr)
    if not recording.snapshots:
        raise SystemExit(f"ksmtop: {path}: the recording holds no sample")
    return recording


def run(args: argparse.Namespace) -> int:
    from ksmtop.recording import RecordingError

    try:
        if args.command == "record":
            return record(args)
        recording = _read(args.file)
        if args.command == "replay":
            return replay(args, recording)
        if args.command == "export":
            from ksmtop.export import export_csv, export_json

            if args.as_json:
                export_json(recording, args.output)
                print(f"wrote {args.output} ({len(recording.snapshots)} samples)", file=sys.stderr)
            else:
                files = export_csv(recording, args.output)
                print(
                    f"wrote {len(files)} tables to {args.output}/ ({len(recording.snapshots)} rows each)",
                    file=sys.stderr,
                )
            return 0
        from ksmtop.plot import PlotUnavailable, plot_recording

        try:
            plot_recording(recording, args.output)
        except PlotUnavailable as exc:
            print(f"ksmtop: {exc}", file=sys.stderr)
            return 2
        print(f"wrote {args.output}", file=sys.stderr)
        return 0
    except RecordingError as exc:
        print(f"ksmtop: {exc}", file=sys.stderr)
        return 2
    except FileExistsError as exc:
        print(f"ksmtop: {exc.filename}: exists (--force overwrites it)", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"ksmtop: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 2


class _Stop(Exception):
    pass


def _on_signal(signum: int, frame: FrameType | None) -> None:
    raise _Stop


def record(args: argparse.Namespace) -> int:
    from ksmtop.cli import open_headless_source
    from ksmtop.format import human_bytes
    from ksmtop.recording import RecordingWriter

    progress = sys.stderr.isatty()
    writer = RecordingWriter(
        args.output, overwrite=args.force, fsync=not args.no_fsync, interval_s=args.record_interval
    )
    signal.signal(signal.SIGTERM, _on_signal)
    started = time.monotonic()
    next_at = started
    try:
        args.all = args.all or args.record_all
        source = open_headless_source(args)  # this host (with libvirt when there), or a remote one (--connect)
        try:
            while True:
                snapshot = source.sample()
                writer.write(snapshot)
                if progress:
                    rows = len(snapshot.guests) if snapshot.mode == "local" else len(snapshot.domains)
                    sys.stderr.write(
                        f"\rrecording {args.output}: {writer.samples} samples, {rows} guests, "
                        f"{human_bytes(writer.size_bytes)}, {time.monotonic() - started:.0f} s \x1b[K"
                    )
                    sys.stderr.flush()
                if args.record_count is not None and writer.samples >= args.record_count:
                    break
                next_at += args.record_interval
                if args.duration is not None and next_at - started > args.duration:
                    break
                time.sleep(max(0.0, next_at - time.monotonic()))
        finally:
            source.close()
    except (_Stop, KeyboardInterrupt):
        pass
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        writer.close()
        if progress:
            sys.stderr.write("\n")
    print(f"recorded {writer.samples} samples to {args.output} ({human_bytes(writer.size_bytes)})", file=sys.stderr)
    return 0


def replay(args: argparse.Namespace, recording: Any) -> int:
    from ksmtop.replay import ReplaySource
    from ksmtop.tui.app import KsmTopApp

    if not sys.stdout.isatty():
        print("ksmtop: replay needs a terminal; use `ksmtop export` for files", file=sys.stderr)
        return 2
    source = ReplaySource(recording, speed=args.speed)
    interval = recording.header.get("interval_s")
    if not isinstance(interval, int | float) or isinstance(interval, bool) or not 0.05 <= interval <= 3600:
        interval = 1.0  # the header's interval is only the pace of a frame without a neighbour to time it by
    app = KsmTopApp(source, interval=float(interval), paused=args.paused)
    app.run()
    return app.return_code or 0
