"""KSM sysfs parsing, validation, warnings and explained errors (no kernel needed)."""

from __future__ import annotations

import errno

import pytest

from ksmtop.collect import ksm
from ksmtop.collect.ksm import read_ksm
from ksmtop.knobs import UINT_MAX, TunableError, explain_errno, validate, warning_for, writable_knobs
from ksmtop.model import KsmState
from tests.fixtures.tree import FakeRoot


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[none] scan-time\n", ("none", ("none", "scan-time"))),
        ("none [scan-time]\n", ("scan-time", ("none", "scan-time"))),
        ("100\n", (100, ())),
        ("-4096\n", (-4096, ())),  # general_profit may be negative
        ("0", (0, ())),
        ("hello\n", ("hello", ())),
    ],
)
def test_parse_sysfs_value(text, expected):
    assert ksm._parse(text) == expected


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("pages_to_scan", "100", "100"),
        ("pages_to_scan", " 100\n", "100"),  # surrounding white space is dropped
        ("pages_to_scan", "0100", "100"),  # canonical decimal
        ("pages_to_scan", "0", "0"),
        ("pages_to_scan", str(UINT_MAX), str(UINT_MAX)),
        ("run", "2", "2"),
        ("max_page_sharing", "2", "2"),
        ("max_page_sharing", str(2**31 - 1), str(2**31 - 1)),
        ("advisor_mode", "scan-time", "scan-time"),
        ("advisor_mode", " none ", "none"),
        ("advisor_max_cpu", "100", "100"),
    ],
)
def test_validate_accepts(name, text, expected):
    assert validate(name, text) == expected


@pytest.mark.parametrize(
    ("name", "text", "words"),
    [
        ("pages_to_scan", "12a", "digits only"),
        ("pages_to_scan", "-1", "digits only"),
        ("pages_to_scan", "+1", "digits only"),
        ("pages_to_scan", "1 2", "digits only"),
        ("pages_to_scan", "", "digits only"),
        ("pages_to_scan", "1.5", "digits only"),
        ("pages_to_scan", "0x10", "digits only"),
        ("pages_to_scan", "١٢", "digits only"),  # Arabic-Indic digits: str.isdigit() is True, the kernel's is not
        ("pages_to_scan", "²", "digits only"),
        ("pages_to_scan", "99999999999", "between 0 and 4294967295"),
        ("pages_to_scan", str(UINT_MAX + 1), "between 0 and 4294967295"),
        ("run", "3", "between 0 and 2"),
        ("max_page_sharing", "1", "between 2 and"),
        ("max_page_sharing", str(2**31), "between 2 and 2147483647"),
        ("merge_across_nodes", "2", "between 0 and 1"),
        ("advisor_max_cpu", "0", "between 1 and 100"),
        ("advisor_max_cpu", "101", "between 1 and 100"),
        ("advisor_target_scan_time", "0", "between 1 and"),
        ("advisor_mode", "[none]", "one of: none, scan-time"),
        ("advisor_mode", "fast", "one of: none, scan-time"),
        ("pages_shared", "1", "not a writable KSM tunable"),  # a read-only counter
        ("no_such_knob", "1", "not a writable KSM tunable"),
    ],
)
def test_validate_refuses(name, text, words):
    with pytest.raises(TunableError) as info:
        validate(name, text)
    assert words in str(info.value)
    assert info.value.errno is None


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("pages_to_scan", "0", "scans nothing"),
        ("sleep_millisecs", "60000", "sleeps 60 s"),
        ("sleep_millisecs", "3600000", "sleeps 3600 s"),
        ("run", "2", "unmerges every merged page"),
    ],
)
def test_warning_for(name, value, words):
    warning = warning_for(name, value)
    assert warning is not None and words in warning


@pytest.mark.parametrize(
    ("name", "value"),
    [("pages_to_scan", "1"), ("sleep_millisecs", "59999"), ("sleep_millisecs", "0"), ("run", "1"), ("run", "0")],
)
def test_no_warning(name, value):
    assert warning_for(name, value) is None


SCAN_TIME = KsmState(available=True, values={"advisor_mode": "scan-time"})
NO_ADVISOR = KsmState(available=True, values={"advisor_mode": "none"})


