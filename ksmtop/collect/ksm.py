"""/sys/kernel/mm/ksm: read every file this kernel has, typed; write a tunable, validated, with the kernel's answer.

What the knobs mean and accept lives in ksmtop/knobs.py. No UI imports. Every function takes ``root`` (default
"/") so tests can point it at a fixture tree.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

from ksmtop.knobs import TunableError, WriteResult, explain_errno, validate, warning_for
from ksmtop.model import KsmState

KSM_DIR = "sys/kernel/mm/ksm"
_CHOICE_RE = re.compile(r"\[([^\]]+)\]")


def ksm_dir(root: str | Path = "/") -> Path:
    return Path(root) / KSM_DIR


def _parse(text: str) -> tuple[int | str, tuple[str, ...]]:
    text = text.strip()
    if "[" in text:
        chosen = _CHOICE_RE.search(text)
        options = tuple(word.strip("[]") for word in text.split())
        return (chosen.group(1) if chosen else text), options
    try:
        return int(text), ()
    except ValueError:
        return text, ()


def read_ksm(root: str | Path = "/") -> KsmState:
    """Read every file of /sys/kernel/mm/ksm that exists on this kernel."""
    directory = ksm_dir(root)
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return KsmState(
            available=False,
            error=f"{directory} does not exist: this kernel was built without KSM (CONFIG_KSM)",
        )
    except OSError as exc:
        return KsmState(available=False, error=f"cannot read {directory}: {exc.strerror}")
    values: dict[str, int | str] = {}
    choices: dict[str, tuple[str, ...]] = {}
    for name in names:
        try:
            with open(directory / name) as handle:
                value, options = _parse(handle.read())
        except OSError:
            continue  # unreadable (not root) or vanished: shown as absent
        values[name] = value
        if options:
            choices[name] = options
    return KsmState(available=True, values=values, choices=choices)


class KsmReader:
    """read_ksm() for every sample: the files stay open and are re-read with pread (sysfs regenerates a file's
    text on every read at offset 0), which costs a third of opening 24 files each time. The directory is listed
    again every RELIST_S seconds, so a kernel module or a remounted /sys is noticed."""

    RELIST_S = 30.0

    def __init__(self, root: str | Path = "/") -> None:
        self.root = root
        self._fds: dict[str, int] = {}
        self._listed_at = -1e9

    def read(self) -> KsmState:
        now = time.monotonic()
        if not self._fds or now - self._listed_at >= self.RELIST_S:
            state = self._open_all()
            self._listed_at = now
            if state is not None:
                return state
        values: dict[str, int | str] = {}
        choices: dict[str, tuple[str, ...]] = {}
        for name, fd in self._fds.items():
            try:
                value, options = _parse(os.pread(fd, 4096, 0).decode(errors="replace"))
            except OSError:
                continue
            values[name] = value
            if options:
                choices[name] = options
        return KsmState(available=True, values=values, choices=choices)

    def _open_all(self) -> KsmState | None:
        """(Re)open every readable file; a KsmState when the directory cannot be read (then nothing is open)."""
        self.close()
        directory = ksm_dir(self.root)
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            return read_ksm(self.root)  # says why, in the same words
        for name in names:
            try:
                self._fds[name] = os.open(directory / name, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                continue  # unreadable (not root): shown as absent
        return None

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()


def write_tunable(name: str, text: str, root: str | Path = "/") -> WriteResult:
    """Validate, write with os.write (so the kernel's errno comes back at once), and re-read the value.

    Never raises for a refused value: the result says what happened. Raises nothing on permission errors either.
    """
    before = read_ksm(root)
    old = before.values.get(name)
    requested = text.strip()
    try:
        value = validate(name, text)
    except TunableError as exc:
        return WriteResult(name, old, requested, old, ok=False, message=str(exc))
    path = ksm_dir(root) / name
    try:
        fd = os.open(path, os.O_WRONLY)
    except OSError as exc:
        message = explain_errno(name, exc.errno or 0, value, before)
        return WriteResult(name, old, requested, old, ok=False, message=message, errno=exc.errno)
    try:
        os.write(fd, value.encode())
    except OSError as exc:
        message = explain_errno(name, exc.errno or 0, value, before)
        new = read_ksm(root).values.get(name)
        return WriteResult(name, old, requested, new, ok=False, message=message, errno=exc.errno)
    finally:
        os.close(fd)
    new = read_ksm(root).values.get(name)
    if str(new) != value:
        message = f"kernel accepted {name}={value} but reads back {new}"
    else:
        message = f"{name}: {old} → {new}"
    return WriteResult(name, old, requested, new, ok=True, message=message, warning=warning_for(name, value))
