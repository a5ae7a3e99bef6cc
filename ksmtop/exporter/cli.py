"""``ksmtop exporter``: serve /metrics for Prometheus, or write a textfile for node_exporter, or print the rules."""

from __future__ import annotations

import argparse
import signal
import socket
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlparse

from ksmtop.cli.args import add_libvirt_options, positive_seconds
from ksmtop.cli.options import SourceOptions
from ksmtop.cli.sources import open_headless_source

DEFAULT_PORT = 9848
DEFAULT_LISTEN = f"127.0.0.1:{DEFAULT_PORT}"
DEFAULT_INTERVAL_S = 15.0


def _listen(text: str) -> tuple[str, int]:
    """'127.0.0.1:9848', '[::1]:9848', ':9848' (every address)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"not ADDR:PORT: {text!r} (e.g. 127.0.0.1:{DEFAULT_PORT}, [::1]:9848)")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def register(subparsers: Any) -> None:

    parser = subparsers.add_parser(
        "exporter",
        help="serve per-guest KSM metrics to Prometheus (or a textfile for node_exporter)",
        description="Serve /metrics in the Prometheus text format, sampling on its own cadence (a scrape never "
        "waits for a sample). Read-only: nothing can be changed through it. Metrics, the systemd unit and the "
        "alert rules: docs/exporter.md.",
    )
    parser.add_argument(
        "--listen",
        type=_listen,
        default=None,
        metavar="ADDR:PORT",
        help=f"where to serve /metrics (default {DEFAULT_LISTEN}: loopback only; port 0 picks a free one; "
        "with --textfile, no server unless --listen is given)",
    )
    parser.add_argument(
        "-i",
        "--interval",
        dest="exporter_interval",
        type=positive_seconds,
        default=DEFAULT_INTERVAL_S,
        help=f"seconds between samples (default {DEFAULT_INTERVAL_S:g}, Prometheus' default scrape interval)",
    )
    parser.add_argument(
        "-a", "--all", dest="exporter_all", action="store_true", help="every process using KSM, not only qemu guests"
    )
    add_libvirt_options(parser, dest_prefix="exporter_", connect_help="libvirt URI; a remote one exports that host")
    parser.add_argument(
        "--textfile",
        type=Path,
        metavar="PATH",
        help="also write the metrics to PATH (*.prom, in node_exporter's textfile directory), atomically",
    )
    parser.add_argument("--once", action="store_true", help="one sample to stdout (or to --textfile), then exit")
    parser.add_argument("--rules", action="store_true", help="print the sample Prometheus alert rules and exit")
    parser.set_defaults(run_command=run)


def _source_args(args: argparse.Namespace) -> argparse.Namespace:
    """The top-level options, with the subcommand's own taking precedence."""
    merged = argparse.Namespace(**vars(args))
    merged.interval = args.exporter_interval
    merged.all = args.all or args.exporter_all
    merged.connect = args.exporter_connect or args.connect
    merged.no_libvirt = args.exporter_no_libvirt or args.no_libvirt
    return merged


def _hostname(args: argparse.Namespace, mode: str) -> str:
    if mode == "remote":
        return urlparse(args.connect).hostname or args.connect
    try:
        text = Path(args.root, "proc/sys/kernel/hostname").read_text(errors="replace").strip()
    except OSError:
        text = ""
    return text or socket.gethostname()


def _stop_on_sigterm() -> None:
    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def run(args: argparse.Namespace) -> int:
    if args.rules:
        from ksmtop.exporter.rules import RULES

        sys.stdout.write(RULES)
        return 0
    from ksmtop import __version__
    from ksmtop.exporter.metrics import Health
    from ksmtop.exporter.server import Exporter, MetricsServer, TextfileError, check_textfile_target

    options = _source_args(args)
    if not options.connect and not Path(options.root, "proc").is_dir():
        print(f"ksmtop: {Path(options.root, 'proc')} is not a directory", file=sys.stderr)
        return 2
    if args.textfile is not None:
        try:
            check_textfile_target(args.textfile)
        except TextfileError as exc:
            print(f"ksmtop exporter: {exc}", file=sys.stderr)
            return 2
    listen = args.listen
    if listen is None and args.textfile is None and not args.once:
        listen = _listen(DEFAULT_LISTEN)
    server = None
    if listen is not None and not args.once:
        try:
            family = socket.getaddrinfo(listen[0] or None, listen[1], type=socket.SOCK_STREAM)[0][0]
            server = MetricsServer(listen, None, family)  # type: ignore[arg-type]
        except OSError as exc:
            print(f"ksmtop exporter: cannot listen on {listen[0]}:{listen[1]}: {exc.strerror or exc}", file=sys.stderr)
            return 2
    where = SourceOptions(
        root=str(options.root), all=options.all, connect=options.connect, no_libvirt=options.no_libvirt
    )
    source = open_headless_source(where, perf=False)  # perf counters and tracepoints are not exported
    sampler = getattr(source, "sampler", None)
    mode = "local" if sampler is not None else "remote"  # a RemoteSource has no sampler: libvirt alone
    health = Health(
        version=__version__,
        mode=mode,
        scope="ksm" if options.all else "qemu",
        hostname=_hostname(options, mode),
        is_root=bool(getattr(sampler, "is_root", True)),
        interval_s=options.interval,
    )
    exporter = Exporter(source, health, textfile=args.textfile)
    try:
        if args.once:
            exporter.sample_once()
            if args.textfile is None:
                sys.stdout.buffer.write(exporter.body())
                sys.stdout.flush()
            return 1 if exporter.last_error else 0
        _stop_on_sigterm()
        exporter.start()
        where = []
        if server is not None:
            server.exporter = exporter
            where.append(f"serving {server.url}")
        if args.textfile is not None:
            where.append(f"writing {args.textfile}")
        print(
            f"ksmtop exporter: {' and '.join(where)}; sampling every {options.interval:g} s ({source.description})",
            file=sys.stderr,
            flush=True,
        )
        if server is not None:
            server.serve_forever(poll_interval=0.5)
        else:
            threading.Event().wait()
    except KeyboardInterrupt:
        return 0
    finally:
        if server is not None:
            server.server_close()
        exporter.stop()
        source.close()
    return 0
