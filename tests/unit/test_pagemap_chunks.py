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
