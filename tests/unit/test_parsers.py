"""Table-driven tests of the /proc and /sys parsers."""

from __future__ import annotations

from pathlib import Path

import pytest

from ksmtop.collect import procfs
from ksmtop.collect.host import meminfo_value, vmstat_counter
from ksmtop.collect.procfs import KsmStat, guest_name_from_cmdline, parse_ksm_stat, parse_stat, parse_statm
from tests.fixtures.tree import stat_line


@pytest.mark.parametrize(
    ("comm", "state"),
    [
        ("qemu-system-x86", "S"),
        ("my guest", "R"),  # spaces
        ("a) (b", "S"),  # a ')' and '(' inside comm
        ("x) 1 2 3 4 5", "D"),  # a comm that looks like fields
        ("))", "Z"),
        ("", "S"),
    ],
)
def test_parse_stat_comm_and_fields(comm, state):
    data = stat_line(4321, comm, state=state, minflt=111, majflt=22, utime=300, stime=45, start_ticks=98765)
    assert parse_stat(data.encode()) == (comm, 111, 22, 345, 98765, ord(state))


def test_parse_stat_real_line():
    # A line as the kernel prints it for a qemu process (52 fields).
    data = (
        b"1234 (qemu-system-x86) S 1 1233 1233 0 -1 4194624 9876 0 54 0 1500 700 0 0 20 0 7 0 4242 "
        b"2147483648 262144 18446744073709551615 1 1 0 0 0 4096 1 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n"
    )
    assert parse_stat(data) == ("qemu-system-x86", 9876, 54, 2200, 4242, ord("S"))


@pytest.mark.parametrize("data", [b"", b"1234 (trunc", b"1234 (x) S 1 2"])
def test_parse_stat_malformed_raises(data):
    with pytest.raises((ValueError, IndexError)):
        parse_stat(data)


@pytest.mark.parametrize(
    ("data", "page_size", "expected"),
    [
        (b"50000 25000 1000 1 0 20000 0\n", 4096, (25000 * 4096, 1000 * 4096)),
        (b"50000 25000 1000 1 0 20000 0\n", 16384, (25000 * 16384, 1000 * 16384)),
        (b"0 0 0 0 0 0 0\n", 4096, (0, 0)),  # a zombie's statm
        (b"1 2 3", 65536, (2 * 65536, 3 * 65536)),
    ],
)
def test_parse_statm(data, page_size, expected):
    assert parse_statm(data, page_size) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "ksm_rmap_items 10\nksm_zero_pages 3\nksm_merging_pages 8\nksm_process_profit 20480\n"
            "ksm_merge_any: no\nksm_mergeable: yes\n",
            KsmStat(8, 3, 10, 20480, True, False),
            id="6.18",
        ),
        pytest.param("ksm_rmap_items 512\n", KsmStat(rmap_items=512), id="6.1-only-rmap"),
        pytest.param(
            "ksm_rmap_items 5\nksm_zero_pages 0\nksm_merging_pages 4\nksm_process_profit -320\n",
            KsmStat(4, 0, 5, -320, None, None),
            id="no-flags-negative-profit",
        ),
        pytest.param("ksm_merge_any: yes\nksm_mergeable: no\n", KsmStat(mergeable=False, merge_any=True), id="flags"),
        pytest.param("ksm_merging_pages lots\n", KsmStat(), id="garbage-number"),
        pytest.param("", KsmStat(), id="empty-zombie"),
        pytest.param("ksm_new_field 9\nksm_merging_pages 7\n", KsmStat(merging_pages=7), id="unknown-field"),
        pytest.param("ksm_rmap_items 5\nksm_merging_pages 4", KsmStat(4, None, 5), id="no-final-newline"),
        pytest.param("ksm_merging_pages 5 extra\nksm_rmap_items 6\n", KsmStat(rmap_items=6), id="three-words"),
        pytest.param("ksm_merging_pages\nksm_rmap_items 6\n", KsmStat(rmap_items=6), id="no-value"),
        pytest.param("ksm_mergeable:yes\nksm_rmap_items 1\n", KsmStat(rmap_items=1, mergeable=True), id="no-space"),
    ],
)
def test_parse_ksm_stat(text, expected):
    assert parse_ksm_stat(text.encode()) == expected
    # the per-tick fast path and the careful line parser agree
    assert procfs._parse_ksm_stat_lines(text.encode()) == expected


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["qemu-system-x86_64", "-name", "guest=web1,debug-threads=on", "-m", "2048"], "web1"),
        (["qemu-system-x86_64", "-name", "web2"], "web2"),
        (["qemu-system-x86_64", "--name", "web3"], "web3"),
        (["qemu-kvm", "-name", "a,,b"], "a,b"),  # ',,' is an escaped comma
        (["qemu-kvm", "-name", "guest=x,,y,,z,debug-threads=on"], "x,y,z"),
        (["qemu-kvm", "-name", "debug-threads=on,guest=late"], "late"),
        (["qemu-kvm", "-name", "my guest"], "my guest"),
        (["qemu-system-x86_64", "-m", "1024"], "4242"),  # no -name: the PID
        (["qemu-system-x86_64", "-name", "guest=,debug-threads=on"], "4242"),  # empty guest=
        (["qemu-system-x86_64", "-name", ""], "4242"),
        (["qemu-system-x86_64", "-name", "debug-threads=on"], "4242"),  # options but no name
        (["qemu-system-x86_64", "-name"], "4242"),  # -name as the last word
        ([], "4242"),
    ],
)
def test_guest_name_from_cmdline(argv, expected):
    assert guest_name_from_cmdline(argv, fallback="4242") == expected


MEMINFO_TEXT = (
    "MemTotal:       16384000 kB\nMemFree:            1024 kB\nHugePages_Total:      16\n"
    "Hugepagesize:       2048 kB\nBroken:\nNotANumber:   x kB\nMemAvailableX:  5 kB\nLast:  7 kB"
)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("MemTotal", 16384000 * 1024),  # the first line
        ("MemFree", 1024 * 1024),
        ("HugePages_Total", 16),  # a count, not kB
        ("Hugepagesize", 2048 * 1024),
        ("Last", 7 * 1024),  # the last line, without its newline
        ("Broken", None),
        ("NotANumber", None),
        ("MemAvailable", None),  # only the whole name counts, not MemAvailableX
        ("Total", None),  # nor the end of a name
    ],
)
def test_meminfo_value(name, expected):
    assert meminfo_value(MEMINFO_TEXT, name) == expected


def test_meminfo_value_agrees_with_a_whole_parse_of_this_host():
    """Every line of the real /proc/meminfo, found as the sampler finds it, against a plain parse of the file."""
    text = Path("/proc/meminfo").read_text()
    whole = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        words = rest.split()
        whole[name] = int(words[0]) * (1024 if words[1:] == ["kB"] else 1)
    assert len(whole) > 20
    assert {name: meminfo_value(text, name) for name in whole} == whole


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("nr_free_pages 5\ncow_ksm 42\nksm_swpin_copy 0\n", 42),
        ("cow_ksm 7\nnr_free_pages 5\n", 7),  # the first line
        ("nr_free_pages 5\ncow_ksm 9", 9),  # the last line, without its newline
        ("nr_free_pages 5\nxcow_ksm 3\ncow_ksm_extra 4\n", None),  # only the whole name counts
        ("cow_ksm\nbad x\n", None),
        ("cow_ksm x\n", None),
        ("", None),
    ],
)
def test_vmstat_counter(text, expected):
    assert vmstat_counter(text, "cow_ksm") == expected
