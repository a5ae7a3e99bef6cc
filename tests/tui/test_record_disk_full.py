"""R on the screen while the disk fills up (a real tmpfs of 64 KiB, mounted by the test): the recorder stops
with one message naming the file, sampling goes on, and what was written before reads back intact."""

from __future__ import annotations

from ksmtop.live import LiveSource
from ksmtop.recording import read_recording
from ksmtop.tui.app import KsmTopApp
from tests.tui.conftest import wait_until, widget_text

SIZE = (170, 48)


async def test_a_full_disk_stops_the_recording_not_the_screen(small_disk):
    app = KsmTopApp(LiveSource(scope="ksm"), interval=0.05, record_dir=small_disk)
    notes: list[str] = []
    original = app.notify

    def notify(message: str, **kwargs) -> None:
        notes.append(message)
        original(message, **kwargs)

    app.notify = notify  # type: ignore[method-assign]
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.history.latest is not None)
        await pilot.press("R")
        await wait_until(pilot, lambda: app.recorder is not None)
        recorder = app.recorder
        await wait_until(pilot, lambda: app.recorder is None, timeout=120)  # the disk filled up
        failures = [note for note in notes if "No space left on device" in note]
        assert len(failures) == 1, notes
        failure = failures[0]
        assert str(recorder.path) in failure and "\n" not in failure
        before = len(app.history)
        await wait_until(pilot, lambda: len(app.history) >= before + 5)  # sampling goes on
        assert "REC" not in widget_text(app.main.status)
    recording = read_recording(recorder.path)
    assert recording.snapshots and len(recording.snapshots) >= recorder.samples > 0
    assert any("cut" in warning or "end" in warning for warning in recording.warnings)
