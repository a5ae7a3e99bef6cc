"""The one codec for Snapshot <-> dict: what --json prints, what recordings store and what export writes, and
how an untrusted dict is checked on the way in (types from the model, numbers in range, strings made safe)."""

from __future__ import annotations

import dataclasses
import json

import pytest

from ksmtop import codec, model
from ksmtop.cli import headless
from ksmtop.codec import CodecError, snapshot_from_dict, snapshot_to_dict, stored
from ksmtop.model import Event
from ksmtop.safetext import NAME_LIMIT, TEXT_LIMIT
from tests.support.hostile_recordings import CONTROLS, MARKUP, base_session

SESSION = base_session()
SNAPSHOT = SESSION[3]  # carries an event, a domain and a libvirt status


def test_json_output_is_what_dataclasses_asdict_gave():
    """--json keeps its shape: the codec's dict is the model's fields, in order, as before."""
    for snapshot in SESSION:
        assert json.dumps(snapshot_to_dict(snapshot)) == json.dumps(dataclasses.asdict(snapshot))


def test_print_json_uses_the_codec(capsys):
    hostile = dataclasses.replace(SNAPSHOT, libvirt_status=CONTROLS)
    headless.print_json(hostile)
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(json.dumps(snapshot_to_dict(hostile)))


def test_round_trip_through_json_is_exact():
    for snapshot in SESSION:
        assert snapshot_from_dict(json.loads(json.dumps(snapshot_to_dict(snapshot)))) == snapshot
        assert model.snapshot_from_dict(model.to_dict(snapshot)) == snapshot  # the model's thin wrappers


def test_stored_rounds_floats_redacts_and_makes_safe():
    guest = dataclasses.replace(SNAPSHOT.guests[0], name="vm\x1b[31m password=hunter2", cpu_percent=12.3456789)
    event = Event(SNAPSHOT.time + 0.00049, "note", "qemu -object secret,id=s,data=TOPSECRET", {"argv": ["token=x"]})
    snapshot = dataclasses.replace(SNAPSHOT, guests=(guest,), events=(event,), time=SNAPSHOT.time + 0.0004)
    kept = stored(snapshot)
    assert kept.guests[0].name == "vm\\x1b[31m password=<redacted>"
    assert kept.guests[0].cpu_percent == 12.3457
    assert kept.time == round(snapshot.time, 3)
    assert kept.events[0].text == "qemu -object secret,id=s,data=<redacted>"
    assert kept.events[0].data == {"argv": ["token=<redacted>"]}
    assert stored(kept) == kept


def test_stored_turns_a_float_that_is_not_finite_into_null():
    rates = dataclasses.replace(SNAPSHOT.rates, sharing_ratio=float("nan"), full_scan_seconds=float("inf"))
    kept = stored(dataclasses.replace(SNAPSHOT, rates=rates))
    assert kept.rates.sharing_ratio is None and kept.rates.full_scan_seconds is None


def good() -> dict:
    return json.loads(json.dumps(snapshot_to_dict(SNAPSHOT)))


def _guest(key, value):
    return lambda d: d["guests"][0].__setitem__(key, value)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_guest("rss_bytes", "1 GiB"), 'guest.rss_bytes should be int, not "1 GiB"'),
        (_guest("rss_bytes", 1.5), "guest.rss_bytes should be int, not 1.5"),
        (_guest("rss_bytes", True), "guest.rss_bytes should be int, not true"),
        (_guest("rss_bytes", 2**64), "guest.rss_bytes is out of range (a 65-bit integer)"),
        (_guest("minor_faults", -(2**63) - 1), "guest.minor_faults is out of range"),
        (_guest("cpu_percent", float("inf")), "guest.cpu_percent should be a finite number, not inf"),
        (_guest("cpu_percent", float("nan")), "guest.cpu_percent should be a finite number, not nan"),
        (_guest("cpu_percent", 1e300), "guest.cpu_percent is out of range"),
        (_guest("cpu_percent", 10**400), "guest.cpu_percent is out of range"),
        (_guest("ksm_mergeable", 1), "guest.ksm_mergeable should be bool or null, not 1"),
        (_guest("name", None), "guest.name should be str, not null"),
        (lambda d: d["guests"][0].pop("pid"), "guest lacks pid"),
        (lambda d: d["guests"].append(d["guests"][0]), "guests lists PID 4000 twice"),
        (lambda d: d.update(time=-1e18), "snapshot.time is not a time between 1970 and 9999"),
        (lambda d: d.update(time=1e300), "snapshot.time is out of range"),
        (lambda d: d.update(time="noon"), "snapshot.time is missing or not a number"),
        (lambda d: d.update(interval_s=-1), "snapshot.interval_s is out of range"),
        (lambda d: d.update(interval_s="abc"), 'snapshot.interval_s should be a number or null, not "abc"'),
        (lambda d: d.update(scope="all"), "snapshot.scope should be 'qemu' or 'ksm'"),
        (lambda d: d.update(mode="cloud"), "snapshot.mode should be 'local' or 'remote'"),
        (lambda d: d.update(libvirt_status=5), "snapshot.libvirt_status should be a string or null"),
        (lambda d: d["ksm"]["values"].update(run=[1]), "ksm.values.run should be a number or a string"),
        (lambda d: d["ksm"]["values"].update(run=10**30), "ksm.values.run is out of range"),
        (lambda d: d["ksm"].update(choices={"a": "b"}), "ksm.choices should map names to lists of strings"),
        (lambda d: d["ksm"].update(error=["x"]), "ksm.error should be a string or null"),
        (lambda d: d["host"].pop("page_size"), "host lacks page_size"),
        (lambda d: d["domains"][0].update(vcpus="two"), 'domain.vcpus should be int, not "two"'),
        (lambda d: d.update(guests={}), "guests should be a list"),
        (lambda d: d["events"].append({"time": -1, "kind": "x", "text": "y"}), "event.time is not a time"),
        (lambda d: d["events"].append({"time": 1, "kind": 2, "text": "y"}), "event.kind is missing"),
        (lambda d: d["events"].append({"time": 1, "kind": "k", "text": "t", "data": [1]}), "event.data is missing"),
        (lambda d: d["events"].append({"time": 1, "kind": "k", "text": "t", "data": {"x": 1e999}}), "finite"),
    ],
)
def test_untrusted_dict_gives_one_error_naming_the_field(change, message):
    data = good()
    change(data)
    with pytest.raises(CodecError) as caught:
        snapshot_from_dict(data)
    assert message in str(caught.value)
    assert isinstance(caught.value, ValueError)  # model.snapshot_from_dict's callers catch ValueError


