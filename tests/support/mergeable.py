"""A stand-in process with KSM-mergeable memory, for tests and benchmarks.

    python -m tests.support.mergeable --mib 16 --fill same|numbered|random|zero [--name NAME] [--churn N]
                                      [--reserve-gib N]

Maps anonymous memory, fills it, marks it MADV_MERGEABLE, prints "ready" and sleeps until killed or until
stdin closes. Every page of a "same" fill holds the same bytes, so ksmd merges all but one copy of it.
``--churn N`` rewrites N random pages a second (COW breaks: merged pages, RSS and faults move, as in a live
guest). ``start_guest_like`` starts stand-ins that ksmtop takes for qemu guests (comm qemu-system-x86, and
``-name guest=NAME`` on the command line). ``--reserve-gib`` also reserves that much address space, untouched
(PROT_NONE, MAP_NORESERVE), as JITs and sanitizers do: it costs no memory, but its pagemap is 2 MiB per GiB.
"""

from __future__ import annotations

import argparse
import ctypes
import mmap
import os
import random
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

PAGE = os.sysconf("SC_PAGE_SIZE")
MAP_NORESERVE = getattr(mmap, "MAP_NORESERVE", 0x4000)


def fill(area: mmap.mmap, how: str) -> None:
    size = len(area)
    if how == "same":
        page = (b"ksmtop-same-page" * (PAGE // 16 + 1))[:PAGE]
        area[:] = page * (size // PAGE)
    elif how == "random":
        area[:] = os.urandom(size)
    elif how == "numbered":
        # every page differs from the others in this process, and equals the same page of another "numbered"
        # process: merging happens only across processes (like identical guests), never inside one
        for index, offset in enumerate(range(0, size, PAGE)):
            area[offset : offset + PAGE] = (index.to_bytes(8, "little") * (PAGE // 8))[:PAGE]
    # "zero": leave the fresh zero pages untouched (only touched pages count; touch them with zeros)
    else:
        for offset in range(0, size, PAGE):
            area[offset] = 0


def reserve(size: int) -> int:
    """Map ``size`` bytes PROT_NONE | MAP_NORESERVE (no memory, no commit charge); its address."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long)
    flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | MAP_NORESERVE
    address = libc.mmap(None, size, 0, flags, -1, 0)  # PROT_NONE
    if address in (None, ctypes.c_void_p(-1).value):
        raise OSError(ctypes.get_errno(), f"cannot reserve {size} bytes")
    return address


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=int, default=16)
    parser.add_argument("--fill", choices=("same", "numbered", "random", "zero"), default="same")
    parser.add_argument("--name", default="")
    parser.add_argument("--churn", type=int, default=0, help="pages rewritten per second")
    parser.add_argument("-name", dest="qemu_name", default="", help="ignored: qemu's option, for look-alikes")
    parser.add_argument("--reserve-gib", type=int, default=0)
    args = parser.parse_args()
    if args.reserve_gib:
        reserve(args.reserve_gib << 30)
    if args.name:
        try:
            with open("/proc/self/comm", "w") as handle:
                handle.write(args.name[:15])
        except OSError:
            pass
    area = mmap.mmap(-1, args.mib * 1024 * 1024, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    fill(area, args.fill)
    area.madvise(mmap.MADV_MERGEABLE)
    print("ready", flush=True)
    if args.churn:
        churn(area, args.churn)
    sys.stdin.read()  # exits when the parent closes our stdin (or kills us)
    area.close()
    return 0


def churn(area: mmap.mmap, pages_per_s: int) -> None:
    """Rewrite random pages with new bytes every second until stdin closes (COW-breaks merged pages)."""
    import selectors

    watch = selectors.DefaultSelector()
    watch.register(sys.stdin, selectors.EVENT_READ)
    pages = len(area) // PAGE
    tick = 0
    while not watch.select(timeout=1.0):
        tick += 1
        for _ in range(pages_per_s):
            offset = random.randrange(pages) * PAGE
            area[offset : offset + 8] = tick.to_bytes(8, "little")


def start_many(
    count: int, mib: int, fill_for: Callable[[int], str], name: str, extra: Callable[[int], list[str]] | None = None
) -> list[subprocess.Popen]:
    """``count`` stand-ins (fill_for(i) chooses each one's fill, extra(i) more arguments), named name0..; all
    ready when this returns."""
    argvs = [
        [
            sys.executable,
            "-m",
            "tests.support.mergeable",
            "--mib",
            str(mib),
            "--fill",
            fill_for(i),
            "--name",
            f"{name}{i}",
            *(extra(i) if extra is not None else []),
        ]
        for i in range(count)
    ]
    return _start(argvs)


def start_guest_like(count: int, mib: int, name: str, fill: str = "same", churn: int = 0) -> list[subprocess.Popen]:
    """``count`` stand-ins that look like qemu guests to ksmtop: their executable is a symlink called
    qemu-system-x86_64 (so comm is qemu-system-x86) and their command line carries ``-name guest=NAME<i>``."""
    link = Path(tempfile.mkdtemp(prefix="ksmtop-guestlike-")) / "qemu-system-x86_64"
    link.symlink_to(Path(sys.executable).resolve())
    try:  # once every stand-in has exec'd (it said "ready") or failed, the link is no longer needed
        base = [str(link), "-m", "tests.support.mergeable", "--mib", str(mib), "--fill", fill, "--churn", str(churn)]
        return _start([[*base, "-name", f"guest={name}{i},debug-threads=on"] for i in range(count)])
    finally:
        link.unlink()
        link.parent.rmdir()


def _start(argvs: list[list[str]]) -> list[subprocess.Popen]:
    """Start every command, then wait for each to say "ready"; none left running if one fails."""
    repo = Path(__file__).resolve().parents[2]
    started: list[subprocess.Popen] = []
    try:
        for argv in argvs:
            started.append(subprocess.Popen(argv, cwd=repo, stdin=subprocess.PIPE, stdout=subprocess.PIPE))
        for process in started:
            assert process.stdout is not None
            if process.stdout.readline().strip() != b"ready":
                raise RuntimeError(f"stand-in {process.pid} did not start")
    except BaseException:
        stop_all(started)
        raise
    return started


def stop_all(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        process.kill()
    for process in processes:
        process.wait(timeout=30)


if __name__ == "__main__":
    raise SystemExit(main())
