"""`ksmtop --once --json` on the real host carries the unmerge debt, worked out from the same sample's counters."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import wait_for

KSMTOP = [sys.executable, "-m", "ksmtop"]


@pytest.mark.ksm
def test_once_json_carries_the_unmerge_debt(ksm_guard, mergeable_processes):
    process = mergeable_processes(mib=8, fill="same", name="clidebt")
    ksm_guard.set(pages_to_scan=5000, sleep_millisecs=10, run=1)
    wait_for(lambda: int(Path(f"/proc/{process.pid}/ksm_merging_pages").read_text()) > 1000, timeout=60)
    ksm_guard.set(run=0)  # hold the counters still while ksmtop samples
    result = subprocess.run([*KSMTOP, "--once", "--json", "--all"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    values, page = data["ksm"]["values"], data["host"]["page_size"]
    debt = data["rates"]["unmerge_debt_bytes"]
    assert debt == (values["pages_sharing"] + values.get("ksm_zero_pages", 0)) * page
    assert isinstance(data["host"]["mem_available_bytes"], int) and data["host"]["mem_available_bytes"] > 0
    (mine,) = [g for g in data["guests"] if g["pid"] == process.pid]
    assert mine["unmerge_debt_bytes"] == (mine["ksm_merging_pages"] + (mine["ksm_zero_pages"] or 0)) * page
    assert mine["unmerge_debt_bytes"] > 1000 * page and debt > 0
    print(f"\nhost unmerge debt {debt} bytes of {data['host']['mem_available_bytes']} available")
