"""The exporter's metrics from snapshots of fixture trees: names, units, values, labels, escaping, the docs table."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ksmtop.exporter.metrics import (
    KSM_FILES,
    METRICS,
    Health,
    exported_guests,
    families,
    markdown_table,
    render,
)
from ksmtop.exporter.rules import RULES
from ksmtop.model import DomainSample
from ksmtop.safetext import safe_name
from ksmtop.sampler import Sampler
from tests.fixtures.tree import KSM_VALUES, FakeRoot, ksm_stat_text

REPO = Path(__file__).resolve().parents[2]
PAGE = os.sysconf("SC_PAGE_SIZE")
QEMU = "qemu-system-x86"
HEALTH = Health(version="0.1.0", mode="local", scope="qemu", hostname="host-b", is_root=True, interval_s=15.0)


def qemu(tree: FakeRoot, pid: int, name: str, **ksm: int) -> None:
    tree.add_process(pid, QEMU, ["qemu-system-x86_64", "-name", f"guest={name}"], ksm_stat=ksm_stat_text(**ksm))


def snapshot_of(tree: FakeRoot):
    with Sampler(root=tree.path, scope="qemu", perf=False) as sampler:
        return sampler.sample()


def scrape(snapshot, health: Health = HEALTH) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The exposition parsed back by prometheus-client's own parser: (sample name, sorted labels) -> value."""
    text = render(families(snapshot, health)).decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = (sample.name, tuple(sorted(sample.labels.items())))
            assert key not in samples, f"duplicate series {key}"
            samples[key] = sample.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


@pytest.fixture
def tree(tmp_path: Path) -> FakeRoot:
    tree = FakeRoot(tmp_path)
    qemu(tree, 4242, "web-1", merging=100, zero=3, rmap=200, profit=-5000)
    return tree


def test_every_ksm_file_is_exported_in_base_units(tree):
    samples = scrape(snapshot_of(tree))
    assert value(samples, "ksmtop_ksm_run") == 1
    assert value(samples, "ksmtop_ksm_pages_to_scan") == 100  # a knob in pages stays a count
    assert value(samples, "ksmtop_ksm_sleep_seconds") == 0.020
    assert value(samples, "ksmtop_ksm_max_page_sharing") == 256
    assert value(samples, "ksmtop_ksm_pages_shared_bytes") == 10 * PAGE
    assert value(samples, "ksmtop_ksm_pages_sharing_bytes") == 30 * PAGE
    assert value(samples, "ksmtop_ksm_zero_pages_bytes") == 5 * PAGE
    assert value(samples, "ksmtop_ksm_full_scans_total") == 7
    assert value(samples, "ksmtop_ksm_pages_scanned_total") == 1000
    assert value(samples, "ksmtop_ksm_info", advisor_mode="none") == 1
    exported = {name for name, _ in samples}
    for file in KSM_VALUES:
        assert KSM_FILES[file].name in exported, file


def test_a_negative_general_profit_exports(tree):
    assert KSM_VALUES["general_profit"] == "-4096"
    assert value(scrape(snapshot_of(tree)), "ksmtop_ksm_general_profit_bytes") == -4096


@pytest.mark.parametrize(
    ("file", "text", "name", "expected"),
    [
        ("advisor_max_cpu", "70", "ksmtop_ksm_advisor_max_cpu_ratio", 0.70),
        ("stable_node_chains_prune_millisecs", "2000", "ksmtop_ksm_stable_node_chains_prune_seconds", 2.0),
        ("advisor_target_scan_time", "200", "ksmtop_ksm_advisor_target_scan_time_seconds", 200),
        ("pages_volatile", "26424", "ksmtop_ksm_pages_volatile_bytes", 26424 * PAGE),
        ("pages_skipped", "2709098", "ksmtop_ksm_pages_skipped_total", 2709098),
        ("stable_node_dups", "214", "ksmtop_ksm_stable_node_dups", 214),
        ("some_future_counter", "12", "ksmtop_ksm_some_future_counter", 12),  # a file ksmtop does not know
    ],
)
def test_ksm_files_map_to_their_metric(tmp_path, file, text, name, expected):
    tree = FakeRoot(tmp_path, ksm={**KSM_VALUES, file: text})
    assert value(scrape(snapshot_of(tree)), name) == pytest.approx(expected)


