"""Answers that workers bring back between samples redraw the screen only when they are news: a guest's first
diagnosis at once, a fresher one with the next sample (at once when paused); guest-control answers only when they changed. (Each of
those redrew the details panel every five seconds in a second pass of the whole screen.)"""

from __future__ import annotations

from ksmtop.diagnose import Diagnosis
from ksmtop.tui.insight import InsightController


def test_only_a_guests_first_diagnosis_redraws_at_once():
    redraws: list[int] = []
    sampling = [True]
    insight = InsightController(app=None, source=None, changed=lambda: redraws.append(1), sampling=lambda: sampling[0])  # type: ignore[arg-type]
    first = (Diagnosis(pid=42, merged_fraction=0.1, reasons=()), None)
    later = (Diagnosis(pid=42, merged_fraction=0.9, reasons=()), None)
    insight._landed(42, first)
    assert redraws == [1] and insight.text_for(42).endswith("10% of its mergeable memory is merged")
    insight._landed(42, later)
    assert redraws == [1]  # drawn by the next sample's redraw, which reads text_for
    assert insight.text_for(42).endswith("90% of its mergeable memory is merged")
    insight._landed(7, first)  # another guest: its first answer
    assert redraws == [1, 1]
    sampling[0] = False  # paused, or a replay at its end: no sample will come to draw it
    insight._landed(7, later)
    assert redraws == [1, 1, 1] and insight.text_for(7).endswith("90% of its mergeable memory is merged")


def test_guest_control_answers_redraw_only_when_they_changed():
    from types import SimpleNamespace

    from ksmtop.guest_actions import Control, WorkloadState
    from ksmtop.tui.guest_control import GuestController

    redraws: list[int] = []
    source = SimpleNamespace(controls=None, limits=SimpleNamespace(controls="not here"))
    guests = GuestController(app=None, source=source, changed=lambda: redraws.append(1), sample_soon=lambda: None)  # type: ignore[arg-type]
    lab = {"lab-1": Control(True, kind="lab")}
    guests._refreshed((lab, {"lab-1": "agent answers"}, {}, []))
    assert redraws == [1]
    guests._refreshed((dict(lab), {"lab-1": "agent answers"}, {}, []))  # the same answers five seconds later
    assert redraws == [1]
    guests._refreshed((dict(lab), {"lab-1": "not answering: timed out"}, {}, []))
    assert redraws == [1, 1]
    guests._refreshed((dict(lab), {}, {"lab-1": WorkloadState(True, None, None, "", "", 1.0)}, []))
    assert redraws == [1, 1, 1]
    guests._refreshed(({**lab, "lab-2": Control(False, why="no agent")}, {}, {}, []))
    assert redraws == [1, 1, 1, 1]


async def test_the_sampling_thread_has_its_name_in_the_kernel():
    """`top -H` and /proc/PID/task/*/comm show which of ksmtop's threads costs what (bench/screen_cpu.py)."""
    import threading
    from pathlib import Path

    from ksmtop.replay import ReplaySource
    from ksmtop.tui.app import KsmTopApp
    from tests.tui.conftest import wait_until

    app = KsmTopApp(ReplaySource(Path(__file__).parent / "data" / "session.jsonl"), interval=0.2)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: app.history.latest is not None)
        names = {task.name: (task / "comm").read_text().strip() for task in Path("/proc/self/task").iterdir()}
        assert "ksmtop-sampling" in names.values()
        assert names[str(threading.get_native_id())] != "ksmtop-sampling"  # the main thread keeps its own


async def test_the_source_is_closed_after_the_sample_in_progress_never_beside_it():
    """Quitting while a sample runs: the source's close waits for it (it closed the collectors' files under the
    sample's feet: "dictionary changed size during iteration" in a CI run)."""
    import threading
    import time
    from pathlib import Path

    from ksmtop.replay import ReplaySource
    from ksmtop.tui.app import KsmTopApp
    from tests.tui.conftest import wait_until

    class SlowSource(ReplaySource):
        sampling = threading.Event()
        overlaps: list[str] = []
        closed_at: list[float] = []
        sampled_until: list[float] = []

        def sample(self):  # type: ignore[override]
            self.sampling.set()
            time.sleep(0.4)
            snapshot = super().sample()
            self.sampled_until.append(time.monotonic())
            self.sampling.clear()
            return snapshot

        def close(self) -> None:
            if self.sampling.is_set():
                self.overlaps.append(threading.current_thread().name)
            self.closed_at.append(time.monotonic())
            super().close()

    source = SlowSource(Path(__file__).parent / "data" / "session.jsonl")
    app = KsmTopApp(source, interval=0.05)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: app.history.latest is not None)
        await wait_until(pilot, source.sampling.is_set)  # the next sample is being taken: quit now
        app.exit()
    assert source.overlaps == []
    assert len(source.closed_at) == 1 and source.closed_at[0] >= source.sampled_until[-1]
