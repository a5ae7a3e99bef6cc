"""safe(): text from outside becomes one printable line, controls and bidi overrides escaped, length capped."""

from __future__ import annotations

import pytest

from ksmtop.safetext import ELLIPSIS, NAME_LIMIT, is_safe, safe, safe_name, safe_optional


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("lab-1", "lab-1"),
        ("vm[x=1=2]y", "vm[x=1=2]y"),  # markup is not this module's business: the screen shows plain text
        ("\x1b]0;TITLE\x07\x1b[31mred", "\\x1b]0;TITLE\\x07\\x1b[31mred"),
        ("tab\there\nnewline\r", "tab\\x09here\\x0anewline\\x0d"),
        ("del\x7f c1\x85\x9b", "del\\x7f c1\\x85\\x9b"),
        ("abc\u202edcba\u2066x\u2069", "abc\\u202edcba\\u2066x\\u2069"),
        ("line\u2028sep", "line\\u2028sep"),
        ("ünïcödé 名前", "ünïcödé 名前"),
    ],
)
def test_controls_and_bidi_overrides_are_escaped(raw, shown):
    assert safe(raw) == shown
    assert is_safe(safe(raw))


def test_long_text_is_capped_with_an_ellipsis():
    assert safe("x" * 1000, limit=10) == "x" * 9 + ELLIPSIS
    assert len(safe_name("n" * 5000)) == NAME_LIMIT


def test_escaping_never_leaves_a_raw_escape_even_when_capped():
    text = safe("\x1b" * 400, limit=50)
    assert "\x1b" not in text and len(text) == 50


def test_non_strings_become_text():
    assert safe(b"a\x1b") == "b'a\\x1b'"
    assert safe(12) == "12"
    assert safe_optional(None) is None
    assert safe_optional("\x07") == "\\x07"
