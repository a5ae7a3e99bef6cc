"""Unmerge debt: what the host (and each guest) would need back if merged pages were unmerged, beside
MemAvailable; through the codec (--json, recordings, export) and the exporter. Fixture trees and hand-made
figures: the real host's figure is checked in tests/integration/test_operators_cli.py."""

from __future__ import annotations

import csv
import dataclasses
import json

import pytest

from ksmtop.codec import snapshot_from_dict, snapshot_to_dict, stored
from ksmtop.export import export_csv, export_json
from ksmtop.exporter.metrics import Health, families, render
from ksmtop.model import GuestSample, HostSample, KsmRates, KsmState, Snapshot
from ksmtop.rates import debt_exceeds_available, guest_debt, guest_rates, ksm_rates, unmerge_warning
from ksmtop.recording import RecordingWriter, read_recording
from ksmtop.sampler import Sampler
from tests.fixtures.tree import FakeRoot, ksm_stat_text

PAGE = 4096
MIB = 1024 * 1024


def host(available: int = 1000 * MIB, page_size: int = PAGE) -> HostSample:
    return HostSample(
        page_size=page_size, clock_ticks=100, mem_total_bytes=4096 * MIB, mem_available_bytes=available,
        mem_free_bytes=0, anon_bytes=0, cow_ksm=0, ksmd_pid=None, ksmd_cpu_seconds=None,
    )  # fmt: skip


def guest(pid: int = 7, merged: int | None = 100, zero: int | None = 20) -> GuestSample:
    return GuestSample(
        pid=pid, name=f"g{pid}", kind="qemu", start_ticks=1, rss_bytes=MIB, anon_bytes=MIB, shared_bytes=0,
        ksm_merging_pages=merged, ksm_zero_pages=zero, ksm_rmap_items=0, ksm_process_profit_bytes=0,
        ksm_mergeable=True, ksm_merge_any=False, cpu_seconds=0.0, minor_faults=0, major_faults=0,
    )  # fmt: skip


def snapshot(sharing: int, zero: int, available: int, guests: tuple[GuestSample, ...] = ()) -> Snapshot:
    ksm = KsmState(True, {"run": 1, "pages_sharing": sharing, "pages_shared": 10, "ksm_zero_pages": zero})
    h = host(available)
    return Snapshot(
        time=1_700_000_000.0, interval_s=None, scope="qemu", host=h, ksm=ksm, rates=ksm_rates(ksm, h, None, None),
        guests=tuple(guest_rates(g, None, None, 100, PAGE) for g in guests),
    )  # fmt: skip


@pytest.mark.parametrize(
    ("values", "page_size", "debt"),
    [
        ({"pages_sharing": 30, "pages_shared": 10, "ksm_zero_pages": 5}, 4096, 35 * 4096),
        ({"pages_sharing": 30, "pages_shared": 10, "ksm_zero_pages": 5}, 65536, 35 * 65536),
        ({"pages_sharing": 30, "pages_shared": 10}, 4096, 30 * 4096),  # a kernel without ksm_zero_pages
        ({"pages_shared": 10}, 4096, None),  # no pages_sharing: unknown, never 0
    ],
)
def test_host_debt_is_sharing_plus_zero_pages_times_the_page_size(values, page_size, debt):
    rates = ksm_rates(KsmState(True, values), host(page_size=page_size), None, None)
    assert rates.unmerge_debt_bytes == debt


@pytest.mark.parametrize(
    ("merged", "zero", "debt"),
    [(100, 20, 120 * PAGE), (100, None, 100 * PAGE), (0, 0, 0), (None, 5, None)],
)
def test_guest_debt_is_its_merged_and_zero_pages(merged, zero, debt):
    assert guest_debt(guest(merged=merged, zero=zero), PAGE) == debt
    assert guest_rates(guest(merged=merged, zero=zero), None, None, 100, PAGE).unmerge_debt_bytes == debt


def test_guest_debt_is_kept_with_the_rates_of_the_next_sample():
    first = snapshot(30, 0, 1000 * MIB, (guest(merged=100, zero=0),))
    later = guest_rates(guest(merged=150, zero=0), first, 1.0, 100, PAGE)
    assert later.unmerge_debt_bytes == 150 * PAGE
    assert later.merged_pages_per_s == 50.0