def test_an_unknown_text_file_becomes_a_label_of_the_info_series(tmp_path):
    tree = FakeRoot(tmp_path, ksm={**KSM_VALUES, "future_mode": "[fast] slow"})
    samples = scrape(snapshot_of(tree))
    assert value(samples, "ksmtop_ksm_info", advisor_mode="none", future_mode="fast") == 1


def test_host_figures_and_the_unmerge_debt(tree):
    snapshot = snapshot_of(tree)
    samples = scrape(snapshot)
    assert value(samples, "ksmtop_ksm_unmerge_debt_bytes") == (30 + 5) * PAGE == snapshot.rates.saving_bytes
    assert value(samples, "ksmtop_host_memory_available_bytes") == 12000000 * 1024
    assert value(samples, "ksmtop_host_memory_total_bytes") == 16384000 * 1024
    assert value(samples, "ksmtop_host_cow_ksm_total") == 42
    assert value(samples, "ksmtop_ksm_available") == 1
    assert not any(name == "ksmtop_ksmd_cpu_seconds_total" for name, _ in samples)  # no ksmd in the tree


def test_ksmd_cpu_seconds_come_from_its_stat(tree):
    tree.add_process(77, "ksmd", utime=250, stime=150)
    samples = scrape(snapshot_of(tree))
    assert value(samples, "ksmtop_ksmd_cpu_seconds_total") == pytest.approx(400 / os.sysconf("SC_CLK_TCK"))


def test_guest_series(tree):
    samples = scrape(snapshot_of(tree))
    labels = {"guest": "web-1", "uuid": ""}
    assert value(samples, "ksmtop_guest_merged_bytes", **labels) == 100 * PAGE
    assert value(samples, "ksmtop_guest_zero_pages_bytes", **labels) == 3 * PAGE
    assert value(samples, "ksmtop_guest_profit_bytes", **labels) == -5000
    assert value(samples, "ksmtop_guest_rss_bytes", **labels) == 25000 * PAGE
    assert value(samples, "ksmtop_guest_anon_bytes", **labels) == (25000 - 1000) * PAGE
    assert value(samples, "ksmtop_guest_cpu_seconds_total", **labels) == pytest.approx(350 / os.sysconf("SC_CLK_TCK"))
    assert value(samples, "ksmtop_guest_page_faults_total", **labels, type="minor") == 100
    assert value(samples, "ksmtop_guest_page_faults_total", **labels, type="major") == 2
    assert value(samples, "ksmtop_guest_info", **labels, pid="4242", kind="qemu") == 1


def test_unknown_figures_are_left_out_not_zero(tmp_path):
    tree = FakeRoot(tmp_path)
    tree.add_process(4242, QEMU, ["qemu-system-x86_64", "-name", "old-kernel"], ksm_stat=None)
    samples = scrape(snapshot_of(tree))
    names = {name for name, labels in samples if ("guest", "old-kernel") in labels}
    assert "ksmtop_guest_rss_bytes" in names
    assert "ksmtop_guest_merged_bytes" not in names
    assert "ksmtop_guest_profit_bytes" not in names


def test_duplicate_guest_names_get_their_pid_and_never_duplicate_series(tmp_path):
    tree = FakeRoot(tmp_path)
    qemu(tree, 100, "lab-1", merging=1)
    qemu(tree, 200, "lab-1", merging=2)
    qemu(tree, 300, "lab-1 (pid 100)", merging=3)  # a guest named like a disambiguated one
    qemu(tree, 400, "lab-2", merging=4)
    snapshot = snapshot_of(tree)
    labels = {g.pid: g.label for g in exported_guests(snapshot)}
    assert labels[200] == "lab-1 (pid 200)"
    assert labels[400] == "lab-2"
    assert len(set(labels.values())) == 4
    samples = scrape(snapshot)  # scrape() fails on a duplicate series
    merged = {dict(key[1])["guest"]: v for key, v in samples.items() if key[0] == "ksmtop_guest_merged_bytes"}
    assert merged[labels[100]] == 1 * PAGE and merged[labels[300]] == 3 * PAGE


NASTY = 'evil "quoted" back\\slash\nnew line \x1b]0;title\x07 \u202eright-to-left \x7f end'


