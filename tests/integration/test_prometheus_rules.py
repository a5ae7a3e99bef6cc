"""The sample alert rules pass promtool's checks and its unit tests (docs/alerts.test.yml), and the exporter's
output passes promtool check metrics: real host with stand-ins, and a fixture host with a negative profit and
a hostile guest name."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from tests.conftest import REPO
from tests.fixtures.tree import FakeRoot, ksm_stat_text
from tests.support.prometheus import PROMTOOL, installed

pytestmark = pytest.mark.skipif(not installed(), reason="needs Debian's prometheus (scripts/setup)")


def promtool(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([PROMTOOL, *args], input=stdin, capture_output=True, timeout=60)


def test_promtool_checks_the_rules():
    result = promtool("check", "rules", str(REPO / "docs/alerts.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert b"SUCCESS: 5 rules found" in result.stdout


def test_promtool_unit_tests_of_the_rules_pass():
    result = promtool("test", "rules", str(REPO / "docs/alerts.test.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_rule_tests_fail_when_a_rule_changes(tmp_path):
    """The unit tests can fail: a threshold moved in a copy of the rules breaks them."""
    shutil.copy(REPO / "docs/alerts.test.yml", tmp_path)
    rules = (REPO / "docs/alerts.yml").read_text()
    assert "> 0.05" in rules
    (tmp_path / "alerts.yml").write_text(rules.replace("> 0.05", "> 0.5"))
    result = promtool("test", "rules", str(tmp_path / "alerts.test.yml"))
    assert result.returncode != 0 and b"KsmdBurningCpuForLittleProfit" in result.stdout + result.stderr


def exposition(*argv: str) -> bytes:
    command = [sys.executable, "-m", "ksmtop", *argv]
    return subprocess.run(command, cwd=REPO, capture_output=True, timeout=60, check=True).stdout


def test_promtool_accepts_the_exporters_output_on_this_host(mergeable_processes):
    mergeable_processes(mib=4, fill="same", name="ksmexp-check")
    text = exposition("exporter", "--once", "--all", "--no-libvirt")
    assert b'guest="ksmexp-check"' in text
    result = promtool("check", "metrics", stdin=text)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_accepts_a_negative_profit_and_a_hostile_guest_name(tmp_path):
    tree = FakeRoot(tmp_path)
    name = 'evil "quoted" back\\slash\nnew line \x1b[31m\x07 \x7f'
    tree.add_process(42, "qemu-system-x86", ["qemu", "-name", f"guest={name}"], ksm_stat=ksm_stat_text(merging=3))
    text = exposition("--root", str(tmp_path), "exporter", "--once")
    assert b"ksmtop_ksm_general_profit_bytes -4096.0" in text
    assert b'guest="evil \\"quoted\\" back\\\\slash\\\\x0anew line \\\\x1b[31m\\\\x07 \\\\x7f"' in text
    result = promtool("check", "metrics", stdin=text)
    assert result.returncode == 0, result.stdout + result.stderr
