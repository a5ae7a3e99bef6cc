"""Field metadata and the JSON round trip of the snapshot model."""

from __future__ import annotations

import dataclasses
import json

from ksmtop.model import FIELDS, GuestSample, HostSample, KsmRates, Snapshot, field_info, snapshot_from_dict, to_dict
from ksmtop.sampler import Sampler
from tests.fixtures.tree import FakeRoot, ksm_stat_text


def test_every_field_is_described():
    for cls in (GuestSample, HostSample, KsmRates):
        for f in dataclasses.fields(cls):
            info = FIELDS[f"{cls.__name__}.{f.name}"]
            assert info.description, f.name
    assert field_info(GuestSample, "rss_bytes").unit == "bytes"
    assert field_info(KsmRates, "saving_bytes").label == "Saving"


def test_json_round_trip(tmp_path):
    tree = FakeRoot(tmp_path)
    tree.add_process(100, "qemu-system-x86", ["qemu", "-name", "guest=g1"], ksm_stat=ksm_stat_text(merging=3))
    with Sampler(root=tmp_path) as sampler:
        sampler.sample()
        snap = sampler.sample()
    data = json.loads(json.dumps(to_dict(snap)))
    assert data["guests"][0]["ksm_merging_pages"] == 3
    assert data["ksm"]["values"]["advisor_mode"] == "none"
    back = snapshot_from_dict(data)
    assert isinstance(back, Snapshot)
    assert back == snap


def test_process_table_fills_guest_samples_in_the_models_field_order():
    import dataclasses

    from ksmtop.collect.procfs import SAMPLE_FIELDS
    from ksmtop.model import GuestSample

    names = [f.name for f in dataclasses.fields(GuestSample)]
    assert tuple(names[: len(SAMPLE_FIELDS)]) == SAMPLE_FIELDS