def test_a_hostile_guest_name_exports_valid_text_that_round_trips(tmp_path):
    tree = FakeRoot(tmp_path)
    qemu(tree, 4242, NASTY, merging=9)
    text = render(families(snapshot_of(tree), HEALTH)).decode()
    merged = [line for line in text.splitlines() if line.startswith("ksmtop_guest_merged_bytes{")]
    assert len(merged) == 1
    assert "\x1b" not in text and "\u202e" not in text and "\x07" not in text and "\x7f" not in text
    assert '\\"quoted\\"' in merged[0] and "back\\\\slash" in merged[0]  # escaped per the text format
    samples = scrape(snapshot_of(tree))
    guest = safe_name(NASTY)
    assert value(samples, "ksmtop_guest_merged_bytes", guest=guest, uuid="") == 9 * PAGE


def test_libvirt_domains_name_guests_and_give_their_uuid(tree):
    snapshot = snapshot_of(tree)
    uuid = "6f1c8e0e-1d2b-4c3a-9e8f-0123456789ab"
    domains = (
        DomainSample("web-one", uuid, "running", 1, 2**28, 2**28, True, pid=4242),
        DomainSample("remote-two", "u-2", "running", 1, 2**28, 2**28, True, rss_bytes=12345),
        DomainSample("off-three", "u-3", "shut off", 1, 2**28, 2**28, True),
    )
    samples = scrape(dataclasses.replace(snapshot, domains=domains))
    assert value(samples, "ksmtop_guest_merged_bytes", guest="web-one", uuid=uuid) == 100 * PAGE
    assert value(samples, "ksmtop_guest_rss_bytes", guest="remote-two", uuid="u-2") == 12345
    assert value(samples, "ksmtop_guest_info", guest="remote-two", uuid="u-2", pid="", kind="domain") == 1
    assert not any(dict(labels).get("guest") == "off-three" for _, labels in samples)


def test_health_series():
    health = dataclasses.replace(
        HEALTH, samples=3, sample_duration_s=0.004, last_sample_time=1.7e9, errors={"sample": 2}, libvirt_up=False
    )
    samples = scrape(None, health)
    assert value(samples, "ksmtop_exporter_samples_total") == 3
    assert value(samples, "ksmtop_exporter_errors_total", kind="sample") == 2
    assert value(samples, "ksmtop_exporter_errors_total", kind="textfile") == 0
    assert value(samples, "ksmtop_exporter_libvirt_up") == 0
    assert value(samples, "ksmtop_exporter_last_sample_timestamp_seconds") == 1.7e9
    info = {"version": "0.1.0", "mode": "local", "scope": "qemu", "hostname": "host-b", "root": "1"}
    assert value(samples, "ksmtop_exporter_info", **info) == 1
    assert not any(name.startswith("ksmtop_ksm") for name, _ in samples)  # nothing before the first sample


def test_every_exported_name_is_in_the_table_and_the_other_way_round(tree):
    tree.add_process(77, "ksmd")
    health = dataclasses.replace(HEALTH, samples=1, sample_duration_s=0.1, last_sample_time=1.0, libvirt_up=True)
    text = render(families(snapshot_of(tree), health)).decode()
    exported = {family.name for family in text_string_to_metric_families(text)}
    absent = {metric.name for file, metric in KSM_FILES.items() if file not in KSM_VALUES}  # not in the tree

    def parsed(name: str) -> str:  # prometheus-client's parser names counter families without _total
        return name.removesuffix("_total")

    assert exported == {parsed(name) for name in METRICS if name not in absent}


def test_names_follow_the_conventions():
    for metric in METRICS.values():
        assert metric.name.startswith("ksmtop_")
        assert metric.name.endswith("_total") == (metric.type == "counter"), metric.name
        assert metric.name.endswith("_info") == (metric.type == "info"), metric.name
        assert "millisecs" not in metric.name and "percent" not in metric.name, metric.name


def test_the_docs_hold_the_metric_table_and_the_rules():
    docs = (REPO / "docs/exporter.md").read_text()
    assert markdown_table() in docs, "docs/exporter.md: paste `python -m ksmtop.exporter.metrics` in"
    assert (REPO / "docs/alerts.yml").read_text() == RULES, "docs/alerts.yml: ksmtop exporter --rules > it"
