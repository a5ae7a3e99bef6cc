"""``ksmtop fleet``: many hosts through Prometheus, on the screen (ksmtop/tui/fleet.py) or headless (JSON).

ksmtop fleet --prometheus http://prometheus:9090 --once --json       # one FleetSnapshot
ksmtop fleet --prometheus URL --batch --json -n 10 -o fleet.jsonl.gz # JSON lines, recorded
ksmtop fleet --replay fleet.jsonl.gz --batch --json                  # a recording, back as JSON lines
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from ksmtop.cli.args import positive_int, positive_seconds
from ksmtop.fleet.model import FleetSnapshot, to_dict


def register(subparsers: Any) -> None:

    parser = subparsers.add_parser(
        "fleet",
        help="many hosts through Prometheus (their ksmtop exporters)",
        description="One row per host that Prometheus scrapes a ksmtop exporter from: KSM on/off, saving, "
        "profit, ratio, ksmd CPU, guests, unmerge debt, sparklines; a host that stopped answering is stale.",
    )
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--prometheus", metavar="URL", help="Prometheus base URL, e.g. http://prometheus:9090")
    where.add_argument("--replay", type=Path, metavar="FILE", help="a fleet recording instead of Prometheus")
    parser.add_argument("--job", help="only targets of this job (default: every target with ksmtop metrics)")
    parser.add_argument(
        "-i", "--interval", dest="fleet_interval", type=positive_seconds, default=5.0, help="seconds between looks"
    )
    parser.add_argument("--range", dest="range_s", type=positive_seconds, default=600.0, help="sparkline seconds")
    parser.add_argument(
        "--rate-window", type=positive_seconds, default=120.0, help="seconds of rate() windows (ksmd CPU, guest CPU)"
    )
    parser.add_argument("--timeout", type=positive_seconds, default=5.0, help="seconds to wait for Prometheus")
    parser.add_argument("--select", metavar="JOB/INSTANCE", help="host whose guest sparklines are fetched")
    headless = parser.add_mutually_exclusive_group()
    headless.add_argument("--once", dest="fleet_once", action="store_true", help="print one look and exit (--json)")
    headless.add_argument("--batch", dest="fleet_batch", action="store_true", help="one look per interval (--json)")
    parser.add_argument("--json", dest="fleet_json", action="store_true", help="JSON output (of --once/--batch)")
    parser.add_argument("-n", "--count", dest="fleet_count", type=positive_int, help="with --batch: number of looks")
    parser.add_argument("-o", "--record", type=Path, metavar="FILE", help="record every look (.jsonl or .jsonl.gz)")
    parser.add_argument("--force", dest="fleet_force", action="store_true", help="overwrite the --record FILE")
    parser.set_defaults(run_command=run)


def open_fleet_source(args: argparse.Namespace) -> Any:
    """A FleetSource on Prometheus, or a FleetReplaySource; recorded when --record is given."""
    from ksmtop.fleet.recording import FleetRecordingWriter, FleetReplaySource, RecordingFleetSource
    from ksmtop.fleet.source import FleetSource

    if args.replay is not None:
        source: Any = FleetReplaySource(args.replay)
    else:
        from ksmtop.fleet.prom import PrometheusClient

        client = PrometheusClient(args.prometheus, timeout_s=args.timeout)
        source = FleetSource(client, job=args.job, range_s=args.range_s, rate_window_s=args.rate_window)
    if args.select:
        source.select(args.select)
    if args.record is not None:
        writer = FleetRecordingWriter(
            args.record, prometheus=getattr(source, "description", ""), force=args.fleet_force
        )
        source = RecordingFleetSource(source, writer)
    return source


def launch_screen(source: Any, args: argparse.Namespace) -> int:
    """The fleet screen on ``source`` (a look every ``args.fleet_interval`` s, in a worker)."""
    from ksmtop.tui.fleet import FleetApp

    if not sys.stdout.isatty():
        print("ksmtop fleet: the screen needs a terminal; use --once --json or --batch --json", file=sys.stderr)
        return 2
    app = FleetApp(source, interval=args.fleet_interval)
    app.run()
    return app.return_code or 0


def _print(snapshot: FleetSnapshot) -> None:
    sys.stdout.write(json.dumps(to_dict(snapshot), separators=(",", ":"), ensure_ascii=False) + "\n")
    sys.stdout.flush()


def run(args: argparse.Namespace) -> int:
    from ksmtop.fleet.prom import PrometheusError
    from ksmtop.fleet.recording import FleetRecordingError

    if (args.fleet_once or args.fleet_batch) != args.fleet_json:
        print("ksmtop fleet: --once and --batch print JSON: give --json with one of them", file=sys.stderr)
        return 2
    if args.fleet_count is not None and not args.fleet_batch:
        print("ksmtop fleet: --count goes with --batch", file=sys.stderr)
        return 2
    try:
        source = open_fleet_source(args)
    except (PrometheusError, FleetRecordingError) as exc:
        print(f"ksmtop fleet: {exc}", file=sys.stderr)
        return 2
    try:
        if args.fleet_once:
            snapshot = source.sample()
            _print(snapshot)
            return 1 if snapshot.error else 0
        if args.fleet_batch:
            count = 0
            next_at = time.monotonic()
            while args.fleet_count is None or count < args.fleet_count:
                _print(source.sample())
                count += 1
                if getattr(source, "at_end", False) or (args.fleet_count is not None and count >= args.fleet_count):
                    break
                next_at += args.fleet_interval if args.replay is None else 0.0
                time.sleep(max(0.0, next_at - time.monotonic()))
            return 0
        return launch_screen(source, args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    finally:
        source.close()
