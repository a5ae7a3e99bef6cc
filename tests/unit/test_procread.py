"""The compiled per-tick reader (procread.c) against the Python loop it stands in for: the same texts give the same
figures, and text the C parser does not know is handed back to the Python loop, never guessed at."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ksmtop.collect import procread
from ksmtop.collect.procfs import ProcessTable, _ksm_stat_values, _present_ksm_values, parse_stat
from ksmtop.collect.procread_layout import (
    CONSTANTS,
    KSMTOP_GONE,
    KSMTOP_KSM_MERGING_PAGES,
    KSMTOP_KSM_NONE,
    KSMTOP_KSM_STAT,
    KSMTOP_OK,
    KSMTOP_PYTHON,
    KSMTOP_ROW,
)
from tests.fixtures.tree import FakeRoot, ksm_stat_text, stat_line

pytestmark = pytest.mark.skipif(procread.lib is None, reason="checked by test_the_compiled_reader_is_built")

ROW_AT = sorted((value, name) for name, value in CONSTANTS.items() if name.startswith("KSMTOP_AT_"))
ROW_NAMES = tuple(name.removeprefix("KSMTOP_AT_").lower() for _, name in ROW_AT)
"""A row's values by name, as the layout places them: status, state, start, minflt, ..."""
KSM_NAMES = ("merging", "zero", "rmap", "profit", "mergeable", "merge_any")


def test_the_compiled_reader_is_built():
    """pip builds it (setup.py's cffi_modules); without it ksmtop falls back to its Python loop, slower, so a
    failed build must not go unnoticed."""
    assert procread.lib is not None, procread.unavailable
    assert procread.unavailable is None


def test_a_module_built_for_another_row_layout_is_not_used():
    """A module compiled before procread_layout.py changed (pip not run again) would misread every row."""
    from types import SimpleNamespace

    assert procread.layout_of(procread.lib) is None
    assert procread.layout_of(SimpleNamespace(**CONSTANTS)) is None
    shifted = SimpleNamespace(**{**CONSTANTS, "KSMTOP_AT_PROFIT": CONSTANTS["KSMTOP_AT_PROFIT"] + 1})
    assert procread.layout_of(shifted) == "built for another row layout (KSMTOP_AT_PROFIT): run scripts/setup"
    assert "KSMTOP_ROW" in procread.layout_of(SimpleNamespace(**{**CONSTANTS, "KSMTOP_ROW": 14}))


def test_a_row_is_its_values_in_a_row():
    """procfs unpacks a row by position: the layout's indexes are 0, 1, ... with none missing or repeated."""
    assert [value for value, _ in ROW_AT] == list(range(KSMTOP_ROW))


def c_parse(stat: bytes, statm: bytes, ksm: bytes, kind: int = KSMTOP_KSM_STAT, start: int = 12345) -> dict:
    row = procread.ffi.new("int64_t[]", KSMTOP_ROW)
    status = procread.lib.ksmtop_parse(stat, len(stat), statm, len(statm), kind, ksm, len(ksm), start, row)
    values = dict(zip(ROW_NAMES, procread.ffi.unpack(row, KSMTOP_ROW), strict=True))
    assert values["status"] == status
    return values


def ksm_of(values: dict) -> tuple:
    """KsmValues of a C row, as procfs makes them."""
    return _present_ksm_values(values["present"], *(values[name] for name in KSM_NAMES))


STATM = b"50000 25000 1000 1 0 20000 0\n"


def test_a_kernel_shaped_process_reads_as_the_python_parsers_read_it():
    stat = stat_line(42, "qemu-system-x86", minflt=7, majflt=3, utime=500, stime=60, start_ticks=999).encode()
    ksm = ksm_stat_text(merging=10, zero=2, rmap=30, profit=-8192, mergeable=True).encode()
    values = c_parse(stat, STATM, ksm, start=999)
    _comm, minflt, majflt, cpu_ticks, start, state = parse_stat(stat)
    assert values["status"] == KSMTOP_OK
    assert (values["minflt"], values["majflt"], values["cpu_ticks"], values["start"]) == (7, 3, 560, 999)
    assert (values["minflt"], values["majflt"], values["cpu_ticks"], values["start"]) == (
        minflt, majflt, cpu_ticks, start,
    )  # fmt: skip
    assert values["state"] == state == ord("S")
    assert (values["rss_pages"], values["shared_pages"]) == (25000, 1000)
    assert ksm_of(values) == _ksm_stat_values(ksm) == (10, 2, 30, -8192, True, False)


