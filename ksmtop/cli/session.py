"""Subcommands for sessions: record (headless), replay (the screen), export (JSON, CSV), plot (PNG)."""

from __future__ import annotations

import argparse
import os
import select
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from ksmtop.cli.args import duration, positive_int, positive_seconds
from ksmtop.cli.headless import next_deadline
from ksmtop.cli.options import SourceOptions
from ksmtop.cli.sources import open_headless_source

COMMANDS = ("record", "replay", "export", "plot")


def register(subparsers: Any) -> None:

    record = subparsers.add_parser(
        "record",
        help="record a session to a file (JSON Lines; .gz compresses)",
        description="Record samples to FILE, headless (cron, CI). Ctrl-C or SIGTERM ends it cleanly.",
    )
    record.add_argument("-o", "--output", required=True, type=Path, metavar="FILE", help="FILE.jsonl or FILE.jsonl.gz")
    record.add_argument(
        "-i", "--interval", dest="record_interval", type=positive_seconds, default=1.0, help="seconds between samples"
    )
    stop = record.add_mutually_exclusive_group()
    stop.add_argument("--duration", type=duration, help="stop after this long (90, 30s, 10m, 2h)")
    stop.add_argument("-n", "--count", dest="record_count", type=positive_int, help="stop after N samples")
    record.add_argument("-a", "--all", dest="record_all", action="store_true", help="every process using KSM")
    record.add_argument("--force", action="store_true", help="replace FILE if it exists (a regular file only)")
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
    export.add_argument("--force", action="store_true", help="replace OUT (or the tables in it) if it exists")

    plot = subparsers.add_parser("plot", help="plot a recording to a PNG (needs ksmtop[plot])")
    plot.add_argument("file", type=Path, metavar="FILE")
    plot.add_argument("-o", "--output", required=True, type=Path, metavar="PNG")
    plot.add_argument("--force", action="store_true", help="replace PNG if it exists")


def _shown(path: object) -> str:
    """A path as a message shows it: file names can hold terminal controls too."""
    from ksmtop.safetext import safe

    return safe(str(path))


def _read(path: Path) -> Any:
    from ksmtop.recording import read_recording

    recording = read_recording(path)
    for warning in recording.warnings:
        print(f"ksmtop: warning: {warning}", file=sys.stderr)
    if not recording.snapshots:
        raise SystemExit(f"ksmtop: {_shown(path)}: the recording holds no sample")
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
                export_json(recording, args.output, force=args.force)
                print(f"wrote {_shown(args.output)} ({len(recording.snapshots)} samples)", file=sys.stderr)
            else:
                files = export_csv(recording, args.output, force=args.force)
                print(
                    f"wrote {len(files)} tables to {_shown(args.output)}/ ({len(recording.snapshots)} rows each)",
                    file=sys.stderr,
                )
            return 0
        from ksmtop.outfile import replacing
        from ksmtop.plot import PlotUnavailable, plot_recording

        try:
            with replacing(args.output, args.force, binary=True) as handle:
                plot_recording(recording, handle)  # type: ignore[arg-type]  (savefig takes a file too)
        except PlotUnavailable as exc:
            print(f"ksmtop: {exc}", file=sys.stderr)
            return 2
        print(f"wrote {_shown(args.output)}", file=sys.stderr)
        return 0
    except RecordingError as exc:
        print(f"ksmtop: {exc}", file=sys.stderr)
        return 2
    except FileExistsError as exc:
        print(f"ksmtop: {_shown(exc.filename)}: exists (--force replaces it)", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"ksmtop: {_shown(exc.filename or '')}: {exc.strerror or exc}", file=sys.stderr)
        return 2


STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class StopFlag:
    """Set by SIGTERM, SIGINT (Ctrl-C) or SIGHUP. The handler only sets the flag and wakes wait(): it never
    raises, so a signal cannot land in the middle of a write; the loop ends between two samples."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._wake_read, self._wake_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._previous: dict[int, Any] = {}

    @property
    def is_set(self) -> bool:
        return self.signum is not None

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.signum = signum
        try:
            os.write(self._wake_write, b"\0")
        except OSError:
            pass

    def wait(self, seconds: float) -> None:
        """Sleep up to ``seconds``; a stop signal ends the sleep at once."""
        if seconds > 0 and not self.is_set:
            select.select([self._wake_read], [], [], seconds)

    def __enter__(self) -> StopFlag:
        for signum in STOP_SIGNALS:
            previous = signal.getsignal(signum)
            if signum == signal.SIGHUP and previous == signal.SIG_IGN:
                continue  # started under nohup: stay immune to hangups
            self._previous[signum] = previous
            signal.signal(signum, self)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        os.close(self._wake_read)
        os.close(self._wake_write)


def record_samples(
    source: Any,
    writer: Any,
    *,
    interval: float,
    count: int | None,
    duration: float | None,
    stop: Any,
    clock: Callable[[], float] = time.monotonic,
    progress: Callable[[Any], None] | None = None,
) -> None:
    """Sample and write until the count or the duration is reached, a stop signal comes, or a write fails
    (writer.error then says why)."""
    started = clock()
    deadline = started
    while not stop.is_set:
        snapshot = source.sample()
        if not writer.write(snapshot):
            return
        if progress is not None:
            progress(snapshot)
        if count is not None and writer.samples >= count:
            return
        deadline = next_deadline(deadline, interval, clock())
        if duration is not None and deadline - started > duration:
            return
        stop.wait(deadline - clock())


def record(args: argparse.Namespace) -> int:
    from ksmtop.format import human_bytes
    from ksmtop.recording import RecordingWriter

    on_tty = sys.stderr.isatty()
    started = time.monotonic()

    def progress(snapshot: Any) -> None:
        rows = len(snapshot.guests) if snapshot.mode == "local" else len(snapshot.domains)
        sys.stderr.write(
            f"\rrecording {_shown(args.output)}: {writer.samples} samples, {rows} guests, "
            f"{human_bytes(writer.size_bytes)}, {time.monotonic() - started:.0f} s \x1b[K"
        )
        sys.stderr.flush()

    source = None
    try:
        with StopFlag() as stop:
            writer = RecordingWriter(
                args.output, overwrite=args.force, fsync=not args.no_fsync, interval_s=args.record_interval
            )
            try:
                where = SourceOptions(
                    root=str(args.root),
                    all=args.all or args.record_all,
                    connect=args.connect,
                    no_libvirt=args.no_libvirt,
                )
                source = open_headless_source(where)  # this host (with libvirt when there), or a remote one
                record_samples(
                    source,
                    writer,
                    interval=args.record_interval,
                    count=args.record_count,
                    duration=args.duration,
                    stop=stop,
                    progress=progress if on_tty else None,
                )
            finally:
                writer.close()  # the end line first: closing the source can wait on a hung libvirtd
                if on_tty:
                    sys.stderr.write("\n")
    finally:
        if source is not None:
            source.close()  # the stop signals have their usual effect again: a second SIGTERM ends a hung close
    if writer.error is not None:
        print(f"ksmtop: {writer.error}", file=sys.stderr)
        return 1
    print(
        f"recorded {writer.samples} samples to {_shown(args.output)} ({human_bytes(writer.size_bytes)})",
        file=sys.stderr,
    )
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
