"""The headless command line on the real machine, and the real TUI in tmux as a person would use it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from dataclasses import fields

import pytest

from ksmtop.model import GuestSample, HostSample, KsmRates, Snapshot

KSMTOP = [sys.executable, "-m", "ksmtop"]


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([*KSMTOP, *args], capture_output=True, text=True, timeout=timeout)


def test_once_json_uses_the_model_field_names(mergeable_processes):
    process = mergeable_processes(mib=8, fill="same", name="clionce")
    result = run("--once", "--json", "--all")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data) == {f.name for f in fields(Snapshot)}
    assert set(data["host"]) == {f.name for f in fields(HostSample)}
    assert set(data["rates"]) == {f.name for f in fields(KsmRates)}
    mine = [g for g in data["guests"] if g["pid"] == process.pid]
    assert len(mine) == 1
    assert set(mine[0]) == {f.name for f in fields(GuestSample)}
    assert mine[0]["name"] == "clionce"
    assert mine[0]["rss_bytes"] >= 8 * 1024 * 1024
    assert mine[0]["ksm_mergeable"] is True
    assert data["interval_s"] > 0 and data["host"]["ksmd_cpu_percent"] is not None


def test_once_json_qemu_scope_leaves_other_processes_out(mergeable_processes):
    process = mergeable_processes(mib=2, fill="same", name="clinotqemu")
    data = json.loads(run("--once", "--json").stdout)
    assert data["scope"] == "qemu"
    assert all(g["pid"] != process.pid for g in data["guests"])


def test_batch_prints_count_json_lines_at_the_interval():
    started = time.monotonic()
    result = run("--batch", "--json", "--interval", "0.3", "--count", "4")
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 4
    samples = [json.loads(line) for line in lines]
    assert samples[0]["interval_s"] is None
    assert all(0.2 < s["interval_s"] < 1.5 for s in samples[1:])
    assert elapsed >= 0.9  # three gaps of 0.3 s


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--once"], "add --json"),
        (["--json"], "--json goes with --once or --batch"),
        (["--batch", "--json", "--interval", "abc"], "not a number of seconds"),
        (["--batch", "--json", "--count", "0"], "at least 1"),
        (["--once", "--json", "--root", "/nonexistent"], "is not a directory"),
    ],
)
def test_bad_arguments_give_one_line_errors(args, message):
    result = run(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_screen_without_a_terminal_says_so():
    result = run()
    assert result.returncode == 2
    assert "needs a terminal" in result.stderr


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux not installed")
def test_real_tui_in_tmux_shows_the_host_and_quits_on_q(tmp_path):
    session = f"ksmtop-test-{int(time.time() * 1000)}"
    # the pane's size, not the COLUMNS and LINES pytest's environment passed to a tmux server it started
    command = " ".join(["env", "-u", "COLUMNS", "-u", "LINES", *KSMTOP, "--interval", "0.5"])
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "160", "-y", "45", command], check=True)
    try:

        def screen() -> str:
            return subprocess.run(["tmux", "capture-pane", "-t", session, "-p"], capture_output=True, text=True).stdout

        deadline = time.monotonic() + 30
        while not all(part in screen() for part in ("Host", "KSM tunables", "sampling every")):
            if time.monotonic() > deadline:  # the first frames can be caught half painted: wait for all of it
                break
            time.sleep(0.3)
        text = screen()
        assert "Host" in text and "KSM tunables" in text and "pages_to_scan" in text
        assert "sampling every 0.5 s" in text
        assert max(len(line) for line in text.splitlines()) > 100  # drawn to the pane's 160 columns, not 80
        subprocess.run(["tmux", "send-keys", "-t", session, "q"], check=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            alive = subprocess.run(["tmux", "has-session", "-t", session], capture_output=True).returncode == 0
            if not alive:
                break
            time.sleep(0.2)
        assert not alive, "ksmtop did not quit on q"
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)


def test_the_mode_says_why_libvirt_is_not_used(monkeypatch):
    from ksmtop.cli.options import SourceOptions
    from ksmtop.cli.sources import open_source

    source = open_source(SourceOptions(no_libvirt=True))
    try:
        assert source.watcher is None and source.description == "live; libvirt off (--no-libvirt)"
    finally:
        source.close()
    monkeypatch.setitem(sys.modules, "libvirt", None)  # as if libvirt-python were not installed
    source = open_source(SourceOptions())
    try:
        assert source.watcher is None and "libvirt-python is not installed" in source.description
    finally:
        source.close()
