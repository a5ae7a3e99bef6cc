"""The guest table's columns: label, unit and description come from the model's FIELDS."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ksmtop.format import human_bytes, human_count, percent
from ksmtop.model import GuestSample, field_info

Getter = Callable[[GuestSample, int], float | int | str | None]


@dataclass(frozen=True, slots=True)
class Column:
    key: str
    label: str
    value: Getter
    show: Callable[[float | int | str | None], str]
    description: str
    numeric: bool = True


def _from_field(name: str, show: Callable[[float | int | str | None], str], label: str | None = None) -> Column:
    info = field_info(GuestSample, name)
    unit = f" ({info.unit})" if info.unit else ""
    return Column(
        key=name,
        label=label or info.label,
        value=lambda guest, _page, name=name: getattr(guest, name),
        show=show,
        description=f"{info.description}{unit}",
        numeric=name not in ("name",),
    )


def _pages(value: float | int | str | None) -> str:
    return human_count(value if not isinstance(value, str) else None)


def _bytes(value: float | int | str | None) -> str:
    return human_bytes(value if not isinstance(value, str) else None)


def _text(value: float | int | str | None) -> str:
    return "" if value is None else str(value)


def _rate(value: float | int | str | None) -> str:
    return human_count(value if not isinstance(value, str) else None)


def _percent(value: float | int | str | None) -> str:
    return percent(value if not isinstance(value, str) else None)


COLUMNS: tuple[Column, ...] = (
    _from_field("name", _text),
    _from_field("pid", _text),
    _from_field("rss_bytes", _bytes),
    _from_field("shared_bytes", _bytes),
    _from_field("ksm_merging_pages", _pages, "Merged pg"),
    Column(
        "merged_bytes",
        "Merged",
        lambda guest, page: guest.merged_bytes(page),
        _bytes,
        "merged pages in bytes (real page size)",
    ),
    Column(
        "merged_percent",
        "%RSS",
        lambda guest, page: guest.merged_percent(page),
        _percent,
        "share of RSS that KSM has merged (%)",
    ),
    _from_field("ksm_zero_pages", _pages),
    _from_field("ksm_process_profit_bytes", _bytes),
    _from_field("cpu_percent", _percent),
    _from_field("faults_per_s", _rate),
    _from_field("perf_faults_per_s", _rate),
)

COLUMN_KEYS = tuple(column.key for column in COLUMNS)
BY_KEY = {column.key: column for column in COLUMNS}
