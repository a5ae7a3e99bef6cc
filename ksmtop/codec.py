"""Snapshot <-> dict: the one codec that `--json` output, recordings (writer and reader) and export use.

Out (``snapshot_to_dict``): a JSON-ready dict with the model's field names. ``stored=True`` applies the rules of
a recording: measured floats rounded to FLOAT_DIGITS significant digits (times to the millisecond), a float that
is not finite stored as null, every string passed through redact() and then safe().

In (``snapshot_from_dict`` and the field helpers the recording reader uses on its deltas): the dict is untrusted.
Field types come from the model's annotations; a value of the wrong type, a number that is not finite or that no
counter can hold, a time outside 1970..9999 or a duplicate PID raise CodecError, whose message names the field
(``guest.rss_bytes should be int, not "1 GiB"``). Every string that comes in is made safe with safe() (names
with safe_name()), the same rule the live collectors apply, so a file cannot bring terminal controls along.

No Textual or Rich imports here (tests/unit/test_layering.py checks it).
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import types
import typing
from dataclasses import dataclass
from typing import Any

from ksmtop.model import DomainSample, Event, GuestSample, HostSample, KsmRates, KsmState, Snapshot
from ksmtop.safetext import safe, safe_name

FLOAT_DIGITS = 6
"""Significant digits a recording keeps for measured floats (rates, percentages); times keep milliseconds."""
INT_MIN, INT_MAX = -(2**63), 2**64 - 1
"""Integers outside what a 64-bit counter holds are refused (a 4000-digit number is not a page count)."""
FLOAT_LIMIT = 2.0**64
"""Floats beyond this magnitude are refused (no rate or size of a host gets there)."""
TIME_MIN, TIME_MAX = 0.0, 253_402_300_799.0
"""Sample and event times: Unix seconds from 1970 to the end of the year 9999 (what localtime/strftime show)."""
INTERVAL_MAX_S = 366 * 86400.0
"""Longest time between two samples (a suspended host) a recording may claim."""
DATA_DEPTH = 8
"""Deepest nesting accepted in an event's data."""
SCOPES = ("qemu", "ksm")
MODES = ("local", "remote")
NAME_FIELDS = frozenset({"name", "kind", "uuid", "state"})
"""String fields that are names or short words: capped at safetext.NAME_LIMIT; other strings at TEXT_LIMIT."""


class CodecError(ValueError):
    """A dict that does not fit the model; the message names the field, e.g. 'guest.pid should be int'."""


# --- redaction --------------------------------------------------------------------------------------------

REDACTED = "<redacted>"
_SECRET_OPTION = re.compile(r"(?i)(?<![\w-])(data|password|passwd|passphrase|secret|token|api[_-]?key|auth)=([^,\s]+)")
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@]+):([^@\s/]+)@")
_SECRET_FLAG = re.compile(r"(?i)((?<!\S)--?(?:password|passwd|passphrase|secret|token)(?:\s+|=))(\S+)")


def redact(text: str) -> str:
    """Hide secrets that qemu command lines and similar strings carry.

    `-object secret,id=s0,data=SECRET` keeps its id but not its data; `password=`, `passphrase=`, `token=` ...
    options, `--password X` flags and passwords in URLs (`iscsi://user:pass@host`) are replaced by <redacted>.
    Options naming a secret object (`password-secret=s0`, `key-secret=`) are ids, not secrets, and stay.
    """
    if "=" not in text and "@" not in text and "-" not in text:
        return text
    text = _SECRET_OPTION.sub(lambda m: f"{m.group(1)}={REDACTED}", text)
    text = _URL_PASSWORD.sub(lambda m: f"{m.group(1)}:{REDACTED}@", text)
    return _SECRET_FLAG.sub(lambda m: f"{m.group(1)}{REDACTED}", text)