@pytest.mark.parametrize(
    ("name", "err", "state", "words"),
    [
        ("pages_to_scan", errno.EACCES, None, ["needs root"]),
        ("run", errno.EPERM, None, ["needs root"]),
        ("max_page_sharing", errno.EBUSY, None, ["EBUSY", "run=2", "change max_page_sharing", "run=1"]),
        ("merge_across_nodes", errno.EBUSY, None, ["EBUSY", "run=2", "run=1"]),
        ("run", errno.EBUSY, None, ["busy (EBUSY)"]),
        ("pages_to_scan", errno.EINVAL, SCAN_TIME, ["EINVAL", "advisor_mode=none first"]),
        ("pages_to_scan", errno.EINVAL, NO_ADVISOR, ["EINVAL", "value not accepted"]),
        ("pages_to_scan", errno.EINVAL, None, ["value not accepted"]),
        ("max_page_sharing", errno.EINVAL, None, ["max_page_sharing=7 (EINVAL)"]),
        ("smart_scan", errno.ENOENT, None, ["smart_scan does not exist on this kernel"]),
        ("run", errno.EIO, None, ["Input/output error"]),
    ],
)
def test_explain_errno(name, err, state, words):
    message = explain_errno(name, err, "7", state)
    for word in words:
        assert word in message


def test_read_ksm_fixture_typed(tmp_path):
    FakeRoot(tmp_path)
    state = read_ksm(tmp_path)
    assert state.available and state.error is None
    assert state.values["pages_to_scan"] == 100
    assert state.values["general_profit"] == -4096
    assert state.values["advisor_mode"] == "none"
    assert state.choices == {"advisor_mode": ("none", "scan-time")}
    assert state.running is True
    assert "smart_scan" not in state.values  # only what this "kernel" has
    assert [k.name for k in writable_knobs(state)] == [
        "run",
        "pages_to_scan",
        "sleep_millisecs",
        "max_page_sharing",
        "advisor_mode",
    ]


def test_read_ksm_without_ksm(tmp_path):
    FakeRoot(tmp_path, ksm=None)
    state = read_ksm(tmp_path)
    assert state == KsmState(available=False, error=state.error)
    assert state.error is not None
    assert "does not exist" in state.error and "CONFIG_KSM" in state.error
    assert state.running is False and state.get("run") is None


def test_read_ksm_skips_unreadable_file(tmp_path):
    tree = FakeRoot(tmp_path)
    (tree.ksm / "pages_volatile").mkdir()  # open() works, read() fails: as if unreadable
    state = read_ksm(tmp_path)
    assert "pages_volatile" not in state.values
    assert state.values["pages_sharing"] == 30


def test_write_tunable_on_tree(tmp_path):
    tree = FakeRoot(tmp_path)
    result = ksm.write_tunable("sleep_millisecs", " 250 ", root=tmp_path)
    assert (result.ok, result.old_value, result.new_value, result.warning) == (True, 20, 250, None)
    assert (tree.ksm / "sleep_millisecs").read_text() == "250"


def test_write_tunable_refused_by_validation_leaves_file(tmp_path):
    tree = FakeRoot(tmp_path)
    result = ksm.write_tunable("sleep_millisecs", "1e3", root=tmp_path)
    assert (result.ok, result.new_value, result.errno) == (False, 20, None)
    assert "digits only" in result.message
    assert (tree.ksm / "sleep_millisecs").read_text() == "20\n"


def test_write_tunable_missing_knob(tmp_path):
    FakeRoot(tmp_path)
    result = ksm.write_tunable("smart_scan", "0", root=tmp_path)
    assert (result.ok, result.errno, result.old_value) == (False, errno.ENOENT, None)
    assert result.message == "smart_scan does not exist on this kernel"
    assert not (tmp_path / "sys/kernel/mm/ksm/smart_scan").exists()


def test_a_five_thousand_digit_value_is_refused_in_words():
    with pytest.raises(TunableError, match="not a value"):
        validate("pages_to_scan", "9" * 5000)


def test_ksm_reader_keeps_files_open_and_sees_new_values(tmp_path):
    tree = FakeRoot(tmp_path)
    reader = ksm.KsmReader(tmp_path)
    try:
        assert reader.read() == read_ksm(tmp_path)
        (tree.ksm / "pages_to_scan").write_text("4321\n")  # in place, as sysfs changes under an open file
        assert reader.read().values["pages_to_scan"] == 4321
    finally:
        reader.close()


def test_ksm_reader_says_why_without_ksm(tmp_path):
    FakeRoot(tmp_path, ksm=None)
    state = ksm.KsmReader(tmp_path).read()
    assert not state.available and "does not exist" in state.error
