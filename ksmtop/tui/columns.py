"""The guest table's columns: label, unit and description come from the model's FIELDS."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ksmtop.format import human_bytes, human_count, percent
from ksmtop.model import DomainSample, GuestSample, field_info
from ksmtop.rows import GuestRow

Value = float | int | str | None
Getter = Callable[[GuestRow, int], Value]


@dataclass(frozen=True, slots=True)
class Column:
    key: str
    label: str
    value: Getter
    show: Callable[[Value], str]
    description: str
    numeric: bool = True


def _describe(cls: type, name: str) -> str:
    info = field_info(cls, name)
    return info.description + (f" ({info.unit})" if info.unit else "")


def _from_field(name: str, show: Callable[[Value], str], label: str | None = None) -> Column:
    """A column of the process's figure (empty for a domain with no process here)."""
    return Column(
        key=name,
        label=label or field_info(GuestSample, name).label,
        value=lambda row, _page, name=name: None if row.guest is None else getattr(row.guest, name),
        show=show,
        description=_describe(GuestSample, name),
    )


def _from_domain(name: str, show: Callable[[Value], str], key: str = "") -> Column:
    """A column of the libvirt domain's figure (empty for a process that is no domain)."""
    return Column(
        key=key or f"domain_{name}",
        label=field_info(DomainSample, name).label,
        value=lambda row, _page, name=name: None if row.domain is None else getattr(row.domain, name),
        show=show,
        description=_describe(DomainSample, name),
        numeric=name != "state",
    )


def _not_text(value: Value) -> float | int | None:
    return None if isinstance(value, str) else value


def _pages(value: Value) -> str:
    return human_count(_not_text(value))


def _bytes(value: Value) -> str:
    return human_bytes(_not_text(value))


def _text(value: Value) -> str:
    return "" if value is None else str(value)


def _percent(value: Value) -> str:
    return percent(_not_text(value))


COLUMNS: tuple[Column, ...] = (
    Column(
        "name",
        "Name",
        lambda row, _page: row.name,
        _text,
        "domain name, else qemu's -name, else the process name",
        False,
    ),
    Column("pid", "PID", lambda row, _page: row.pid, _text, "process ID of the guest's qemu process"),
    _from_domain("state", _text),
    Column("rss_bytes", "RSS", lambda row, _page: row.rss_bytes, _bytes, _describe(GuestSample, "rss_bytes")),
    _from_field("shared_bytes", _bytes),
    _from_field("ksm_merging_pages", _pages, "Merged pg"),
    Column(
        "merged_bytes",
        "Merged",
        lambda row, page: None if row.guest is None else row.guest.merged_bytes(page),
        _bytes,
        "merged pages in bytes (real page size)",
    ),
    Column(
        "merged_percent",
        "%RSS",
        lambda row, page: None if row.guest is None else row.guest.merged_percent(page),
        _percent,
        "share of RSS that KSM has merged (%)",
    ),
    _from_field("ksm_zero_pages", _pages),
    _from_field("ksm_process_profit_bytes", _bytes),
    _from_field("unmerge_debt_bytes", _bytes),
    _from_field("cpu_percent", _percent),
    _from_field("faults_per_s", _pages),
    _from_field("perf_faults_per_s", _pages),
    _from_domain("faults_per_s", _pages),
    _from_domain("vcpus", _text),
    _from_domain("memory_bytes", _bytes),
)

COLUMN_KEYS = tuple(column.key for column in COLUMNS)
BY_KEY = {column.key: column for column in COLUMNS}
