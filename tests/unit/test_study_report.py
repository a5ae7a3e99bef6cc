"""results.json, results.csv, report.md and the figures from a made-up study whose memory follows known lines:
every row's keys, the model's slopes, the checks, CSV = JSON, PNGs of the right size that are not blank."""

from __future__ import annotations

import csv
import json

import pytest

from ksmtop.model import HostSample, KsmRates, KsmState, Snapshot
from ksmtop.study.figures import write_figures
from ksmtop.study.measure import GuestWindow, Window
from ksmtop.study.plan import Step, StudyPlan
from ksmtop.study.report import models, write_results
from ksmtop.study.rows import COLUMNS, measurement_row
from ksmtop.study.runner import StudyResult

MIB = 2**20
PAGE = 4096
# Per guest with KSM off and on (PSS, MiB), and what KSM saves in all, per workload.
PER_GUEST = {"idle": (230, 120), "primes": (232, 121), "fill-random": (264, 190), "fill-same": (266, 121)}
BASELINE = 500 * MIB


def window(workload: str, guests: int, ksm: str) -> Window:
    off, on = PER_GUEST[workload]
    per_guest = (off if ksm == "off" else on) * MIB
    pss_total = per_guest * guests + (40 * MIB if ksm == "on" else 0)
    saving = 0 if ksm == "off" else (off - on) * MIB * guests
    host = HostSample(PAGE, 100, 24 * 2**30, 24 * 2**30 - BASELINE - pss_total, 0, 0, 0, 1, 0.0)
    ksm_state = KsmState(True, {"run": 1 if ksm == "on" else 0, "pages_sharing": saving // PAGE, "pages_shared": 9})
    last = Snapshot(1_780_000_000.0, 1.0, "ksm", host, ksm_state, KsmRates(saving, None, None), ())
    guest_rows = tuple(
        GuestWindow(
            f"study-{i}",
            100 + i,
            off * MIB,
            off * MIB,
            pss_total // guests,
            saving // PAGE // guests,
            0,
            None,
            20,
            0,
            10 + (ksm == "on"),
            0,
        )
        for i in range(1, guests + 1)
    )
    used = BASELINE + pss_total
    return Window(10.0, 10.2, 11, used, used - MIB, used + MIB, 0.1 if ksm == "off" else 3.0, 0, last, guest_rows, None)


def made_up_result(guests: int = 3) -> StudyResult:
    plan = StudyPlan(guests=guests)
    meta = {
        "ksmtop": "0.1.0",
        "host": "testhost",
        "kernel": "6.1",
        "cpu": "Test CPU",
        "ncpus": 2,
        "mem_total_bytes": 24 * 2**30,
        "page_size": PAGE,
        "started": 1_780_000_000.0,
        "seconds": 600.0,
        "accel": {"accel": "tcg", "reason": "asked for TCG"},
        "knobs_before": {"run": "0", "pages_to_scan": "100", "sleep_millisecs": "20"},
        "plan": {
            "workloads": list(plan.workloads),
            "guests": guests,
            "memory_mib": 256,
            "fill_mib": 64,
            "pages_to_scan": 5000,
            "sleep_millisecs": 20,
            "interval_s": 1.0,
            "merge_interval_s": 0.25,
            "window_s": 10.0,
            "converge_timeout_s": 300.0,
            "host_memory_bytes": 64 * 2**30,
        },
    }
    result = StudyResult(meta=meta, baseline={"host_used_bytes": BASELINE}, complete=True)
    for workload in plan.workloads:
        for n in range(1, guests + 1):
            result.rows.append(measurement_row(Step(workload, n), "off", window(workload, n, "off"), [], steady=True))
        for n in range(guests, 0, -1):
            merge = {"converged": True, "convergence_s": 1.5 * n, "merge_seconds": 1.5 * n, "full_scans": 4}
            result.rows.append(measurement_row(Step(workload, n), "on", window(workload, n, "on"), [], **merge))
            series = [[0.0, 0, 0], [0.5, 10 * MIB * n, 0], [1.5 * n, 50 * MIB * n, 0]]
            result.series.setdefault(workload, {})[str(n)] = series
    return result


def test_rows_hold_every_column_and_the_issue_keys():
    result = made_up_result()
    for row in result.rows:
        assert tuple(row) == COLUMNS
    on = next(r for r in result.rows if r["workload"] == "idle" and r["guests"] == 2 and r["ksm"] == "on")
    assert on["saving_bytes"] == (230 - 120) * MIB * 2
    assert on["guests_pss_bytes"] == (2 * 120 + 40) * MIB
    assert on["other_used_bytes"] == BASELINE
    assert on["per_guest"][0]["name"] == "study-1" and on["perf_faults_minor"] == 22
    assert on["perf_faults_per_guest_per_s"] == pytest.approx(22 / 2 / 10.2, abs=0.01)
    off = next(r for r in result.rows if r["ksm"] == "off")
    assert off["saving_bytes"] == 0 and off["converged"] is None and off["steady"] is True


def test_model_recovers_the_made_up_slopes():
    result = made_up_result()
    by_workload = {m.workload: m for m in models(result)}
    idle = by_workload["idle"]
    assert idle.off is not None and idle.on is not None
    assert idle.off.slope == pytest.approx(230 * MIB) and idle.on.slope == pytest.approx(120 * MIB)
    assert idle.on.intercept == pytest.approx(40 * MIB)
    assert idle.saving_per_guest_bytes == pytest.approx(110 * MIB)
    # 24 GiB host, 500 MiB baseline: (24576 - 500) / 230 = 104.7; (24576 - 500 - 40) / 120 = 200.3
    assert [f.guests for f in idle.fits_off] == [104, (65536 - 500) // 230]
    assert [f.guests for f in idle.fits_on] == [200, (65536 - 540) // 120]
    host = {m.workload: m for m in models(result, "host_used_bytes")}["idle"]
    assert host.off is not None and host.off.slope == pytest.approx(230 * MIB)


def test_files_are_written_and_agree(tmp_path):
    result = made_up_result()
    document = write_results(result, tmp_path, ["memory-idle.png"])
    data = json.loads((tmp_path / "results.json").read_text())
    assert data == json.loads(json.dumps(document))
    assert data["complete"] is True and data["host"] == "testhost" and data["figures"] == ["memory-idle.png"]
    assert len(data["rows"]) == 4 * 3 * 2
    assert [(r["guests"], r["ksm"]) for r in data["rows"][:4]] == [(1, "off"), (1, "on"), (2, "off"), (2, "on")]
    assert data["model"]["fill-same"]["metric"] == "guests_pss_bytes"
    assert data["model"]["fill-same"]["saving_per_guest_bytes"] == (266 - 121) * MIB
    assert [c["verdict"] for c in data["checks"]] == ["held", "held", "held", "held"]
    with open(tmp_path / "results.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == COLUMNS and len(rows) == len(data["rows"])
    for csv_row, json_row in zip(rows, data["rows"], strict=True):
        assert int(csv_row["host_used_bytes"]) == json_row["host_used_bytes"]
        assert json.loads(csv_row["per_guest"]) == json_row["per_guest"]
        assert csv_row["convergence_s"] == ("" if json_row["convergence_s"] is None else str(json_row["convergence_s"]))
    report = (tmp_path / "report.md").read_text()
    for needle in ("## Results", "| idle | 2 | ", "![memory-idle.png](memory-idle.png)", "## Capacity model",
                   "Fit this host (24 GiB), off", "Fit 64 GiB, on", "## The paper's findings, checked",
                   "| Identical-data fill merges more than random fill | **held** |", "Assumptions:"):  # fmt: skip
        assert needle in report
    assert not list(tmp_path.glob(".*.tmp"))


def test_an_unfinished_study_says_so(tmp_path):
    result = made_up_result(guests=1)
    result.complete = False
    result.stopped = "interrupted (Ctrl-C)"
    result.knobs_not_restored = ["sleep_millisecs is 7, not 20 as before"]
    write_results(result, tmp_path)
    report = (tmp_path / "report.md").read_text()
    assert "**The study did not finish: interrupted \\(Ctrl-C\\).**" in report
    assert "**KSM knobs not restored:** sleep\\_millisecs is 7" in report
    assert "No figures" in report
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["complete"] is False and data["stopped"] == "interrupted (Ctrl-C)"


def test_figures_are_pngs_of_the_right_size_and_not_blank(tmp_path):
    matplotlib = pytest.importorskip("matplotlib")
    from matplotlib import image

    result = made_up_result()
    names = write_figures(tmp_path, result.rows, result.series, models(result), result.meta, BASELINE)
    assert names == [
        "memory-idle.png", "memory-primes.png", "memory-fill-random.png", "memory-fill-same.png",
        "faults.png", "convergence.png", "model.png",
    ]  # fmt: skip
    assert matplotlib.get_backend().lower() == "agg"
    for name in names:
        pixels = image.imread(tmp_path / name)
        assert pixels.shape[0] >= 400 and pixels.shape[1] >= 700
        assert pixels.std() > 0.05  # drawn, not one colour
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_study_that_failed_before_any_measurement_still_writes_its_files(tmp_path):
    result = made_up_result(guests=1)
    result.rows.clear()
    result.series.clear()
    result.baseline = None
    result.complete = False
    result.stopped = "error: qemu-system-x86_64 not found: install the qemu-system-x86 package"
    write_results(result, tmp_path)
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["rows"] == [] and data["model"] == {} and data["stopped"].startswith("error: qemu")
    assert [c["held"] for c in data["checks"]] == [None, None, None, None]
    assert (tmp_path / "results.csv").read_text().splitlines() == [",".join(COLUMNS)]
    assert "did not finish: error: qemu-system-x86\\_64 not found" in (tmp_path / "report.md").read_text()


def test_outside_text_in_the_report_renders_as_itself(tmp_path):
    result = made_up_result(guests=1)
    hostile = "vm[x](javascript:alert(1))\x1b]0;TITLE\x07<img src=x>|cell|"
    result.warnings.append(
        f"idle, 1 guests, KSM on: other qemu processes or KSM users appeared: qemu {hostile} (PID 9)"
    )
    write_results(result, tmp_path)
    report = (tmp_path / "report.md").read_text()
    line = next(line for line in report.splitlines() if "PID 9" in line)
    assert line == (
        "- idle, 1 guests, KSM on: other qemu processes or KSM users appeared: qemu "
        "vm\\[x\\]\\(javascript:alert\\(1\\)\\)\\\\x1b\\]0;TITLE\\\\x07\\<img src=x\\>\\|cell\\| \\(PID 9\\)"
    )
    assert "\x1b" not in report  # the escape character itself never reaches the file
