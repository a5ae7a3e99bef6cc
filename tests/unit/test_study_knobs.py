"""KnobSnapshot on a fixture tree, written through a stand-in kernel that refuses what the real one refuses:
EBUSY for merge_across_nodes/max_page_sharing while pages are merged, EINVAL for pages_to_scan while the
scan-time advisor is on (switching it off resets pages_to_scan). The real kernel: tests/integration/test_study.py
and test_tunables.py (KsmGuard uses KnobSnapshot)."""

from __future__ import annotations

import errno

from ksmtop.collect.ksm import WriteResult, ksm_dir
from ksmtop.study.knobs import KnobSnapshot
from tests.fixtures.tree import FakeRoot

VALUES = {
    "run": "0",
    "pages_to_scan": "100",
    "sleep_millisecs": "20",
    "merge_across_nodes": "1",
    "max_page_sharing": "256",
    "advisor_mode": "[none] scan-time",
    "pages_shared": "0",
    "pages_sharing": "0",
}


class StandInKernel:
    """Writes files under a fixture root with the kernel's refusals; keeps the order of accepted writes."""

    def __init__(self, root) -> None:
        self.dir = ksm_dir(root)
        self.log: list[tuple[str, str]] = []
        self.refuse: dict[str, int] = {}

    def read(self, name: str) -> str:
        return (self.dir / name).read_text().strip()

    def put(self, name: str, value: str) -> None:
        (self.dir / name).write_text(value + "\n")

    def write(self, name: str, value: str) -> WriteResult:
        err = self.refuse.get(name)
        if name in ("merge_across_nodes", "max_page_sharing") and self.read("pages_shared") != "0":
            err = errno.EBUSY
        if name == "pages_to_scan" and "[none]" not in self.read("advisor_mode"):
            err = errno.EINVAL
        old = self.read(name)
        if err is not None:
            return WriteResult(name, old, value, old, ok=False, message=f"kernel refused {name}={value}", errno=err)
        self.log.append((name, value))
        if name == "advisor_mode":
            if value == "none" and "[none]" not in old:
                self.put("pages_to_scan", "100")  # leaving scan-time resets pages_to_scan
            self.put(name, "[none] scan-time" if value == "none" else "none [scan-time]")
        else:
            self.put(name, value)
        if name == "run" and value == "2":
            self.put("pages_shared", "0")
            self.put("pages_sharing", "0")
        return WriteResult(name, old, value, value, ok=True, message=f"{name}: {old} → {value}")


def setup(tmp_path, **changes: str):
    FakeRoot(tmp_path, ksm=VALUES)
    snapshot = KnobSnapshot.take(tmp_path)
    kernel = StandInKernel(tmp_path)
    for name, value in changes.items():
        kernel.put(name, value)
    return snapshot, kernel


def test_snapshot_holds_the_writable_knobs_only(tmp_path):
    snapshot, _ = setup(tmp_path)
    assert snapshot.values == {
        "run": "0",
        "pages_to_scan": "100",
        "sleep_millisecs": "20",
        "merge_across_nodes": "1",
        "max_page_sharing": "256",
        "advisor_mode": "none",
    }
    assert snapshot.differences() == {}


def test_study_changes_are_put_back_with_run_last(tmp_path):
    snapshot, kernel = setup(tmp_path, run="1", pages_to_scan="5000", sleep_millisecs="10")
    assert snapshot.differences() == {
        "run": ("0", "1"),
        "pages_to_scan": ("100", "5000"),
        "sleep_millisecs": ("20", "10"),
    }
    assert snapshot.restore(write=kernel.write) == []
    assert kernel.log == [("pages_to_scan", "100"), ("sleep_millisecs", "20"), ("run", "0")]
    assert snapshot.differences() == {}


def test_merged_pages_are_unmerged_before_merge_across_nodes_goes_back(tmp_path):
    snapshot, kernel = setup(tmp_path, run="1", merge_across_nodes="0", pages_shared="50", pages_sharing="300")
    assert snapshot.restore(write=kernel.write) == []
    assert kernel.log == [("run", "2"), ("merge_across_nodes", "1"), ("run", "0")]


def test_advisor_is_switched_off_before_pages_to_scan_is_written(tmp_path):
    snapshot, kernel = setup(tmp_path, advisor_mode="none [scan-time]", pages_to_scan="777")
    assert snapshot.restore(write=kernel.write) == []
    assert kernel.log[0] == ("advisor_mode", "none")
    assert kernel.read("pages_to_scan") == "100" and snapshot.differences() == {}


def test_a_saved_advisor_keeps_pages_to_scan(tmp_path):
    FakeRoot(tmp_path, ksm=VALUES | {"advisor_mode": "none [scan-time]", "pages_to_scan": "900"})
    snapshot = KnobSnapshot.take(tmp_path)
    kernel = StandInKernel(tmp_path)
    kernel.put("advisor_mode", "[none] scan-time")
    kernel.put("pages_to_scan", "5000")
    kernel.put("sleep_millisecs", "5")
    # pages_to_scan is the advisor's to set: not written, not reported as a failure
    assert snapshot.restore(write=kernel.write) == []
    assert kernel.log == [("sleep_millisecs", "20"), ("advisor_mode", "scan-time")]


def test_a_refusal_is_reported_with_the_knob_and_the_kernel_answer(tmp_path):
    snapshot, kernel = setup(tmp_path, sleep_millisecs="7", run="1")
    kernel.refuse["sleep_millisecs"] = errno.EPERM
    problems = snapshot.restore(write=kernel.write)
    assert problems == ["sleep_millisecs is 7, not 20 as before: kernel refused sleep_millisecs=20"]
    assert kernel.read("run") == "0"  # the others still go back


def test_restore_through_write_tunable_on_a_fixture_tree(tmp_path):
    snapshot, kernel = setup(tmp_path, pages_to_scan="200", run="1")  # same length: a plain file is not truncated
    assert snapshot.restore() == []  # the default writer: ksmtop.collect.ksm.write_tunable on this root
    assert kernel.read("pages_to_scan") == "100" and kernel.read("run") == "0"
