"""The core (model, collectors, sampler) imports without Textual or Rich."""

from __future__ import annotations

import subprocess
import sys

CORE = [
    "ksmtop.model",
    "ksmtop.collect.ksm",
    "ksmtop.collect.procfs",
    "ksmtop.collect.host",
    "ksmtop.sampler",
    "ksmtop.recording",
    "ksmtop.replay",
    "ksmtop.collect.perf",
    "ksmtop.collect.ksmtrace",
    "ksmtop.collect.faults",
    "ksmtop.collect.pagemap",
    "ksmtop.collect.smaps",
    "ksmtop.diagnose",
    "ksmtop.convergence",
    "ksmtop.perfcount",
    "ksmtop.control",
    "ksmtop.collect.libvirt",
    "ksmtop.collect.libvirt_agent",
    "ksmtop.lab.domains",
]


def test_core_imports_without_ui():
    code = (
        "import sys\n"
        + "".join(f"import {name}\n" for name in CORE)
        + "ui = sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich'))\n"
        + "loaded = [m for m in "
        + repr(CORE)
        + " if m in sys.modules]\n"
        + "print(repr((ui, loaded)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    ui, loaded = eval(out)
    assert ui == []
    assert loaded == CORE  # the imports really happened


def test_detector_sees_rich_when_imported():
    # The check above could not fail if the subprocess never saw UI modules; prove it does.
    code = "import sys, rich.text; print(any(m.split('.')[0] == 'rich' for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "True"
