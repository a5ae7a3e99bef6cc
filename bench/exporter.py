"""The exporter's price: scrape cost and the exporter's CPU at a 15 s scrape with 50 guests.

    flock /tmp/ksmtop-heavy.lock .venv/bin/python bench/exporter.py [--guests 50] [--seconds 60] [--scrape 15]

Starts N stand-in processes with mergeable memory (tests/support/mergeable.py, as bench/sample.py does), then a
real ``ksmtop exporter --all --no-libvirt --interval S`` process on a free loopback port. Measures:

- scrape cost: wall time per GET /metrics from this process (median and 95th percentile of --scrapes
  back-to-back scrapes, plain and gzip), and the bytes of one scrape;
- the exporter's CPU over --seconds while it is scraped every --scrape seconds, from utime + stime in
  /proc/PID/stat, as % of one core; and its own sample duration (ksmtop_exporter_sample_duration_seconds).

Prints the figures with their conditions. Stand-ins and the exporter are stopped at the end, also on errors.
"""

from __future__ import annotations

import argparse
import gzip
import os
import platform
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.support.mergeable import start_many, stop_all  # noqa: E402
from tests.support.prometheus import Exporter  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def scrape(url: str, gzipped: bool = False) -> bytes:
    headers = {"Accept-Encoding": "gzip"} if gzipped else {}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as answer:
        return answer.read()


def timed_scrapes(url: str, count: int, gzipped: bool) -> list[float]:
    times = []
    for _ in range(count):
        start = time.perf_counter()
        scrape(url, gzipped)
        times.append((time.perf_counter() - start) * 1000)
    return times


def metric(text: str, name: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--guests", type=int, default=50)
    parser.add_argument("--mib", type=int, default=1, help="mergeable memory per stand-in")
    parser.add_argument("--interval", type=float, default=15.0, help="the exporter's sampling interval")
    parser.add_argument("--scrape", type=float, default=15.0, help="seconds between scrapes in the CPU run")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the CPU run")
    parser.add_argument("--scrapes", type=int, default=200, help="back-to-back scrapes timed for the cost")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench/exporter.py: run as root (per-process KSM figures are root-only)", file=sys.stderr)
        return 2

    print(f"starting {args.guests} stand-ins with {args.mib} MiB mergeable memory each ...", flush=True)
    stand_ins = start_many(args.guests, args.mib, lambda i: "same", "ksmbench")
    try:
        with tempfile.TemporaryDirectory() as workdir:
            exporter = Exporter(Path(workdir), "--all", "--no-libvirt", interval=args.interval).start()
            try:
                return measure(exporter, args)
            finally:
                exporter.stop()
    finally:
        stop_all(stand_ins)


def measure(exporter: Exporter, args: argparse.Namespace) -> int:
    deadline = time.monotonic() + 30
    text = ""
    while time.monotonic() < deadline:  # the first sample
        text = scrape(exporter.url).decode()
        if (metric(text, "ksmtop_exporter_samples_total") or 0) >= 1:
            break
        time.sleep(0.1)
    guests = text.count("ksmtop_guest_info{")
    stand_ins = text.count('ksmtop_guest_info{guest="ksmbench')
    if stand_ins < args.guests:
        print(f"the exporter sees {stand_ins} of {args.guests} stand-ins", file=sys.stderr)
        return 1
    plain = scrape(exporter.url)
    packed = scrape(exporter.url, gzipped=True)
    assert gzip.decompress(packed) == plain

    timed_scrapes(exporter.url, 10, False)  # warm-up
    cost_plain = timed_scrapes(exporter.url, args.scrapes, False)
    cost_gzip = timed_scrapes(exporter.url, args.scrapes, True)

    print(f"CPU run: {args.seconds:g} s, one scrape every {args.scrape:g} s ...", flush=True)
    cpu_start, wall_start = cpu_seconds(exporter.pid), time.monotonic()
    durations = []
    while time.monotonic() - wall_start < args.seconds:
        body = scrape(exporter.url).decode()
        duration = metric(body, "ksmtop_exporter_sample_duration_seconds")
        if duration is not None:
            durations.append(duration * 1000)
        time.sleep(max(0.0, min(args.scrape, args.seconds - (time.monotonic() - wall_start))))
    cpu = cpu_seconds(exporter.pid) - cpu_start
    wall = time.monotonic() - wall_start
    samples = metric(scrape(exporter.url).decode(), "ksmtop_exporter_samples_total")

    def quantiles(values: list[float]) -> str:
        ordered = sorted(values)
        return f"median {statistics.median(ordered):.2f} ms, p95 {ordered[int(len(ordered) * 0.95) - 1]:.2f} ms"

    print()
    print(f"conditions: {stand_ins} stand-in guests ({guests} KSM processes exported, --all), {args.mib} MiB each;")
    print(f"  exporter interval {args.interval:g} s, Python {platform.python_version()}, {os.cpu_count()} CPUs,")
    print(f"  kernel {platform.release()}; scrapes from this process over loopback (HTTP/1.0, a new connection each)")
    print(f"scrape size: {len(plain):,} bytes plain, {len(packed):,} bytes gzip")
    print(f"scrape cost ({args.scrapes} back-to-back): plain {quantiles(cost_plain)}; gzip {quantiles(cost_gzip)}")
    if durations:
        print(f"exporter sample duration: median {statistics.median(durations):.1f} ms (its own metric)")
    print(
        f"exporter CPU: {cpu:.2f} s over {wall:.0f} s = {100 * cpu / wall:.2f}% of one core "
        f"(scrape every {args.scrape:g} s, {samples:.0f} samples so far)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