@pytest.mark.parametrize(
    "comm",
    ["a) (b", "x)", ") 1 2 3 (", "with space", "((", "", "qemu-system-x86"],
)
def test_stat_is_read_after_the_last_parenthesis_whatever_comm_holds(comm):
    stat = stat_line(7, comm, minflt=11, start_ticks=77).encode()
    values = c_parse(stat, STATM, ksm_stat_text().encode(), start=77)
    assert values["status"] == KSMTOP_OK
    assert values["minflt"] == parse_stat(stat)[1] == 11


@pytest.mark.parametrize(
    ("state", "start", "status"),
    [("S", 12345, KSMTOP_OK), ("R", 12345, KSMTOP_OK), ("Z", 12345, KSMTOP_GONE), ("X", 12345, KSMTOP_GONE),
     ("S", 54321, KSMTOP_GONE)],  # a new process under the old PID: another start time
)  # fmt: skip
def test_an_exited_or_replaced_process_is_gone(state, start, status):
    stat = stat_line(7, "p", state=state, start_ticks=start).encode()
    assert c_parse(stat, STATM, ksm_stat_text().encode(), start=12345)["status"] == status


@pytest.mark.parametrize(
    ("stat", "statm", "ksm"),
    [
        (b"7 (p S 1 2", STATM, b""),  # no closing parenthesis
        (b"7 (p) S 1 2 3\n", STATM, b""),  # cut short before starttime
        (stat_line(7, "p", minflt=1).encode().replace(b" 1 0 2 ", b" x 0 2 ", 1), STATM, b""),  # not a number
        (stat_line(7, "p").encode(), b"50000\n", b""),  # statm cut short
        (stat_line(7, "p").encode(), b"1 2x 3\n", b""),
        (stat_line(7, "p").encode(), STATM, b"ksm_rmap_items 1\nksm_zero_pages"),  # no final newline
        (stat_line(7, "p").encode(), STATM, b"ksm_rmap_items 1 2\n"),  # not one pair on a line
        (stat_line(7, "p").encode(), STATM, b"ksm_rmap_items\n"),
        (stat_line(7, "p").encode(), STATM, b"ksm_merging_pages lots\n"),
        (stat_line(7, "p").encode(), STATM, b"ksm_process_profit 1234567890123456789012\n"),  # over int64
    ],
)
def test_text_the_parser_does_not_know_goes_to_the_python_loop(stat, statm, ksm):
    assert c_parse(stat, statm, ksm)["status"] == KSMTOP_PYTHON


def test_older_kernels_ksm_files():
    stat = stat_line(7, "p").encode()
    only_merging = c_parse(stat, STATM, b"123\n", kind=KSMTOP_KSM_MERGING_PAGES)
    assert only_merging["status"] == KSMTOP_OK
    assert ksm_of(only_merging) == (123, None, None, None, None, None)
    nothing = c_parse(stat, STATM, b"", kind=KSMTOP_KSM_NONE)
    assert nothing["status"] == KSMTOP_OK
    assert ksm_of(nothing) == (None,) * 6


KSM_KEYS = {
    "merging": "ksm_merging_pages",
    "zero": "ksm_zero_pages",
    "rmap": "ksm_rmap_items",
    "profit": "ksm_process_profit",
    "mergeable": "ksm_mergeable:",
    "merge_any": "ksm_merge_any:",
}


