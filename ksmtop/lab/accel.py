"""Choosing KVM or TCG for lab guests by a real probe boot.

/dev/kvm opening is not enough: on some hosts KVM accepts a VM but a Linux guest hangs early in boot. The probe
boots the lab image under KVM and waits, with a deadline, for its guest agent to answer; anything else means TCG.
The verdict is cached in the runtime directory for the rest of this host boot (keyed by boot id, qemu binary
and image), so only the first `lab up` pays for it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from ksmtop.collect.agent import AgentError, GuestAgent
from ksmtop.lab.image import LabImage
from ksmtop.lab.paths import LabError, boot_id, runtime_path
from ksmtop.lab.qemu import QEMU_BINARY, GuestFiles, launch, qemu_argv, send_signal, start_ticks, wait_gone

PROBE_DEADLINE = 20.0
"""Seconds a KVM guest gets to answer its agent; a working KVM answers in a few."""


@dataclass(frozen=True, slots=True)
class AccelChoice:
    accel: str
    """"kvm" or "tcg"."""
    reason: str
    probe_seconds: float | None = None
    cached: bool = False

    def describe(self) -> str:
        label = {"kvm": "KVM (hardware virtualization)", "tcg": "TCG (software emulation, slower)"}[self.accel]
        suffix = " [probe result cached for this boot]" if self.cached else ""
        return f"accelerator: {label}: {self.reason}{suffix}"


def choose_accel(
    runtime: Path,
    image: LabImage,
    requested: str = "auto",
    qemu: str = QEMU_BINARY,
    deadline: float = PROBE_DEADLINE,
    log: Callable[[str], None] = lambda _: None,
) -> AccelChoice:
    """The accelerator: kvm or tcg as asked, or for "auto" the (cached) result of a probe boot under KVM."""
    if requested == "tcg":
        return AccelChoice("tcg", "asked for TCG")
    if requested == "kvm":
        return AccelChoice("kvm", "asked for KVM (not probed)")
    if requested != "auto":
        raise LabError(f"unknown accelerator {requested!r}: use auto, kvm or tcg")
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return AccelChoice("tcg", "/dev/kvm is missing or not accessible")
    runtime_path(runtime)  # created 0700 and checked as ours before the cache is read or the probe writes there
    cache_file = runtime / "accel.json"
    key = {"boot_id": boot_id(), "qemu": _binary_identity(qemu), "image": image.image_id}
    cached = _read_cache(cache_file, key)
    if cached is not None:
        return cached
    log(f"probing KVM with a test boot (at most {deadline:g} s, once per host boot)")
    choice = probe_kvm(runtime / ".kvm-probe", image, qemu, deadline)
    cache_file.write_text(json.dumps({"key": key, "choice": asdict(choice)}) + "\n")
    return choice


def probe_kvm(
    directory: Path, image: LabImage, qemu: str = QEMU_BINARY, deadline: float = PROBE_DEADLINE
) -> AccelChoice:
    """Boot the lab image under KVM and wait for its agent; always stops the probe guest."""
    files = GuestFiles(directory)
    argv = qemu_argv("ksmtop-kvm-probe", files, image.kernel, image.initramfs, 256, "kvm", qemu)
    started = time.monotonic()
    try:
        pid = launch(argv, files)
    except LabError as exc:
        return AccelChoice("tcg", f"KVM probe could not start qemu ({exc})", time.monotonic() - started)
    ticks = start_ticks(pid)
    try:
        with GuestAgent(files.agent_socket, timeout=2.0) as agent:
            while time.monotonic() - started < deadline:
                if ticks is None or start_ticks(pid) != ticks:
                    return AccelChoice("tcg", "KVM probe guest exited during boot", time.monotonic() - started)
                try:
                    agent.ping(timeout=min(2.0, max(0.1, deadline - (time.monotonic() - started))))
                except AgentError:
                    time.sleep(0.2)
                    continue
                seconds = time.monotonic() - started
                return AccelChoice("kvm", f"a KVM probe guest answered its agent in {seconds:.1f} s", seconds)
        seconds = time.monotonic() - started
        return AccelChoice("tcg", f"a KVM probe guest did not boot within {deadline:g} s", seconds)
    finally:
        if ticks is not None:
            send_signal(pid, ticks, signal.SIGKILL)
            wait_gone(pid, ticks, 5.0)
        shutil.rmtree(directory, ignore_errors=True)


def _binary_identity(qemu: str) -> str:
    path = shutil.which(qemu) or qemu
    try:
        st = Path(path).stat()
    except OSError:
        return path
    return f"{path}:{st.st_size}:{st.st_mtime_ns}"


def _read_cache(cache_file: Path, key: dict[str, str]) -> AccelChoice | None:
    try:
        data = json.loads(cache_file.read_text())
        if data["key"] != key:
            return None
        choice = data["choice"]
        return AccelChoice(choice["accel"], choice["reason"], choice.get("probe_seconds"), cached=True)
    except (OSError, ValueError, KeyError, TypeError):
        return None
