"""Command line: the TUI by default; --once/--batch for headless JSON; subcommands for the guest lab and for
sessions (record, replay, export, plot: ksmtop/session_cli.py)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ksmtop import __version__
from ksmtop.model import Snapshot, to_dict

if TYPE_CHECKING:
    from ksmtop.source import Source

ONCE_GAP_S = 0.5  # --once samples twice this far apart so rates (CPU%, faults/s) are real


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0.05 <= value <= 3600:
        raise argparse.ArgumentTypeError("interval must be between 0.05 and 3600 s")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("count must be at least 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ksmtop",
        description="top for memory deduplication (KSM) on KVM hosts: per-guest merging, tunables, ksmd's price.",
    )
    parser.add_argument("--version", action="version", version=f"ksmtop {__version__}")
    parser.add_argument("-i", "--interval", type=_positive_seconds, default=1.0, help="seconds between samples")
    parser.add_argument(
        "-a", "--all", action="store_true", help="show every process taking part in KSM, not only qemu guests"
    )
    headless = parser.add_mutually_exclusive_group()
    headless.add_argument("--once", action="store_true", help="print one snapshot and exit (use with --json)")
    headless.add_argument("--batch", action="store_true", help="print one snapshot per interval (JSON lines)")
    parser.add_argument("--json", action="store_true", help="JSON output (the only format of --once/--batch)")
    parser.add_argument("-n", "--count", type=_positive_int, default=None, help="with --batch: number of samples")
    libvirt = parser.add_mutually_exclusive_group()
    libvirt.add_argument(
        "-c",
        "--connect",
        metavar="URI",
        help="libvirt URI (default qemu:///system when libvirt is there); a remote URI such as "
        "qemu+ssh://host/system shows that host through libvirt alone",
    )
    libvirt.add_argument("--no-libvirt", action="store_true", help="do not use libvirt: /proc and /sys only")
    parser.add_argument("--root", default="/", help=argparse.SUPPRESS)  # read /proc and /sys under another root
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    try:
        from ksmtop.lab import cli as lab_cli
    except ImportError:
        lab_cli = None
    if lab_cli is not None:
        lab_cli.register(subparsers)
    from ksmtop import session_cli

    session_cli.register(subparsers)
    from ksmtop.study import cli as study_cli

    study_cli.register(subparsers)
    return parser


def _print_json(snapshot: Snapshot) -> None:
    sys.stdout.write(json.dumps(to_dict(snapshot), separators=(",", ":"), ensure_ascii=False) + "\n")
    sys.stdout.flush()


def libvirt_uri(args: argparse.Namespace) -> str | None:
    """The libvirt URI to use, or None: --no-libvirt, another root, or (by default) no libvirt-python here."""
    if args.no_libvirt or (str(args.root) != "/" and not args.connect):
        return None
    if args.connect:
        return args.connect
    try:
        import libvirt  # noqa: F401
    except ImportError:
        return None
    from ksmtop.collect.libvirt import DEFAULT_URI

    return DEFAULT_URI


def open_source(args: argparse.Namespace) -> Source:
    """The source the arguments ask for: this host (with libvirt when there), or a remote host via libvirt."""
    from ksmtop.collect.libvirt import LibvirtConnection, is_remote
    from ksmtop.source import LiveSource

    uri = libvirt_uri(args)
    scope = "ksm" if args.all else "qemu"
    if uri is not None and is_remote(uri):
        from ksmtop.remote import RemoteSource

        return RemoteSource(LibvirtConnection(uri))
    source = LiveSource(root=args.root, scope=scope, libvirt=LibvirtConnection(uri) if uri else None)
    if uri is None and args.no_libvirt:
        source.description += "; libvirt off (--no-libvirt)"
    elif uri is None and str(args.root) == "/":
        source.description += "; no libvirt: libvirt-python is not installed (pip install 'ksmtop[libvirt]')"
    return source


HEADLESS_FIRST_WAIT_S = 15.0
"""Headless output waits this long for libvirt's first answer (a libvirtd that just started probes qemu first);
later samples wait no longer than the screen's, so a hung libvirtd does not slow --batch or record down."""


def open_headless_source(args: argparse.Namespace) -> Source:
    source = open_source(args)
    watcher = getattr(source, "watcher", None)
    if watcher is not None:
        watcher.first_wait_s = HEADLESS_FIRST_WAIT_S
    return source


def run_headless(args: argparse.Namespace) -> int:
    source = open_headless_source(args)
    try:
        if args.once:
            source.sample()
            time.sleep(ONCE_GAP_S)
            _print_json(source.sample())
            return 0
        count = 0
        next_at = time.monotonic()
        while args.count is None or count < args.count:
            _print_json(source.sample())
            count += 1
            if args.count is not None and count >= args.count:
                break
            next_at += args.interval
            time.sleep(max(0.0, next_at - time.monotonic()))
    finally:
        source.close()
    return 0


def run_tui(args: argparse.Namespace) -> int:
    from ksmtop.source import LiveSource
    from ksmtop.tui.app import KsmTopApp

    if not sys.stdout.isatty():
        print("ksmtop: the screen needs a terminal; use --once --json or --batch for output to a pipe", file=sys.stderr)
        return 2
    source = open_source(args)
    controls = None
    if str(args.root) == "/" or args.connect:
        from ksmtop.collect.libvirt import LibvirtConnection
        from ksmtop.control import GuestControls

        uri = libvirt_uri(args)
        libvirt = LibvirtConnection(uri) if uri else None
        controls = GuestControls(on_event=source.add_event, libvirt=libvirt, local=isinstance(source, LiveSource))
    KsmTopApp(source, interval=args.interval, controls=controls).run()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "lab":
        from ksmtop.lab import cli as lab_cli

        return lab_cli.run(args)
    if args.command == "study":
        from ksmtop.study import cli as study_cli

        try:
            return study_cli.run(args)
        except KeyboardInterrupt:
            return 130
    if args.command in ("record", "replay", "export", "plot"):
        from ksmtop import session_cli

        if args.command == "record" and not Path(args.root, "proc").is_dir():
            print(f"ksmtop: {Path(args.root, 'proc')} is not a directory", file=sys.stderr)
            return 2
        try:
            return session_cli.run(args)
        except KeyboardInterrupt:
            return 130
    if (args.once or args.batch) and not args.json:
        parser.error("--once and --batch print JSON: add --json")
    if args.json and not (args.once or args.batch):
        parser.error("--json goes with --once or --batch")
    if args.count is not None and not args.batch:
        parser.error("--count goes with --batch")
    if not Path(args.root, "proc").is_dir():
        print(f"ksmtop: {Path(args.root, 'proc')} is not a directory", file=sys.stderr)
        return 2
    try:
        if args.once or args.batch:
            return run_headless(args)
        return run_tui(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