@st.composite
def ksm_stat_files(draw: st.DrawFn) -> bytes:
    """ksm_stat as kernels write it: any subset of the names, in any order, unknown names among them."""
    names = draw(st.lists(st.sampled_from(sorted(KSM_KEYS)), unique=True))
    lines = []
    for name in names:
        if name in ("mergeable", "merge_any"):
            value = draw(st.sampled_from(["yes", "no", "maybe"]))
        else:
            value = str(draw(st.integers(min_value=-(10**15), max_value=10**15)))
        lines.append(f"{KSM_KEYS[name]} {value}")
    for _ in range(draw(st.integers(0, 2))):
        index = draw(st.integers(0, len(lines)))
        lines.insert(index, f"ksm_future_{draw(st.integers(0, 9))} {draw(st.integers(0, 99))}")
    return "".join(f"{line}\n" for line in lines).encode()


@settings(derandomize=True, max_examples=300, deadline=None)
@given(ksm=ksm_stat_files(), comm=st.text(max_size=15), numbers=st.lists(st.integers(0, 2**40), min_size=5, max_size=5))
def test_kernel_shaped_texts_read_alike_in_c_and_python(ksm, comm, numbers):
    minflt, majflt, utime, stime, start = numbers
    stat = stat_line(9, comm, minflt=minflt, majflt=majflt, utime=utime, stime=stime, start_ticks=start).encode()
    values = c_parse(stat, STATM, ksm, start=start)
    assert values["status"] == KSMTOP_OK
    assert ksm_of(values) == _ksm_stat_values(ksm)
    assert (values["minflt"], values["majflt"], values["cpu_ticks"]) == parse_stat(stat)[1:4]


def sample_both(root: FakeRoot) -> tuple[list, list]:
    """One table's sample through the compiled reader, then through the Python loop, of the same files."""
    with ProcessTable(root=root.path, scope="ksm", page_size=4096, clock_ticks=100) as table:
        table.discover()
        compiled = table.sample()
    with ProcessTable(root=root.path, scope="ksm", page_size=4096, clock_ticks=100, compiled=False) as table:
        table.discover()
        python = table.sample()
    return compiled, python


def test_a_table_reads_the_same_samples_either_way(tmp_path):
    root = FakeRoot(tmp_path)
    root.add_process(100, "qemu-system-x86", ["qemu-system-x86_64", "-name", "guest=a"], minflt=5)
    root.add_process(101, "worker", ksm_stat=ksm_stat_text(merging=4, profit=-4096))
    root.add_process(102, "old", ksm_stat=None, ksm_merging_pages="17\n")  # an older kernel
    root.add_process(103, "partial", ksm_stat="ksm_merging_pages 3\nksm_mergeable: yes\n")
    root.add_process(104, "odd) name", ksm_stat="ksm_rmap_items 2 extra\nksm_mergeable: yes\n")  # Python's path
    compiled, python = sample_both(root)
    assert compiled == python
    assert sorted(guest.pid for guest in compiled) == [100, 101, 102, 103, 104]
    assert all(
        type(guest.ksm_mergeable) is type(other.ksm_mergeable) for guest, other in zip(compiled, python, strict=True)
    )


@pytest.mark.parametrize("compiled", [True, False])
def test_a_process_that_cannot_be_read_or_was_replaced_is_dropped_either_way(tmp_path, compiled):
    root = FakeRoot(tmp_path)
    root.add_process(100, "a", ksm_stat=ksm_stat_text(merging=1))
    root.add_process(101, "b", ksm_stat=ksm_stat_text(merging=1))
    root.add_process(102, "c", ksm_stat=ksm_stat_text(merging=1))
    root.make_unreadable(100, "statm")  # it opens, its read fails (EISDIR): as a process gone mid-read
    with ProcessTable(root=root.path, scope="ksm", compiled=compiled) as table:
        table.discover()
        assert sorted(table.tracked) == [100, 101, 102]
        assert sorted(guest.pid for guest in table.sample()) == [101, 102]
        root.rewrite(101, "stat", stat_line(101, "b", start_ticks=1))  # the PID now names another process
        root.rewrite(102, "stat", stat_line(102, "c", state="Z"))  # exited, not yet reaped
        assert table.sample() == []
        assert table.tracked == {}
