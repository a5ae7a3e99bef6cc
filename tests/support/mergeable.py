"""A stand-in process with KSM-mergeable memory, for tests and benchmarks.

    python -m tests.support.mergeable --mib 16 --fill same|numbered|random|zero [--name NAME]

Maps anonymous memory, fills it, marks it MADV_MERGEABLE, prints "ready" and sleeps until killed or until
stdin closes. Every page of a "same" fill holds the same bytes, so ksmd merges all but one copy of it.
"""

from __future__ import annotations

import argparse
import mmap
import os
import sys

PAGE = os.sysconf("SC_PAGE_SIZE")


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


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=int, default=16)
    parser.add_argument("--fill", choices=("same", "numbered", "random", "zero"), default="same")
    parser.add_argument("--name", default="")
    args = parser.parse_args()
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
    sys.stdin.read()  # exits when the parent closes our stdin (or kills us)
    area.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
