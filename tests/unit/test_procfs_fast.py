"""The per-tick ksm_stat path (a layout learned once, then one split per read) agrees with the careful parser on
every shape a kernel or a damaged file can give; a process table samples through it."""

from __future__ import annotations

import pytest

from ksmtop.collect import procfs
from ksmtop.collect.procfs import ProcessTable, ksm_layout, ksm_values_by_layout
from tests.fixtures.tree import FakeRoot, ksm_stat_text

KERNEL_6_18 = (
    b"ksm_rmap_items 10\nksm_zero_pages 3\nksm_merging_pages 8\nksm_process_profit 20480\n"
    b"ksm_merge_any: no\nksm_mergeable: yes\n"
)


@pytest.mark.parametrize(
    "data",
    [
        KERNEL_6_18,
        KERNEL_6_18.replace(b"10", b"4000000000000"),
        KERNEL_6_18.replace(b"20480", b"-320"),
        KERNEL_6_18.replace(b"ksm_merge_any: no", b"ksm_merge_any: yes"),
        KERNEL_6_18.replace(b"8\n", b"lots\n"),  # a number that is not one: the careful path
        b"ksm_zero_pages 3\nksm_rmap_items 10\nksm_merging_pages 8\nksm_process_profit 1\n"
        b"ksm_mergeable: no\nksm_merge_any: no\n",  # another order than the one learned
        b"ksm_rmap_items 512\n",  # an older kernel
        b"",  # a zombie
        KERNEL_6_18 + b"ksm_new_field 9\n",
    ],
)
def test_the_learned_layout_agrees_with_the_careful_parser(data):
    layout = ksm_layout(KERNEL_6_18)
    assert layout is not None
    assert ksm_values_by_layout(data, layout) == procfs._ksm_stat_values(data)


def test_no_layout_is_learned_from_a_file_that_lacks_a_name():
    assert ksm_layout(b"ksm_rmap_items 512\n") is None
    assert ksm_layout(b"ksm_merging_pages 5 extra\n") is None


def test_a_table_samples_through_the_learned_layout(tmp_path):
    tree = FakeRoot(tmp_path)
    tree.add_process(100, "qemu-system-x86", ksm_stat=ksm_stat_text(merging=7, zero=2, rmap=9, profit=100))
    tree.add_process(101, "qemu-system-x86", ksm_stat=ksm_stat_text(merging=70, zero=20, rmap=90, profit=1000))
    with ProcessTable(root=tree.path, compiled=False) as table:  # the Python loop learns the layout
        table.discover()
        samples = {g.pid: g for g in table.sample()}
        assert table._ksm_layout is not None
        again = {g.pid: g for g in table.sample()}
    assert samples == again
    assert (samples[100].ksm_merging_pages, samples[101].ksm_merging_pages) == (7, 70)
    assert (samples[101].ksm_zero_pages, samples[101].ksm_rmap_items) == (20, 90)
