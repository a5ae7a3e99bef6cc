"""Every KSM knob saved once and put back, in an order the kernel accepts.

The kernel refuses some writes in some states (KERNEL.md): merge_across_nodes and max_page_sharing answer EBUSY
while pages are merged (run=2 unmerges first), and pages_to_scan answers EINVAL while the scan-time advisor is on
(advisor_mode is switched off first; switching it off also resets pages_to_scan, so that is written after it).
``run`` is written last, so KSM starts or stops only once the other knobs hold their saved values.

No UI imports. Writes go through ksmtop.collect.ksm.write_tunable (validated, one write(), the kernel's errno).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ksmtop.collect.ksm import read_ksm, write_tunable
from ksmtop.knobs import KNOBS, UNMERGE_FIRST, WriteResult


class KnobSnapshot:
    """The writable KSM knobs of this kernel as they were when taken; ``restore`` puts every one back."""

    def __init__(self, values: dict[str, str], root: str | Path = "/") -> None:
        self.values = dict(values)
        self.root = root

    @classmethod
    def take(cls, root: str | Path = "/") -> KnobSnapshot:
        state = read_ksm(root)
        return cls({name: str(state.values[name]) for name in KNOBS if name in state.values}, root)

    def current(self) -> dict[str, str]:
        values = read_ksm(self.root).values
        return {name: str(values[name]) for name in self.values if name in values}

    def differences(self) -> dict[str, tuple[str, str | None]]:
        """Knobs that differ from the snapshot now: name -> (saved, current)."""
        now = self.current()
        return {name: (saved, now.get(name)) for name, saved in self.values.items() if now.get(name) != saved}

    def restore(self, write: Callable[[str, str], WriteResult] | None = None) -> list[str]:
        """Write back every knob that changed; returns, in words, each knob still not back (empty: all are).

        ``write(name, value)`` defaults to write_tunable on this root; a caller may pass one that also records
        an event. pages_to_scan is left to the advisor when the saved advisor_mode is not "none".
        """
        write = write or (lambda name, value: write_tunable(name, value, self.root))
        refused: dict[str, str] = {}

        def put(name: str, value: str | None = None) -> None:
            if value is None:
                if name not in self.values or self.current().get(name) == self.values[name]:
                    return
                value = self.values[name]
            result = write(name, value)
            if not result.ok:
                refused[name] = result.message

        now = self.current()
        if any(name in self.values and now.get(name) != self.values[name] for name in UNMERGE_FIRST):
            put("run", "2")
        for name in UNMERGE_FIRST:
            put(name)
        advisor = self.values.get("advisor_mode", "none")
        if advisor == "none":
            put("advisor_mode")
        for name in self.values:
            if name in ("run", "advisor_mode", *UNMERGE_FIRST) or (name == "pages_to_scan" and advisor != "none"):
                continue
            put(name)
        if advisor != "none":
            put("advisor_mode")
        put("run")
        problems = []
        for name, (saved, current) in self.differences().items():
            if name == "pages_to_scan" and advisor != "none":
                continue  # the scan-time advisor sets it
            why = f": {refused[name]}" if name in refused else ""
            problems.append(f"{name} is {current}, not {saved} as before{why}")
        return problems
