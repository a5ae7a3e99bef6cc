"""Text from outside ksmtop made safe to show, once, where it enters.

Process names, qemu's ``-name``, libvirt domain and host names, libvirt's and the kernel's error texts, event
texts and everything a recording holds come from other people. On a shared host any local user can start a
process called ``qemu-system-x86_64 -name guest=<ESC>]0;TITLE<BEL>``; printed raw, that retitles root's terminal
or worse. ``safe()`` turns every C0 and C1 control character, DEL and the Unicode bidirectional overrides into
visible escapes (``\\x1b``, ``\\u202e``) and caps the length, so what reaches a screen, a file or a label value is
one line of printable text. Markup is a separate matter: the screen shows these strings as plain text, never as
Textual or Rich markup.

No UI imports: collectors, the recording reader and the exporter all use it.
"""

from __future__ import annotations

import re

NAME_LIMIT = 200
"""Longest name kept (characters): libvirt allows domain names of any length; a screen row does not."""
TEXT_LIMIT = 500
"""Longest message kept (error texts, event texts, notes)."""
ELLIPSIS = "…"

# C0 controls, DEL, C1 controls; the bidi embeddings, overrides and isolates; the directional marks; line and
# paragraph separators (they break a line as \n does).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def safe(text: object, limit: int = TEXT_LIMIT) -> str:
    """One printable line: controls and bidi overrides escaped, at most ``limit`` characters (then '…').

    Anything that is not a str (None, bytes, numbers from a malformed file) is shown through repr() for bytes
    and str() for the rest, so a caller never has to check the type first.
    """
    if not isinstance(text, str):
        text = repr(text) if isinstance(text, bytes | bytearray) else str(text)
    if _UNSAFE.search(text):
        text = _UNSAFE.sub(_escape, text)
    if len(text) > limit:
        text = text[: max(0, limit - 1)] + ELLIPSIS
    return text


def one_line(text: object, limit: int = TEXT_LIMIT) -> str:
    """safe() of a text that may span lines (an error from a daemon or a peer): whitespace runs, newlines
    included, become one space first, so the message reads as one line rather than with escaped newlines."""
    return safe(" ".join(str(text).split()), limit)


def safe_name(text: object) -> str:
    """A name (guest, domain, host, process): safe() with the shorter NAME_LIMIT."""
    return safe(text, NAME_LIMIT)


def safe_optional(text: object, limit: int = TEXT_LIMIT) -> str | None:
    """safe() that keeps None as None (optional fields such as an error that is not there)."""
    return None if text is None else safe(text, limit)


def is_safe(text: str, limit: int = TEXT_LIMIT) -> bool:
    """True when safe() would return ``text`` unchanged."""
    return len(text) <= limit and not _UNSAFE.search(text)