def test_event_data_nested_deeper_than_the_limit_is_refused():
    nested: object = 1
    for _ in range(codec.DATA_DEPTH + 1):
        nested = [nested]
    data = good()
    data["events"] = [{"time": 1.0, "kind": "note", "text": "t", "data": {"x": nested}}]
    with pytest.raises(CodecError, match="nested deeper than 8 levels"):
        snapshot_from_dict(data)


def test_every_string_coming_in_is_made_safe_and_stays_a_plain_str():
    data = good()
    data["guests"][0]["name"] = "vm" + CONTROLS
    data["domains"][0]["name"] = MARKUP
    data["domains"][0]["uuid"] = "u" * 1000
    data["ksm"]["error"] = CONTROLS + "x" * 1000
    data["ksm"]["values"]["advisor_mode"] = "\x1b[2J"
    data["ksm"]["values"]["knob\x1b"] = 1
    data["libvirt_status"] = "[/]" + CONTROLS
    data["host"]["trace_status"] = "\u202eevil"
    data["events"] = [
        {"time": 1.0, "kind": "note\x07", "text": "[@click=app.quit]" + CONTROLS, "data": {"k\x1b": "\x9b"}}
    ]
    snapshot = snapshot_from_dict(data)
    assert snapshot.guests[0].name == "vm\\x1b]0;TITLE\\x07\\x1b[31mred\\x9b2J\\u202eevil\\x00"
    assert snapshot.domains[0].name == MARKUP and type(snapshot.domains[0].name) is str  # markup is the screen's job
    assert len(snapshot.domains[0].uuid) == NAME_LIMIT
    assert snapshot.ksm.error.startswith("\\x1b]0;TITLE") and len(snapshot.ksm.error) == TEXT_LIMIT
    assert snapshot.ksm.values["advisor_mode"] == "\\x1b[2J" and "knob\\x1b" in snapshot.ksm.values
    assert snapshot.libvirt_status.startswith("[/]\\x1b]0;TITLE")
    assert snapshot.host.trace_status == "\\u202eevil"
    assert snapshot.events[0].kind == "note\\x07"
    assert snapshot.events[0].text.startswith("[@click=app.quit]\\x1b]0;")
    assert snapshot.events[0].data == {"k\\x1b": "\\x9b"}


def test_field_types_come_from_the_model_annotations():
    assert codec.GUEST_TYPES["rss_bytes"].kinds == (int,) and not codec.GUEST_TYPES["rss_bytes"].nullable
    assert codec.GUEST_TYPES["ksm_merging_pages"].nullable
    assert codec.HOST_TYPES["trace_status"].kinds == (str,)
    assert codec.RATES_TYPES["sharing_ratio"].kinds == (float,)
    assert set(codec.DOMAIN_TYPES) == {f.name for f in dataclasses.fields(model.DomainSample)}


def test_codec_recordings_and_files_import_without_ui():
    import subprocess
    import sys

    modules = ["ksmtop.codec", "ksmtop.outfile", "ksmtop.recording", "ksmtop.export"]
    code = "import sys\n" + "".join(f"import {m}\n" for m in modules)
    code += "print(sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
