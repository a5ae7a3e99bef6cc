"""The headless loops (`ksmtop record`, `--batch`) on a fake clock: after a slow sample the missed slots are
skipped, never fired back to back; a stop signal only sets a flag that ends the loop between two samples."""

from __future__ import annotations

import dataclasses
import itertools
import os
import signal
import threading
import time
import types
from argparse import Namespace

import pytest

from ksmtop.cli import headless
from ksmtop.cli import session as session_cli
from ksmtop.cli.headless import next_deadline
from ksmtop.cli.options import Options, SourceOptions
from ksmtop.cli.session import StopFlag, record_samples
from ksmtop.recording import read_recording
from ksmtop.recording import writer as writer_module
from tests.support.synthetic import synthetic_session

SNAPSHOT = synthetic_session(guests=1, samples=1)[0]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)


class SlowOnce:
    """A source whose third sample takes ``slow`` seconds (a hung libvirt call, a big PSS read); the others 10 ms.
    Records when each sample started."""

    def __init__(self, clock: Clock, slow: float) -> None:
        self.clock, self.slow, self.started = clock, slow, []

    def sample(self):
        self.started.append(self.clock.now)
        self.clock.now += self.slow if len(self.started) == 3 else 0.01
        return SNAPSHOT

    def close(self) -> None:
        pass


class Writer:
    def __init__(self, fail_at: int | None = None) -> None:
        self.samples, self.fail_at = 0, fail_at

    def write(self, snapshot) -> bool:
        if self.samples == self.fail_at:
            return False
        self.samples += 1
        return True


class NoStop:
    def __init__(self, clock: Clock) -> None:
        self.clock, self.is_set = clock, False

    def wait(self, seconds: float) -> None:
        self.clock.sleep(seconds)


def gaps(times: list[float]) -> list[float]:
    return [round(b - a, 3) for a, b in itertools.pairwise(times)]


@pytest.mark.parametrize(
    ("deadline", "now", "expected"),
    [
        (10.0, 10.01, 11.0),  # on time: one interval after the last deadline (no drift)
        (10.0, 10.9, 11.4),  # the sample took 0.9 s: half an interval of rest, not 0.1 s
        (10.0, 13.5, 14.0),  # 3.5 s late: the missed slots are skipped
    ],
)
def test_next_deadline(deadline, now, expected):
    assert next_deadline(deadline, 1.0, now) == pytest.approx(expected)


def test_record_after_a_slow_sample_skips_the_missed_slots():
    clock = Clock()
    source = SlowOnce(clock, slow=3.5)
    writer = Writer()
    record_samples(source, writer, interval=1.0, count=8, duration=None, stop=NoStop(clock), clock=clock.monotonic)
    assert writer.samples == 8
    steps = gaps(source.started)
    assert min(steps) >= 0.5, steps  # before: 0.0, 0.0, 0.0 after the slow one (a catch-up burst)
    assert steps[:2] == [1.0, 1.0] and steps[2] == pytest.approx(4.01, abs=0.01) and steps[3:] == [1.0] * 4


def test_record_stops_at_the_first_failed_write():
    clock = Clock()
    source = SlowOnce(clock, slow=0.01)
    writer = Writer(fail_at=4)
    record_samples(source, writer, interval=1.0, count=None, duration=None, stop=NoStop(clock), clock=clock.monotonic)
    assert writer.samples == 4 and len(source.started) == 5


def test_record_duration_counts_from_the_start():
    clock = Clock()
    source = SlowOnce(clock, slow=0.01)
    record_samples(source, Writer(), interval=0.5, count=None, duration=3.0, stop=NoStop(clock), clock=clock.monotonic)
    assert len(source.started) == 7  # 0, 0.5, ..., 3.0


def test_batch_after_a_slow_sample_skips_the_missed_slots(monkeypatch, capsys):
    clock = Clock()
    source = SlowOnce(clock, slow=3.5)
    monkeypatch.setattr(headless, "time", types.SimpleNamespace(monotonic=clock.monotonic, sleep=clock.sleep))
    monkeypatch.setattr(headless, "open_headless_source", lambda options: source)
    options = Options(SourceOptions(), interval=1.0, batch=True, count=8)
    assert headless.run_headless(options) == 0
    assert len(capsys.readouterr().out.splitlines()) == 8
    assert min(gaps(source.started)) >= 0.5, gaps(source.started)


def test_stop_flag_sets_wakes_and_restores():
    before = {s: signal.getsignal(s) for s in session_cli.STOP_SIGNALS}
    with StopFlag() as stop:
        assert not stop.is_set
        timer = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGTERM))
        timer.start()
        started = time.monotonic()
        stop.wait(60)  # ends when the signal comes, not after a minute
        timer.join()
        assert stop.is_set and stop.signum == signal.SIGTERM
        assert time.monotonic() - started < 30
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C: the flag again, no KeyboardInterrupt
        assert stop.signum == signal.SIGINT
    assert {s: signal.getsignal(s) for s in session_cli.STOP_SIGNALS} == before


def test_a_stop_before_the_loop_takes_no_sample():
    clock = Clock()
    source = SlowOnce(clock, slow=0.01)
    stop = NoStop(clock)
    stop.is_set = True
    record_samples(source, Writer(), interval=1.0, count=None, duration=None, stop=stop, clock=clock.monotonic)
    assert source.started == []


class SignalsItself:
    """A source that sends this process SIGTERM while its third sample is taken."""

    def __init__(self) -> None:
        self.samples = 0

    def sample(self):
        self.samples += 1
        if self.samples == 3:
            os.kill(os.getpid(), signal.SIGTERM)  # the handler runs here, inside sample()
        return dataclasses.replace(SNAPSHOT, time=SNAPSHOT.time + self.samples)

    def close(self) -> None:
        pass


def record_args(path) -> Namespace:
    return Namespace(
        output=path, force=False, no_fsync=True, record_interval=0.05, record_count=None, duration=None,
        all=False, record_all=False, root="/", connect=None, no_libvirt=True,
    )  # fmt: skip


@pytest.mark.parametrize("name", ["s.jsonl", "s.jsonl.gz"])
def test_sigterm_while_sampling_ends_the_recording_after_that_sample(tmp_path, monkeypatch, name):
    """Before, the handler raised out of sample() (or out of a half-done gzip write); now it only sets the flag:
    the sample being taken is written, then the end marker."""
    monkeypatch.setattr(session_cli, "open_headless_source", lambda options: SignalsItself())
    path = tmp_path / name
    assert session_cli.record(record_args(path)) == 0
    recording = read_recording(path)
    assert recording.complete and recording.warnings == [] and len(recording.snapshots) == 3
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


@pytest.mark.parametrize("name", ["s.jsonl", "s.jsonl.gz"])
def test_sigterm_in_the_middle_of_a_write_lets_the_write_finish(tmp_path, monkeypatch, name):
    source = SignalsItself()
    source.samples = -100  # never signals itself
    monkeypatch.setattr(session_cli, "open_headless_source", lambda options: source)
    real_write = os.write
    writes = []

    def write_with_a_signal(fd, data):
        writes.append(len(data))
        if len(writes) == 4:  # the fourth sample: half of it, the signal, then the rest
            done = real_write(fd, bytes(data[: len(data) // 2]))
            os.kill(os.getpid(), signal.SIGTERM)
            return done
        return real_write(fd, data)

    monkeypatch.setattr(writer_module.os, "write", write_with_a_signal)
    path = tmp_path / name
    assert session_cli.record(record_args(path)) == 0
    recording = read_recording(path)
    assert recording.complete and recording.warnings == [] and len(recording.snapshots) == 4