def redact_value(value: Any) -> Any:
    """redact() applied to every string inside dicts, lists and tuples."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: redact_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(item) for item in value]
    return value


def stored_text(text: str, name: bool = False) -> str:
    """A string as a recording stores it: redacted, then made safe."""
    return safe_name(redact(text)) if name else safe(redact(text))


# --- field types (from the model's annotations) -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FieldType:
    """What one model field accepts."""

    name: str
    kinds: tuple[type, ...]
    nullable: bool
    required: bool

    def describe(self) -> str:
        names = ["number" if k is float else k.__name__ for k in self.kinds]
        return " or ".join(names + (["null"] if self.nullable else []))


def field_types(cls: type) -> dict[str, FieldType]:
    """The fields of a model dataclass with the types their annotations allow (Literal counts as str)."""
    hints = typing.get_type_hints(cls)
    table = {}
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        args = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
        kinds: list[type] = []
        for arg in args:
            if arg is type(None):
                continue
            kinds.append(str if typing.get_origin(arg) is typing.Literal else arg)
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        table[f.name] = FieldType(f.name, tuple(kinds), type(None) in args, required)
    return table


GUEST_TYPES = field_types(GuestSample)
HOST_TYPES = field_types(HostSample)
RATES_TYPES = field_types(KsmRates)
DOMAIN_TYPES = field_types(DomainSample)
ROW_TYPES: dict[type, dict[str, FieldType]] = {
    GuestSample: GUEST_TYPES,
    HostSample: HOST_TYPES,
    KsmRates: RATES_TYPES,
    DomainSample: DOMAIN_TYPES,
}


def show(value: Any) -> str:
    """A bad value, short and printable, for an error message."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return f"a {value.bit_length()}-bit integer"
    try:
        text = json.dumps(value, ensure_ascii=True)
    except (TypeError, ValueError):
        text = type(value).__name__
    return text if len(text) <= 40 else text[:39] + "…"


def clean_int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise CodecError(f"{where} should be int, not {show(value)}")
    if not INT_MIN <= value <= INT_MAX:
        raise CodecError(f"{where} is out of range ({show(value)})")
    return value


