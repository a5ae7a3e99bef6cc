"""`ksmtop lab build|up|down|status|run`: the guest lab from the command line.

Errors are one line on stderr and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

from ksmtop.collect.agent import AgentError
from ksmtop.collect.libvirt import DEFAULT_URI
from ksmtop.collect.qmp import QmpError
from ksmtop.lab.guests import DEFAULT_MEMORY_MIB, READY_TIMEOUT, SHUTDOWN_TIMEOUT, Lab
from ksmtop.lab.image import build_image
from ksmtop.lab.paths import LabError
from ksmtop.lab.workloads import WORKLOADS, start_workload

_SIZE = re.compile(r"(\d+)\s*([kmgt]?)i?b?", re.IGNORECASE)


def parse_memory_mib(text: str) -> int:
    """'256', '256M', '512MiB', '1G' -> MiB (a bare number is MiB)."""
    match = _SIZE.fullmatch(text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"not a memory size: {text!r} (examples: 256M, 1G)")
    number, unit = int(match.group(1)), match.group(2).lower()
    scale = {"k": 1 / 1024, "": 1, "m": 1, "g": 1024, "t": 1024 * 1024}[unit]
    return int(number * scale)


def _count(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 64:
        raise argparse.ArgumentTypeError(f"guest count must be 1..64, got {text!r}")
    return int(text)


def register(subparsers: Any) -> None:
    """Add the `lab` subcommand and its actions to an argparse subparsers object."""
    lab = subparsers.add_parser(
        "lab", help="small qemu guests with a guest agent, to watch KSM on", description=__doc__.splitlines()[0]
    )
    lab.add_argument("--runtime-dir", type=Path, help="where guest sockets and state live (default: /run/ksmtop/lab)")
    lab.add_argument(
        "--cache-dir",
        type=Path,
        help="where the built image lives (default: /var/cache/ksmtop/lab as root, else ~/.cache/ksmtop/lab)",
    )
    lab.add_argument("--prefix", default="lab", help="guest names are PREFIX-1..PREFIX-N (default: lab)")
    actions = lab.add_subparsers(dest="lab_command", metavar="ACTION", required=True)

    build = actions.add_parser("build", help="build (or find cached) the guest kernel + initramfs")
    build.add_argument("--force", action="store_true", help="rebuild even if nothing changed")

    up = actions.add_parser("up", help="start N identical guests and wait for their agents")
    up.add_argument("count", type=_count, metavar="N")
    up.add_argument("--memory", type=parse_memory_mib, default=DEFAULT_MEMORY_MIB, help="RAM per guest (256M)")
    up.add_argument("--accel", choices=("auto", "kvm", "tcg"), default="auto", help="auto: probe KVM, else TCG")
    up.add_argument("--no-wait", action="store_true", help="return once qemu runs, before the agents answer")
    up.add_argument("--timeout", type=float, default=READY_TIMEOUT, help="seconds to wait for the agents")
    up.add_argument(
        "--libvirt",
        action="store_true",
        help="define the guests as libvirt domains (type qemu under TCG, kvm where it works) and start them",
    )
    up.add_argument("--connect", default=DEFAULT_URI, metavar="URI", help="libvirt URI with --libvirt")

    down = actions.add_parser("down", help="stop every lab guest (agent shutdown, then forced)")
    down.add_argument("--timeout", type=float, default=SHUTDOWN_TIMEOUT, help="seconds before forcing")
    down.add_argument("--libvirt", action="store_true", help="stop the lab's libvirt domains (they stay defined)")
    down.add_argument("--connect", default=DEFAULT_URI, metavar="URI", help="libvirt URI with --libvirt")

    status = actions.add_parser("status", help="list lab guests, their run state and agent")
    status.add_argument("--json", action="store_true", help="machine-readable output")

    run = actions.add_parser("run", help="start a workload in a guest through its agent")
    run.add_argument("guest", help="guest name, e.g. lab-1, or 'all'")
    run.add_argument("workload", choices=tuple(WORKLOADS))
    run.add_argument("argument", nargs="?", type=int, help="MiB for fills, seconds for idle, limit for primes")
    run.add_argument("--wait", type=float, metavar="SECONDS", help="wait for the end and print its output")


def run(args: argparse.Namespace) -> int:
    """Run a parsed `ksmtop lab ...` command; returns the exit code."""
    try:
        lab = Lab(args.runtime_dir, prefix=args.prefix, cache=args.cache_dir, log=_progress)
        return _ACTIONS[args.lab_command](lab, args)
    except (LabError, AgentError, QmpError, OSError, ValueError) as exc:
        print(f"ksmtop lab {args.lab_command}: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"ksmtop lab {args.lab_command}: interrupted", file=sys.stderr)
        return 130


def _build(lab: Lab, args: argparse.Namespace) -> int:
    image = build_image(lab.cache, force=args.force, log=_progress)
    print(image.describe())
    return 0


def _up(lab: Lab, args: argparse.Namespace) -> int:
    started = time.monotonic()
    image = lab.image()
    print(f"image {image.image_id} ({image.kernel_release}), {image.seconds:.1f} s")
    choice = lab.accel(args.accel)
    print(choice.describe())
    if args.libvirt:
        return _up_libvirt(lab, args, choice.accel, started)
    before = {guest.name for guest in lab.guests()}
    guests = lab.up(args.count, args.memory, accel=args.accel, wait=False)
    ready = {} if args.no_wait else lab.wait_ready(guests, args.timeout)
    for guest in guests:
        note = "already running" if guest.name in before else "started"
        agent = f", agent answered {ready[guest.name]:.1f} s after start" if guest.name in ready else ""
        print(f"{guest.name}: PID {guest.pid}, {guest.memory_mib} MiB, {guest.accel}, {note}{agent}")
    print(f"{len(guests)} guest(s) up in {time.monotonic() - started:.1f} s; sockets in {lab.runtime}")
    return 0


def _up_libvirt(lab: Lab, args: argparse.Namespace, accel: str, started: float) -> int:
    from ksmtop.collect.libvirt import LibvirtConnection, LibvirtError
    from ksmtop.lab.domains import define_lab_domains

    names = [lab.guest_name(index) for index in range(1, args.count + 1)]
    with LibvirtConnection(args.connect) as connection:
        try:
            define_lab_domains(connection, lab.image(), names, args.memory, accel)
            domains = {domain.name: domain for domain in connection.domains()}
        except LibvirtError as exc:
            raise LabError(str(exc)) from None
    for name in names:
        domain = domains.get(name)
        state = domain.state if domain else "missing"
        pid = f", PID {domain.pid}" if domain and domain.pid else ""
        print(f"{name}: libvirt domain ({'kvm' if accel == 'kvm' else 'qemu'}), {state}{pid}")
    print(f"{len(names)} domain(s) up in {time.monotonic() - started:.1f} s on {args.connect}")
    return 0


def _down(lab: Lab, args: argparse.Namespace) -> int:
    if args.libvirt:
        return _down_libvirt(lab, args)
    results = lab.down(timeout=args.timeout)
    if not results:
        print("no lab guests running")
    for name, how in results:
        print(f"{name}: {how}")
    return 0


def _down_libvirt(lab: Lab, args: argparse.Namespace) -> int:
    """Graceful shutdown of every running lab domain, destroy after the timeout."""
    from ksmtop.collect.libvirt import LibvirtConnection, LibvirtError

    pattern = re.compile(re.escape(lab.prefix) + r"-\d+")
    with LibvirtConnection(args.connect) as connection:
        try:
            running = [d.name for d in connection.domains() if d.running and pattern.fullmatch(d.name)]
            for name in running:
                connection.shutdown(name)
            deadline = time.monotonic() + args.timeout
            while running and time.monotonic() < deadline:
                time.sleep(0.5)
                still = {d.name for d in connection.domains() if d.running}
                for name in [n for n in running if n not in still]:
                    print(f"{name}: shut down")
                running = [n for n in running if n in still]
            for name in running:
                connection.destroy(name)
                print(f"{name}: destroyed after {args.timeout:g} s")
        except LibvirtError as exc:
            raise LabError(str(exc)) from None
    return 0


def _status(lab: Lab, args: argparse.Namespace) -> int:
    statuses = lab.status()
    if args.json:
        rows = [{**s.guest.to_json(), "run_state": s.run_state, "agent": s.agent} for s in statuses]
        print(json.dumps(rows, indent=1))
        return 0
    if not statuses:
        print(f"no lab guests running (runtime directory {lab.runtime})")
        return 0
    print(f"{'NAME':<12} {'PID':>8} {'MEMORY':>8} {'ACCEL':<5} {'UPTIME':>8} {'STATE':<10} AGENT")
    for s in statuses:
        uptime = f"{time.time() - s.guest.started_at:.0f}s"
        print(
            f"{s.guest.name:<12} {s.guest.pid:>8} {s.guest.memory_mib:>6}Mi {s.guest.accel:<5} {uptime:>8} "
            f"{s.run_state:<10} {s.agent}"
        )
    return 0


def _run_workload(lab: Lab, args: argparse.Namespace) -> int:
    guests = lab.guests() if args.guest == "all" else [lab.guest(args.guest)]
    if not guests:
        raise LabError("no lab guests running")
    runs = []
    for guest in guests:
        with guest.agent() as agent:
            workload_run = start_workload(agent, args.workload, args.argument)
        print(f"{guest.name}: {workload_run.label} started (guest PID {workload_run.guest_pid})")
        runs.append((guest, workload_run))
    if args.wait is None:
        return 0
    failed = 0
    for guest, workload_run in runs:
        with guest.agent() as agent:
            state = workload_run.wait(agent, args.wait)
        output = (state.output_tail + state.error_tail).strip()
        print(f"{guest.name}: {workload_run.label}: {state.describe()}" + (f"\n  {output}" if output else ""))
        failed += not state.succeeded
    return 1 if failed else 0


def _progress(message: str) -> None:
    print(message, file=sys.stderr)


_ACTIONS = {"build": _build, "up": _up, "down": _down, "status": _status, "run": _run_workload}
