"""The command line: the screen by default; --once/--batch for headless JSON; subcommands for the guest lab,
sessions (record, replay, export, plot), the study, the Prometheus exporter and the fleet."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ksmtop import __version__
from ksmtop.cli.args import add_libvirt_options, positive_int, positive_seconds
from ksmtop.cli.options import Options


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ksmtop",
        description="top for memory deduplication (KSM) on KVM hosts: per-guest merging, tunables, ksmd's price.",
    )
    parser.add_argument("--version", action="version", version=f"ksmtop {__version__}")
    parser.add_argument(
        "-i",
        "--interval",
        type=positive_seconds,
        default=None,
        help="seconds between samples (default 1, or the config's)",
    )
    parser.add_argument(
        "--config", metavar="PATH", help="preferences file (default $XDG_CONFIG_HOME/ksmtop/config.toml; W saves)"
    )
    parser.add_argument(
        "-a", "--all", action="store_true", help="show every process taking part in KSM, not only qemu guests"
    )
    headless = parser.add_mutually_exclusive_group()
    headless.add_argument("--once", action="store_true", help="print one snapshot and exit (use with --json)")
    headless.add_argument("--batch", action="store_true", help="print one snapshot per interval (JSON lines)")
    parser.add_argument("--json", action="store_true", help="JSON output (the only format of --once/--batch)")
    parser.add_argument("-n", "--count", type=positive_int, default=None, help="with --batch: number of samples")
    add_libvirt_options(
        parser,
        connect_help="libvirt URI (default qemu:///system when libvirt is there); a remote URI such as "
        "qemu+ssh://host/system shows that host through libvirt alone",
    )
    parser.add_argument("--root", default="/", help=argparse.SUPPRESS)  # read /proc and /sys under another root
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    from ksmtop.cli import session
    from ksmtop.exporter import cli as exporter_cli
    from ksmtop.fleet import cli as fleet_cli
    from ksmtop.lab import cli as lab_cli
    from ksmtop.study import cli as study_cli

    lab_cli.register(subparsers)
    session.register(subparsers)
    study_cli.register(subparsers)
    exporter_cli.register(subparsers)
    fleet_cli.register(subparsers)
    return parser


def _no_proc(root: str) -> int | None:
    if not Path(root, "proc").is_dir():
        print(f"ksmtop: {Path(root, 'proc')} is not a directory", file=sys.stderr)
        return 2
    return None


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
        from ksmtop.cli import session

        if args.command == "record" and (failed := _no_proc(args.root)) is not None:
            return failed
        try:
            return session.run(args)
        except KeyboardInterrupt:
            return 130
    if args.command is not None:
        return args.run_command(args)
    if (args.once or args.batch) and not args.json:
        parser.error("--once and --batch print JSON: add --json")
    if args.json and not (args.once or args.batch):
        parser.error("--json goes with --once or --batch")
    if args.count is not None and not args.batch:
        parser.error("--count goes with --batch")
    options = Options.from_args(args)
    if options.config_warning and (options.headless or not sys.stdout.isatty()):
        print(f"ksmtop: {options.config_warning}", file=sys.stderr)
    if (failed := _no_proc(options.source.root)) is not None:
        return failed
    try:
        if options.headless:
            from ksmtop.cli.headless import run_headless

            return run_headless(options)
        from ksmtop.cli.screen import run_screen

        return run_screen(options)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
