"""model.guest_sample, the collector's fast GuestSample constructor, builds exactly what GuestSample() builds."""

from __future__ import annotations

import dataclasses

import pytest

from ksmtop.model import GuestSample, guest_sample

FIRST = (7, "web", "qemu", 99, 4096, 0, 4096, 1, 2, 3, 4, True, False, 1.5, 10, 1)
ALL = (*FIRST, 8192, 0.5, 12.0, 3.0, -1.0, 2.5, 40960, 0, 2097152)


@pytest.mark.parametrize("values", [FIRST, ALL], ids=["sampled fields", "every field"])
def test_builds_an_equal_frozen_guest_sample(values):
    built = guest_sample(*values)
    assert type(built) is GuestSample
    assert built == GuestSample(*values)
    assert hash(dataclasses.astuple(built)) == hash(dataclasses.astuple(GuestSample(*values)))
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.rss_bytes = 0  # type: ignore[misc]
    assert dataclasses.replace(built, rss_bytes=1).rss_bytes == 1


def test_missing_and_extra_values_fail_as_in_the_model():
    with pytest.raises(TypeError):
        guest_sample(*FIRST[:-1])
    with pytest.raises(TypeError):
        guest_sample(*ALL, 1)


def test_the_twin_matches_the_model_field_by_field():
    from ksmtop.model import _GuestSampleBuilder

    ours = [(f.name, f.default) for f in dataclasses.fields(GuestSample)]
    twin = [(f.name, f.default) for f in dataclasses.fields(_GuestSampleBuilder)]
    assert twin == ours
    assert _GuestSampleBuilder.__slots__ == GuestSample.__slots__


@pytest.mark.parametrize("changes", [{}, {"rss_bytes": 1}, {"cpu_percent": 12.5, "unmerge_debt_bytes": None}])
def test_replace_guest_is_dataclasses_replace(changes):
    from ksmtop.model import replace_guest

    guest = GuestSample(*ALL)
    replaced = replace_guest(guest, **changes)
    assert type(replaced) is GuestSample and replaced == dataclasses.replace(guest, **changes)
    assert guest == GuestSample(*ALL)  # the original is untouched
    with pytest.raises(dataclasses.FrozenInstanceError):
        replaced.rss_bytes = 0  # type: ignore[misc]
    with pytest.raises(KeyError):
        replace_guest(guest, no_such_field=1)
