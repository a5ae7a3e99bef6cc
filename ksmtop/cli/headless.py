"""``ksmtop --once --json`` and ``--batch --json``: snapshots as JSON lines, through the one codec."""

from __future__ import annotations

import json
import sys
import time

from ksmtop.cli.options import Options
from ksmtop.cli.sources import open_headless_source
from ksmtop.codec import snapshot_to_dict
from ksmtop.model import Snapshot

ONCE_GAP_S = 0.5  # --once samples twice this far apart so rates (CPU%, faults/s) are real


def print_json(snapshot: Snapshot) -> None:
    sys.stdout.write(json.dumps(snapshot_to_dict(snapshot), separators=(",", ":"), ensure_ascii=False) + "\n")
    sys.stdout.flush()


def next_deadline(deadline: float, interval: float, now: float) -> float:
    """The next sample's time: on the interval grid, but never sooner than half an interval from now (after a
    slow sample, the missed slots are skipped, not fired in a burst)."""
    return max(deadline + interval, now + interval / 2)


def run_headless(options: Options) -> int:
    source = open_headless_source(options.source)
    try:
        if options.once:
            source.sample()
            time.sleep(ONCE_GAP_S)
            print_json(source.sample())
            return 0
        count = 0
        next_at = time.monotonic()
        while options.count is None or count < options.count:
            print_json(source.sample())
            count += 1
            if options.count is not None and count >= options.count:
                break
            next_at = next_deadline(next_at, options.interval, time.monotonic())
            time.sleep(max(0.0, next_at - time.monotonic()))
    finally:
        source.close()
    return 0
