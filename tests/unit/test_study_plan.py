"""The study's plan (workloads, guest counts, limits), the preflight's verdicts on made-up processes, the command
line's refusals (one line, exit 2, nothing created), and the layering: only the command line imports Rich."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys

import pytest

from ksmtop.cli import main
from ksmtop.model import GuestSample, KsmState
from ksmtop.study import preflight
from ksmtop.study.plan import STUDY_WORKLOADS, PlanError, Step, StudyPlan, parse_workloads
from tests.support.nobody import run_as_nobody


def test_parse_workloads():
    assert parse_workloads("idle, fill-same") == ("idle", "fill-same")
    assert parse_workloads("idle,primes,fill-random,fill-same") == STUDY_WORKLOADS


@pytest.mark.parametrize(
    ("text", "words"), [("", "no workload"), ("idle,release", "unknown workload 'release'"), ("idle,idle", "twice")]
)
def test_parse_workloads_refuses(text, words):
    with pytest.raises(PlanError, match=words):
        parse_workloads(text)


def test_default_plan_is_the_papers():
    plan = StudyPlan().check()
    assert plan.workloads == STUDY_WORKLOADS and plan.guests == 4 and plan.memory_mib == 256
    assert plan.steps()[:5] == [Step("idle", 1), Step("idle", 2), Step("idle", 3), Step("idle", 4), Step("primes", 1)]
    assert len(plan.steps()) == 16
    assert plan.total_units == 4 * (1 + 2 + 3 + 4)  # one per guest booted and merged


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"guests": 0}, "--guests"),
        ({"guests": 17}, "--guests"),
        ({"memory_mib": 64}, "--memory"),
        ({"fill_mib": 200}, "--fill must be between 1 and 160 MiB for 256 MiB guests"),
        ({"window_s": 1.0}, "--window"),
        ({"converge_timeout_s": 5.0}, "--timeout"),
        ({"merge_interval_s": 2.0}, "merge interval"),
        ({"accel": "xen"}, "--accel"),
    ],
)
def test_plan_limits(changes, words):
    with pytest.raises(PlanError, match=words):
        StudyPlan(**changes).check()


def test_fill_size_is_not_checked_without_a_fill():
    assert StudyPlan(workloads=("idle",), fill_mib=10_000).check().fill_mib == 10_000


def test_workload_arguments():
    plan = StudyPlan(fill_mib=32)
    assert plan.workload_argument("fill-same") == 32 and plan.workload_argument("fill-random") == 32
    assert plan.workload_argument("idle") >= 86_400 and plan.workload_argument("primes") >= 10**8
    assert plan.waits_for_workload("fill-same") and not plan.waits_for_workload("primes")


def process(pid, name, kind="qemu"):
    return GuestSample(pid, name, kind, 1, 0, 0, 0, 0, 0, 0, 0, True, False, 0.0, 0, 0)


def test_obstacles_name_other_guests_and_ksm_users_safely():
    others = [process(10, "web\x1b]0;pwned\x07"), process(11, "python3", kind="process")]
    reasons = preflight.obstacles(others, KsmState(True, {"run": 1, "pages_sharing": 5}))
    assert reasons == [
        "other qemu guests are running: web\\x1b]0;pwned\\x07 (PID 10)",
        "other processes use KSM: python3 (PID 11)",
    ]


def test_obstacles_merged_pages_nobody_visible_holds():
    assert preflight.obstacles([], KsmState(True, {"run": 1, "pages_sharing": 5})) == [
        "KSM is running and 5 pages are merged by processes the study cannot see"
    ]
    assert preflight.obstacles([], KsmState(True, {"run": 0, "pages_sharing": 5})) == []  # stale counters
    assert preflight.obstacles([], KsmState(True, {"run": 1, "pages_sharing": 0})) == []


def test_a_label_says_qemu_and_a_nameless_qemu_by_its_pid():
    assert preflight.label(process(7, "web")) == "qemu web (PID 7)"
    assert preflight.label(process(8, "8")) == "qemu (PID 8)"
    assert preflight.label(process(9, "python3", kind="process")) == "python3 (PID 9)"


def test_many_others_are_counted():
    others = [process(100 + i, f"vm{i}") for i in range(8)]
    assert preflight.describe(others).endswith("vm4 (PID 104) and 3 more")
    assert preflight.foreign(others, {100, 101}) == others[2:]


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--workloads", "idle,nope"], "unknown workload 'nope'"),
        (["--guests", "0"], "must be between 1 and 16"),
        (["--memory", "lots"], "not a memory size"),
    ],
)
def test_bad_options_are_refused_by_the_parser_and_create_nothing(tmp_path, capsys, argv, words):
    out = tmp_path / "results"
    with pytest.raises(SystemExit) as exit_info:
        main(["study", "-o", str(out), *argv])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--fill", "250"], "--fill must be between 1 and 160 MiB for 256 MiB guests"),
        (["--memory", "512M", "--fill", "420"], "--fill must be between 1 and 416 MiB for 512 MiB guests"),
        (["--interval", "2", "--window", "5"], "--window must be between 3 intervals"),
    ],
)
def test_a_plan_that_cannot_run_is_one_line_and_creates_nothing(tmp_path, capsys, argv, words):
    out = tmp_path / "results"
    assert main(["study", "-o", str(out), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ksmtop study: ") and err.count("\n") == 1
    assert words in err
    assert not out.exists()


def test_a_non_empty_output_directory_is_refused(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    assert main(["study", "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "exists and is not empty (--force" in err
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_force_removes_an_earlier_studys_files_only(tmp_path):
    from ksmtop.study.cli import _remove_earlier_results

    for name in ("results.json", "report.md", "memory-primes.png", "model.png", "notes.txt", "memory.txt"):
        (tmp_path / name).write_text("x")
    (tmp_path / "faults.png").symlink_to(tmp_path / "notes.txt")
    _remove_earlier_results(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["faults.png", "memory.txt", "notes.txt"]


def test_an_output_path_that_is_a_file_is_refused(tmp_path, capsys):
    target = tmp_path / "file"
    target.write_text("x")
    assert main(["study", "-o", str(target), "--force"]) == 2
    assert "is not a directory" in capsys.readouterr().err


def test_study_modules_import_without_textual_and_only_the_cli_loads_rich():
    code = (
        "import sys\n"
        "import ksmtop.study.runner, ksmtop.study.report, ksmtop.study.figures, ksmtop.study.model\n"
        "import ksmtop.study.checks, ksmtop.study.knobs, ksmtop.study.preflight, ksmtop.study.cli\n"
        "print(sorted({m.split('.')[0] for m in sys.modules if m.split('.')[0] in ('textual', 'rich')}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"  # the cli imports Rich only when it draws progress on a terminal


def test_not_root_is_one_line_and_creates_nothing(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root to drop to nobody")
    out = tmp_path / "results"
    tmp_path.chmod(0o777)

    def warm_up() -> None:
        import ksmtop.lab.cli
        import ksmtop.study.cli  # noqa: F401

    def observe() -> dict:
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            code = main(["study", "-o", str(out)])
        return {"code": code, "err": err.getvalue()}

    seen = run_as_nobody(observe, warm_up)
    assert seen == {"code": 2, "err": "ksmtop study: the study writes KSM knobs and reads per-process KSM figures: "
                    "run it as root\n"}  # fmt: skip
    assert not out.exists()
