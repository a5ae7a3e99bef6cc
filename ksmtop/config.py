"""Preferences that stay: the refresh interval, the sort column and its direction, the scope (qemu guests or every
KSM user), the visible columns and the default libvirt URI, in a TOML file.

    $XDG_CONFIG_HOME/ksmtop/config.toml   (else ~/.config/ksmtop/config.toml; --config PATH chooses another)

Read with the standard library's tomllib; written by ksmtop itself (W on the screen saves the current setup, as
top's W does) to a temporary file renamed into place. A bad file never stops ksmtop: ``load`` returns the
defaults and one line that names the file and the line at fault. No UI imports.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

COLUMN_NAMES = (
    "name",
    "pid",
    "domain_state",
    "rss_bytes",
    "shared_bytes",
    "ksm_merging_pages",
    "merged_bytes",
    "merged_percent",
    "ksm_zero_pages",
    "ksm_process_profit_bytes",
    "unmerge_debt_bytes",
    "cpu_percent",
    "faults_per_s",
    "perf_faults_per_s",
    "domain_faults_per_s",
    "domain_vcpus",
    "domain_memory_bytes",
)
"""Every column of the guest table, in their order (keys of ksmtop/tui/columns.py)."""
SCOPES = ("qemu", "ksm")
MIN_INTERVAL_S = 0.2
MAX_INTERVAL_S = 3600.0
MAX_CONFIG_BYTES = 64 * 1024


class ConfigError(Exception):
    """One line: the file, the line when known, and what is wrong."""


@dataclass(frozen=True, slots=True)
class Preferences:
    interval: float = 1.0
    """Seconds between samples."""
    sort: str = "ksm_merging_pages"
    """Column the guest table is sorted by."""
    reverse: bool = True
    """Largest first."""
    scope: str = "qemu"
    """'qemu': qemu guests only; 'ksm': every process using KSM."""
    columns: tuple[str, ...] = COLUMN_NAMES
    """Visible columns, in table order (the name column always shows)."""
    connect: str | None = None
    """libvirt URI (None: qemu:///system when libvirt-python is there)."""


DEFAULTS = Preferences()


def config_path(explicit: str | Path | None = None) -> Path:
    if explicit is not None:
        return Path(explicit)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "ksmtop" / "config.toml"


def _line_of(text: str, key: str) -> int | None:
    for number, line in enumerate(text.splitlines(), start=1):
        if re.match(rf"\s*{re.escape(key)}\s*=", line):
            return number
    return None


def parse(text: str, path: Path) -> Preferences:
    """Preferences from the file's text; ConfigError (one line naming the file and the line) when wrong."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not TOML: {exc}") from None

    def fail(key: str, why: str) -> ConfigError:
        line = _line_of(text, key)
        return ConfigError(f"{path}{f', line {line}' if line else ''}: {key} {why}")

    known = {f.name for f in dataclasses.fields(Preferences)}
    for key in data:
        if key not in known:
            raise fail(key, f"is not a setting ksmtop knows (it knows {', '.join(sorted(known))})")
    values: dict[str, Any] = {}
    if "interval" in data:
        interval = data["interval"]
        if isinstance(interval, bool) or not isinstance(interval, int | float):
            raise fail("interval", f"must be a number of seconds, not {interval!r}")
        if not MIN_INTERVAL_S <= interval <= MAX_INTERVAL_S:
            raise fail("interval", f"must be between {MIN_INTERVAL_S} and {MAX_INTERVAL_S:.0f} s, not {interval}")
        values["interval"] = float(interval)
    if "sort" in data:
        if data["sort"] not in COLUMN_NAMES:
            raise fail("sort", f"must be one of the columns ({', '.join(COLUMN_NAMES)}), not {data['sort']!r}")
        values["sort"] = data["sort"]
    for key in ("reverse",):
        if key in data:
            if not isinstance(data[key], bool):
                raise fail(key, f"must be true or false, not {data[key]!r}")
            values[key] = data[key]
    if "scope" in data:
        if data["scope"] not in SCOPES:
            raise fail("scope", f"must be 'qemu' or 'ksm', not {data['scope']!r}")
        values["scope"] = data["scope"]
    if "columns" in data:
        columns = data["columns"]
        if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
            raise fail("columns", "must be a list of column names")
        unknown = [c for c in columns if c not in COLUMN_NAMES]
        if unknown:
            raise fail("columns", f"has unknown columns: {', '.join(repr(c)[:40] for c in unknown[:3])}")
        values["columns"] = tuple(c for c in COLUMN_NAMES if c in columns or c == "name")
    if "connect" in data:
        if not isinstance(data["connect"], str) or not data["connect"]:
            raise fail("connect", "must be a libvirt URI such as 'qemu:///system'")
        values["connect"] = data["connect"]
    return dataclasses.replace(DEFAULTS, **values)


def load(path: str | Path | None = None) -> tuple[Preferences, str | None]:
    """The preferences in the file (defaults when there is none), and a one-line warning when it could not be
    used: ksmtop then starts with the defaults."""
    path = config_path(path)
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        return DEFAULTS, None
    except OSError as exc:
        return DEFAULTS, f"{path}: cannot read: {exc.strerror or exc}; using the defaults"
    if len(raw) > MAX_CONFIG_BYTES:
        return DEFAULTS, f"{path}: larger than {MAX_CONFIG_BYTES // 1024} KiB: not a ksmtop config; using the defaults"
    try:
        return parse(raw.decode("utf-8"), path), None
    except UnicodeDecodeError:
        return DEFAULTS, f"{path}: not UTF-8 text; using the defaults"
    except ConfigError as exc:
        return DEFAULTS, f"{exc}; using the defaults"


def _toml_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def dumps(preferences: Preferences) -> str:
    lines = [
        "# ksmtop preferences (W on the screen saves the current setup here)",
        f"interval = {preferences.interval:g}",
        f"sort = {_toml_string(preferences.sort)}",
        f"reverse = {'true' if preferences.reverse else 'false'}",
        f"scope = {_toml_string(preferences.scope)}",
        "columns = [" + ", ".join(_toml_string(c) for c in preferences.columns) + "]",
    ]
    if preferences.connect:
        lines.append(f"connect = {_toml_string(preferences.connect)}")
    return "\n".join(lines) + "\n"


def save(preferences: Preferences, path: str | Path | None = None) -> Path:
    """Write the file (a temporary file in the same directory, renamed into place); OSError when it cannot."""
    path = config_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise OSError(f"{path} is not a regular file: not overwritten")
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".config.", suffix=".toml")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(dumps(preferences))
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path
