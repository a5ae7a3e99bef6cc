"""pagemap read in bounded chunks gives the same report as one read per area, wherever the chunk edges fall."""

from __future__ import annotations

import pytest

from ksmtop.collect import pagemap
from ksmtop.collect.pagemap import sharing
from tests.unit.test_pagemap_tree import tree  # noqa: F401 (the fixture)


@pytest.mark.parametrize("chunk_entries", [1, 2, 3, 5, 7, 16, 1024])
@pytest.mark.parametrize("exact", [False, True])
def test_chunked_reads_give_the_same_report(tree, monkeypatch, chunk_entries, exact):  # noqa: F811
    whole = sharing([10, 20, 30], root=tree, exact=exact)
    monkeypatch.setattr(pagemap, "PAGEMAP_CHUNK_BYTES", chunk_entries * 8)
    chunked = sharing([10, 20, 30], root=tree, exact=exact)
    assert chunked.guests == whole.guests and chunked.pairs == whole.pairs
    assert chunked.flags_read == whole.flags_read and whole.guests[0].merged_pages > 0


def test_random_trees_match_a_brute_force_count(tmp_path, monkeypatch):
    """Guests map random PFNs (KSM, zero, private, some twice); every figure equals a count done by hand, with the
    per-guest bit masks and with the sorted-set fallback used beyond 64 guests."""
    import random
    from collections import Counter

    from tests.unit.test_pagemap_tree import ZERO_PFN, entry, write_kpageflags, write_process

    rng = random.Random(7)
    ksm_pfns = set(range(100, 160))
    pids = list(range(10, 17))
    maps = {}
    for pid in pids:
        pfns = [
            rng.choice([*ksm_pfns, ZERO_PFN, 1000 + pid * 100 + rng.randrange(50)]) for _ in range(rng.randrange(1, 16))
        ]
        maps[pid] = pfns
        write_process(tmp_path, pid, [entry(pfn, exclusive=False) for pfn in pfns])
    flags = {pfn: 1 << pagemap.KPF_KSM for pfn in ksm_pfns} | {ZERO_PFN: 1 << pagemap.KPF_ZERO_PAGE}
    write_kpageflags(tmp_path, flags | {pfn: 0 for pfns in maps.values() for pfn in pfns if pfn not in flags})
    expected_pairs = {
        (a, b): len(set(maps[a]) & set(maps[b]) & ksm_pfns) for i, a in enumerate(pids) for b in pids[i + 1 :]
    }
    for mask_bits in (64, 3):
        monkeypatch.setattr(pagemap.KsmOwners, "MASK_BITS", mask_bits)
        report = sharing(pids, root=tmp_path, exact=True)
        assert report.pairs == expected_pairs
        for guest in report.guests:
            merged = [pfn for pfn in maps[guest.pid] if pfn in ksm_pfns]
            assert (guest.merged_pages, guest.distinct_merged) == (len(merged), len(set(merged)))
            assert guest.internal_pages == sum(n - 1 for n in Counter(merged).values())
            assert guest.zero_pages == maps[guest.pid].count(ZERO_PFN)


def test_quick_candidates_and_unchecked_pages_match_a_brute_force_count(tmp_path):
    """The quick report reads flags only for PFNs mapped twice here or not mapped once on the host."""
    import random
    from collections import Counter

    from tests.unit.test_pagemap_tree import entry, write_kpageflags, write_process

    rng = random.Random(11)
    pids = list(range(10, 15))
    maps = {}
    for pid in pids:
        maps[pid] = [(rng.randrange(100, 140), rng.random() < 0.5) for _ in range(rng.randrange(1, 16))]
        write_process(tmp_path, pid, [entry(pfn, exclusive=excl) for pfn, excl in maps[pid]])
    write_kpageflags(tmp_path, {pfn: 1 << pagemap.KPF_KSM for pfn in range(100, 140)})
    counts = Counter(pfn for pages in maps.values() for pfn, _ in pages)
    shared = {pfn for pages in maps.values() for pfn, excl in pages if not excl}
    candidates = {pfn for pfn, n in counts.items() if n > 1} | shared
    report = sharing(pids, root=tmp_path)
    assert report.flags_read == len(candidates)
    for guest in report.guests:
        unchecked = sum(1 for pfn, excl in maps[guest.pid] if excl and pfn not in candidates)
        assert guest.unchecked_pages == unchecked
        assert guest.merged_pages == sum(1 for pfn, _ in maps[guest.pid] if pfn in candidates)
