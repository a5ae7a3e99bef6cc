"""Bytes per guest per sample of a recording: 10 guests over 1000 samples, plain JSON Lines and gzip.

    .venv/bin/python bench/recording_size.py [--guests 10] [--samples 1000]

The session is synthetic (tests/support/synthetic.py) but moves like a real host: KSM converging, CPU time,
faults and PSS changing. The issue's target is at most 100 bytes per guest per sample with compression. The
files are as `ksmtop record` writes them: every line with its checksum, a complete sample every KEYFRAME_SAMPLES
samples (gzip: each one starting a new member, so damage costs at most the samples up to the next one).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ksmtop.recording import KEYFRAME_SAMPLES, RecordingWriter, read_recording
from tests.support.synthetic import synthetic_session

TARGET = 100


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--guests", type=int, default=10)
    parser.add_argument("--samples", type=int, default=1000)
    args = parser.parse_args()
    snapshots = synthetic_session(args.guests, args.samples)
    cells = args.guests * args.samples
    print(
        f"{args.guests} guests x {args.samples} samples ({cells} guest-samples), "
        f"a complete sample every {KEYFRAME_SAMPLES} (gzip: a new member)"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("session.jsonl", "session.jsonl.gz"):
            path = Path(tmp) / name
            started = time.perf_counter()
            with RecordingWriter(path, fsync=False) as writer:
                for snapshot in snapshots:
                    writer.write(snapshot)
            wrote = time.perf_counter() - started
            started = time.perf_counter()
            recording = read_recording(path)
            read = time.perf_counter() - started
            assert len(recording.snapshots) == args.samples and not recording.warnings
            size = path.stat().st_size
            per = size / cells
            verdict = ("within" if per <= TARGET else "OVER") + f" the {TARGET} B target" if name.endswith("gz") else ""
            print(
                f"{name:18} {size:>10,} bytes  {per:6.1f} bytes/guest/sample  "
                f"write {wrote * 1e6 / args.samples:5.0f} µs/sample  read {read * 1e6 / args.samples:5.0f} µs/sample"
                f"  {verdict}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