def test_debt_above_available_asks_with_both_numbers():
    calm = snapshot(sharing=1000, zero=0, available=1000 * MIB)
    assert not debt_exceeds_available(calm)
    assert unmerge_warning(calm) is None
    short = snapshot(sharing=300 * MIB // PAGE, zero=100 * MIB // PAGE, available=250 * MIB)
    assert debt_exceeds_available(short)
    question = unmerge_warning(short)
    assert question is not None
    assert "400 MiB" in question and "250 MiB" in question and "run=2" in question


def test_no_meminfo_is_no_warning():
    """A remote host or a tree without /proc/meminfo says 0 available: unknown, not "nothing left"."""
    short = snapshot(sharing=1000, zero=0, available=0)
    assert not debt_exceeds_available(
        dataclasses.replace(short, host=dataclasses.replace(short.host, mem_total_bytes=0))
    )


def test_json_and_recordings_carry_the_debt(tmp_path):
    first = snapshot(30, 5, 1000 * MIB, (guest(),))
    data = snapshot_to_dict(first)
    assert data["rates"]["unmerge_debt_bytes"] == 35 * PAGE
    assert data["guests"][0]["unmerge_debt_bytes"] == 120 * PAGE
    assert snapshot_from_dict(json.loads(json.dumps(data))) == first
    assert stored(first).rates.unmerge_debt_bytes == 35 * PAGE

    path = tmp_path / "s.jsonl"
    second = dataclasses.replace(snapshot(40, 5, 1000 * MIB, (guest(merged=200),)), time=first.time + 1)
    with RecordingWriter(path, interval_s=1.0) as writer:
        writer.write(first)
        writer.write(second)
    read = read_recording(path).snapshots
    assert [s.rates.unmerge_debt_bytes for s in read] == [35 * PAGE, 45 * PAGE]
    assert [s.guests[0].unmerge_debt_bytes for s in read] == [120 * PAGE, 220 * PAGE]


def test_a_recording_from_before_the_debt_still_reads(tmp_path):
    """Files written before the field existed have no unmerge_debt_bytes: they read, the debt unknown (not made
    up), everything else as it was."""
    data = snapshot_to_dict(snapshot(30, 5, 1000 * MIB, (guest(),)))
    del data["rates"]["unmerge_debt_bytes"]
    del data["guests"][0]["unmerge_debt_bytes"]
    old = snapshot_from_dict(data)
    assert old.rates.unmerge_debt_bytes is None and old.guests[0].unmerge_debt_bytes is None
    assert old.rates.saving_bytes == 35 * PAGE and old.guests[0].ksm_merging_pages == 100

    path = tmp_path / "old.jsonl"
    header = {"type": "header", "format": "ksmtop-recording", "version": 1, "host": "h", "kernel": "6.1",
              "page_size": PAGE, "start_time": data["time"], "tunables": {}, "guests": []}  # fmt: skip
    sample = {"type": "sample", **data, "pids": [7]}
    path.write_text(json.dumps(header) + "\n" + json.dumps(sample) + "\n")
    (read,) = read_recording(path).snapshots
    assert read.rates.unmerge_debt_bytes is None and read.rates.saving_bytes == 35 * PAGE
    assert read.guests[0].unmerge_debt_bytes is None and read.guests[0].ksm_merging_pages == 100


def test_a_recorded_debt_is_kept_as_recorded():
    data = snapshot_to_dict(snapshot(30, 5, 1000 * MIB, (guest(),)))
    data["rates"]["unmerge_debt_bytes"] = 7
    data["guests"][0]["unmerge_debt_bytes"] = 9
    read = snapshot_from_dict(data)
    assert (read.rates.unmerge_debt_bytes, read.guests[0].unmerge_debt_bytes) == (7, 9)


def test_export_json_and_csv_carry_the_debt(tmp_path):
    path = tmp_path / "s.jsonl"
    with RecordingWriter(path, interval_s=1.0) as writer:
        writer.write(snapshot(30, 5, 1000 * MIB, (guest(),)))
    recording = read_recording(path)
    document = json.loads(export_json(recording, tmp_path / "s.json").read_text())
    assert document["samples"][0]["rates"]["unmerge_debt_bytes"] == 35 * PAGE
    out = tmp_path / "csv"
    export_csv(recording, out)
    with open(out / "unmerge_debt_bytes.csv") as handle:
        rows = list(csv.reader(handle))
    assert rows[0][2] == "g7 (7)" and rows[1][2] == str(120 * PAGE)
    with open(out / "host.csv") as handle:
        table = list(csv.DictReader(handle))
    assert table[0]["unmerge_debt_bytes"] == str(35 * PAGE)


def exposition(taken: Snapshot) -> dict[str, float]:
    """Series -> value of one scrape."""
    text = render(families(taken, Health("t", "local", "qemu", "h", True, 15.0))).decode()
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line[:1] != "#"}


def test_exporter_serves_the_debt_field_and_each_guests():
    base = snapshot(30, 5, 1000 * MIB, (guest(),))
    # a debt that differs from the saving proves the metric reads the new field
    odd = dataclasses.replace(base, rates=dataclasses.replace(base.rates, unmerge_debt_bytes=12345 * PAGE))
    served = exposition(odd)
    assert served["ksmtop_ksm_unmerge_debt_bytes"] == 12345 * PAGE
    assert served['ksmtop_guest_unmerge_debt_bytes{guest="g7",uuid=""}'] == 120 * PAGE
    unknown = dataclasses.replace(base, rates=KsmRates(None, None, None), guests=(guest(merged=None),))
    text = render(families(unknown, Health("t", "local", "qemu", "h", True, 15.0))).decode()
    assert "ksmtop_ksm_unmerge_debt_bytes " not in text and "ksmtop_guest_unmerge_debt_bytes{" not in text


def test_sampler_on_a_tree_reports_the_debt(tmp_path):
    tree = FakeRoot(tmp_path)
    tree.add_process(100, "qemu-system-x86", ["qemu-system-x86_64", "-name", "guest=a"],
                     ksm_stat=ksm_stat_text(merging=50, zero=3, rmap=60))  # fmt: skip
    with Sampler(root=tree.path) as sampler:
        taken = sampler.sample()
    page = taken.host.page_size
    assert taken.rates.unmerge_debt_bytes == (30 + 5) * page  # pages_sharing 30, ksm_zero_pages 5 in the tree
    assert taken.guest(100).unmerge_debt_bytes == (50 + 3) * page