def clean_float(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CodecError(f"{where} should be number, not {show(value)}")
    try:
        number = float(value)
    except OverflowError:
        raise CodecError(f"{where} is out of range ({show(value)})") from None
    if not math.isfinite(number):
        raise CodecError(f"{where} should be a finite number, not {value!r}")
    if abs(number) > FLOAT_LIMIT:
        raise CodecError(f"{where} is out of range ({show(value)})")
    return number


def clean_value(value: Any, kind: FieldType, where: str) -> Any:
    """One field's value from an untrusted dict: type-checked, range-checked, strings made safe."""
    if value is None:
        if kind.nullable:
            return None
    elif isinstance(value, bool):
        if bool in kind.kinds:
            return value
    elif float in kind.kinds and isinstance(value, int | float):
        return clean_float(value, where)
    elif int in kind.kinds and isinstance(value, int):
        return clean_int(value, where)
    elif str in kind.kinds and isinstance(value, str):
        return safe_name(value) if kind.name in NAME_FIELDS else safe(value)
    raise CodecError(f"{where} should be {kind.describe()}, not {show(value)}")


def clean_fields(data: Any, table: dict[str, FieldType], where: str) -> dict[str, Any]:
    """The known fields of ``data`` (all, or only some: a recording's delta), cleaned; unknown keys ignored."""
    if not isinstance(data, dict):
        raise CodecError(f"{where} should be an object, not {type(data).__name__}")
    return {key: clean_value(value, table[key], f"{where}.{key}") for key, value in data.items() if key in table}


def missing(row: dict[str, Any], table: dict[str, FieldType]) -> list[str]:
    """Required fields that ``row`` lacks."""
    return [name for name, kind in table.items() if kind.required and name not in row]


def complete_row(data: Any, cls: type, where: str) -> Any:
    """A whole dataclass row (GuestSample, HostSample, KsmRates, DomainSample) from an untrusted dict."""
    table = ROW_TYPES[cls]
    row = clean_fields(data, table, where)
    lacking = missing(row, table)
    if lacking:
        raise CodecError(f"{where} lacks {', '.join(lacking[:3])}")
    return cls(**row)


def clean_time(value: Any, where: str) -> float:
    """A wall-clock time: a number of Unix seconds between 1970 and the year 9999."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CodecError(f"{where} is missing or not a number")
    number = clean_float(value, where)
    if not TIME_MIN <= number <= TIME_MAX:
        raise CodecError(f"{where} is not a time between 1970 and 9999 ({show(value)})")
    return number


def clean_interval(value: Any, where: str) -> float | None:
    """Seconds since the previous sample: null, or a number from 0 to INTERVAL_MAX_S."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CodecError(f"{where} should be a number or null, not {show(value)}")
    number = clean_float(value, where)
    if not 0 <= number <= INTERVAL_MAX_S:
        raise CodecError(f"{where} is out of range ({show(value)} s)")
    return number


def clean_choice(value: Any, choices: tuple[str, ...], where: str) -> str:
    if not isinstance(value, str) or value not in choices:
        options = " or ".join(f"'{c}'" for c in choices)
        raise CodecError(f"{where} should be {options}")
    return value


def clean_bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise CodecError(f"{where} should be true or false")
    return value


def clean_text(value: Any, where: str, name: bool = False) -> str | None:
    """An optional string (null stays null), made safe."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise CodecError(f"{where} should be a string or null")
    return safe_name(value) if name else safe(value)


def clean_json(value: Any, where: str, depth: int = 0) -> Any:
    """Free-form data (an event's ``data``): JSON types only, keys and strings made safe, numbers in range."""
    if depth > DATA_DEPTH:
        raise CodecError(f"{where} is nested deeper than {DATA_DEPTH} levels")
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return clean_int(value, where)
    if isinstance(value, float):
        return clean_float(value, where)
    if isinstance(value, str):
        return safe(value)
    if isinstance(value, list | tuple):
        return [clean_json(item, where, depth + 1) for item in value]
    if isinstance(value, dict):
        cleaned = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise CodecError(f"{where} has a key that is not a string")
            cleaned[safe_name(key)] = clean_json(item, f"{where}.{safe_name(key)}", depth + 1)
        return cleaned
    raise CodecError(f"{where} holds a {type(value).__name__}")


def clean_ksm_values(data: Any, where: str, removals: bool = False) -> dict[str, int | str | None]:
    """/sys/kernel/mm/ksm values: file name -> int or str (null, with ``removals``: the file went away)."""
    if not isinstance(data, dict):
        raise CodecError(f"{where} should be an object")
    values: dict[str, int | str | None] = {}
    for key, value in data.items():
        name = safe_name(key)
        if value is None and removals:
            values[name] = None
        elif isinstance(value, str):
            values[name] = safe(value)
        elif isinstance(value, int) and not isinstance(value, bool):
            values[name] = clean_int(value, f"{where}.{name}")
        else:
            raise CodecError(f"{where}.{name} should be a number or a string")
    return values


def clean_choices(data: Any, where: str) -> dict[str, tuple[str, ...]]:
    if not isinstance(data, dict) or not all(
        isinstance(v, list | tuple) and all(isinstance(c, str) for c in v) for v in data.values()
    ):
        raise CodecError(f"{where} should map names to lists of strings")
    return {safe_name(k): tuple(safe_name(c) for c in v) for k, v in data.items()}


def unique_pids(pids: list[int], where: str) -> None:
    """Two guests with one PID would be one row twice on the screen and in every table."""
    seen: set[int] = set()
    for pid in pids:
        if pid in seen:
            raise CodecError(f"{where} lists PID {pid} twice")
        seen.add(pid)


# --- out ------------------------------------------------------------------------------------------------


def _round(value: float) -> float | None:
    if not math.isfinite(value):
        return None
    return float(f"{value:.{FLOAT_DIGITS}g}")


def row_to_dict(obj: Any, stored: bool = False) -> dict[str, Any]:
    """A model row (GuestSample, HostSample, KsmRates, DomainSample) as a dict with its field names."""
    names = ROW_TYPES[type(obj)]
    row = {name: getattr(obj, name) for name in names}
    if stored:
        for name, value in row.items():
            if isinstance(value, str):
                row[name] = stored_text(value, name in NAME_FIELDS)
            elif isinstance(value, float):
                row[name] = _round(value)
    return row


def event_to_dict(event: Event, stored: bool = False) -> dict[str, Any]:
    if not stored:
        return {"time": event.time, "kind": event.kind, "text": event.text, "data": dict(event.data)}
    return {
        "time": round(event.time, 3),
        "kind": stored_text(event.kind, name=True),
        "text": stored_text(event.text),
        "data": _stored_json(event.data),
    }


def _stored_json(value: Any) -> Any:
    if isinstance(value, str):
        return safe(redact(value))
    if isinstance(value, float):
        return _round(value)
    if isinstance(value, dict):
        return {safe_name(redact(str(k))): _stored_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_stored_json(v) for v in value]
    return value


def ksm_to_dict(ksm: KsmState, stored: bool = False) -> dict[str, Any]:
    if not stored:
        return {
            "available": ksm.available,
            "values": dict(ksm.values),
            "choices": {k: list(v) for k, v in ksm.choices.items()},
            "error": ksm.error,
        }
    return {
        "available": ksm.available,
        "values": {safe_name(k): stored_text(v) if isinstance(v, str) else v for k, v in ksm.values.items()},
        "choices": {safe_name(k): [safe_name(c) for c in v] for k, v in ksm.choices.items()},
        "error": None if ksm.error is None else stored_text(ksm.error),
    }


def snapshot_to_dict(snapshot: Snapshot, stored: bool = False) -> dict[str, Any]:
    """A JSON-ready dict with the model's own field names (``stored``: as a recording keeps it)."""
    status = snapshot.libvirt_status
    interval = snapshot.interval_s
    return {
        "time": round(snapshot.time, 3) if stored else snapshot.time,
        "interval_s": _round(interval) if stored and interval is not None else interval,
        "scope": snapshot.scope,
        "host": row_to_dict(snapshot.host, stored),
        "ksm": ksm_to_dict(snapshot.ksm, stored),
        "rates": row_to_dict(snapshot.rates, stored),
        "guests": [row_to_dict(g, stored) for g in snapshot.guests],
        "events": [event_to_dict(e, stored) for e in snapshot.events],
        "is_root": snapshot.is_root,
        "domains": [row_to_dict(d, stored) for d in snapshot.domains],
        "mode": snapshot.mode,
        "libvirt_status": stored_text(status) if stored and status is not None else status,
    }


# --- in -------------------------------------------------------------------------------------------------


def event_from_dict(data: Any, where: str = "event") -> Event:
    if not isinstance(data, dict):
        raise CodecError(f"{where} should be an object")
    for key in ("kind", "text"):
        if not isinstance(data.get(key), str):
            raise CodecError(f"{where}.{key} is missing or of the wrong type")
    payload = data.get("data", {})
    if not isinstance(payload, dict):
        raise CodecError(f"{where}.data is missing or of the wrong type")
    return Event(
        time=clean_time(data.get("time"), f"{where}.time"),
        kind=safe_name(data["kind"]),
        text=safe(data["text"]),
        data=clean_json(payload, f"{where}.data"),
    )


def ksm_from_dict(data: Any, where: str = "ksm") -> KsmState:
    if not isinstance(data, dict):
        raise CodecError(f"{where} should be an object")
    values = clean_ksm_values(data.get("values", {}), f"{where}.values")
    return KsmState(
        available=clean_bool(data.get("available"), f"{where}.available"),
        values=typing.cast(dict[str, int | str], values),
        choices=clean_choices(data.get("choices", {}), f"{where}.choices"),
        error=clean_text(data.get("error"), f"{where}.error"),
    )


def _rows(data: Any, cls: type, where: str, row_name: str) -> tuple[Any, ...]:
    if not isinstance(data, list | tuple):
        raise CodecError(f"{where} should be a list")
    return tuple(complete_row(row, cls, row_name) for row in data)


def snapshot_from_dict(data: Any, where: str = "snapshot") -> Snapshot:
    """A Snapshot from an untrusted dict shaped like snapshot_to_dict's; raises CodecError naming the field."""
    if not isinstance(data, dict):
        raise CodecError(f"{where} should be an object, not {type(data).__name__}")
    guests = _rows(data.get("guests"), GuestSample, "guests", "guest")
    unique_pids([g.pid for g in guests], "guests")
    events = data.get("events", [])
    if not isinstance(events, list | tuple):
        raise CodecError("events should be a list")
    return Snapshot(
        time=clean_time(data.get("time"), f"{where}.time"),
        interval_s=clean_interval(data.get("interval_s"), f"{where}.interval_s"),
        scope=typing.cast(typing.Any, clean_choice(data.get("scope"), SCOPES, f"{where}.scope")),
        host=complete_row(data.get("host"), HostSample, "host"),
        ksm=ksm_from_dict(data.get("ksm")),
        rates=complete_row(data.get("rates"), KsmRates, "rates"),
        guests=guests,
        events=tuple(event_from_dict(e) for e in events),
        is_root=clean_bool(data.get("is_root", True), f"{where}.is_root"),
        domains=_rows(data.get("domains", []), DomainSample, "domains", "domain"),
        mode=clean_choice(data.get("mode", "local"), MODES, f"{where}.mode"),
        libvirt_status=clean_text(data.get("libvirt_status"), f"{where}.libvirt_status"),
    )


def stored(snapshot: Snapshot) -> Snapshot:
    """The snapshot exactly as reading it back from a recording gives it (rounded floats, redacted strings)."""
    return snapshot_from_dict(snapshot_to_dict(snapshot, stored=True))
