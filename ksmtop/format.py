"""Numbers with their units, for the screen and the headless text output. No UI imports."""

from __future__ import annotations

_BINARY = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def human_bytes(value: float | None, signed: bool = False) -> str:
    """1536 -> '1.5 KiB'; None -> '–' (unknown)."""
    if value is None:
        return "–"
    sign = "-" if value < 0 else ("+" if signed and value > 0 else "")
    amount = abs(float(value))
    for unit in _BINARY:
        if amount < 1024 or unit == _BINARY[-1]:
            if unit == "B":
                return f"{sign}{amount:.0f} B"
            return f"{sign}{amount:.1f} {unit}" if amount < 100 else f"{sign}{amount:.0f} {unit}"
        amount /= 1024
    raise AssertionError("unreachable")


def human_count(value: float | None, unit: str = "") -> str:
    """12345 -> '12.3k'; None -> '–'."""
    if value is None:
        return "–"
    suffix = f" {unit}" if unit else ""
    amount = abs(float(value))
    sign = "-" if value < 0 else ""
    for scale, letter in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if amount >= scale:
            return f"{sign}{amount / scale:.1f}{letter}{suffix}"
    if float(amount).is_integer():
        return f"{sign}{amount:.0f}{suffix}"
    return f"{sign}{amount:.1f}{suffix}"


def human_rate(value: float | None, unit: str) -> str:
    """A per-second figure: human_rate(4200, 'pages') -> '4.2k pages/s'."""
    if value is None:
        return "–"
    return f"{human_count(value)} {unit}/s"


def human_seconds(value: float | None) -> str:
    if value is None:
        return "–"
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 120:
        return f"{value:.1f} s"
    if value < 7200:
        return f"{value / 60:.1f} min"
    return f"{value / 3600:.1f} h"


def percent(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}%"
