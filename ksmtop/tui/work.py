"""Blocking work off the UI thread, and its results back on it as messages.

Every blocking call of the screen (a sample, a tunable write, a guest-agent or libvirt call, a diagnosis, the
sharing matrix) runs in a thread worker; what it returns reaches the UI thread as a ``Finished`` message, whose
handler runs the caller's continuation there. Worker threads never touch a widget or the controllers' state.

``SampleLoop`` takes one sample at a time: a request while a sample runs is coalesced into one more sample
after it, and the timer is re-armed only once a sample has landed (so a slow sample delays the next one
instead of piling up behind it).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from textual.app import App
from textual.message import Message
from textual.timer import Timer

T = TypeVar("T")


class Finished(Message):
    """A worker's result; ``apply`` runs on the UI thread (unless the app is closing)."""

    def __init__(self, apply: Callable[[], None]) -> None:
        super().__init__()
        self.apply = apply


def error_text(exc: BaseException) -> str:
    """One line for the screen: the message, with the type for exceptions that are bugs, not refusals."""
    text = str(exc) or type(exc).__name__
    return text if isinstance(exc, OSError | ValueError | RuntimeError) else f"{type(exc).__name__}: {text}"


def in_thread(
    app: App[Any],
    call: Callable[[], T],
    then: Callable[[T], None],
    *,
    group: str,
    failed: Callable[[BaseException], None] | None = None,
    exclusive: bool = False,
) -> None:
    """Run ``call()`` in a thread; ``then(result)`` (or ``failed(exception)``) runs on the UI thread after.

    An exception in ``call`` never reaches Textual's worker machinery (which would end the app): it goes to
    ``failed``, or is dropped when there is none (a hint that could not be worked out is no error)."""

    app.run_worker(
        reporting(app, call, then, failed), thread=True, group=group, exclusive=exclusive, exit_on_error=False
    )


def reporting(
    app: App[Any], call: Callable[[], T], then: Callable[[T], None], failed: Callable[[BaseException], None] | None
) -> Callable[[], None]:
    """What a thread runs: ``call()``, then ``then(result)`` or ``failed(exception)`` posted to the UI thread as
    a Finished message. No exception leaves it."""

    def body() -> None:
        try:
            result = call()
        except Exception as exc:  # a bug or a refusal in a blocking call must never end the screen
            if failed is not None:
                report = failed
                app.post_message(Finished(lambda error=exc: report(error)))
            return
        app.post_message(Finished(lambda: then(result)))

    return body


CLOSE_WAIT_S = 3.0
"""How long the end of the screen waits for the sample in progress, so that the source is closed after it."""


class SampleHost(Protocol):
    """What the loop needs from the app."""

    def sample_job(self, advance: bool) -> Callable[[], object]:
        """The blocking sample (called on the UI thread, so what it needs is read there; it runs in a thread).
        ``advance``: the timer asks (a replay moves on a frame); else a key or a result asks (a replay shows
        the frame it is at, or the one a key chose)."""
        ...

    def sample_landed(self, result: object, took_s: float) -> None: ...
    def sample_failed(self, error: str) -> None: ...
    def next_interval(self) -> float: ...


class SampleLoop:
    """One sample at a time, on a timer that is re-armed after each sample lands.

    Samples run in one thread of the loop's own (a Textual worker per sample costs more than the sample
    itself on a quiet host); results come back as Finished messages like every other worker's."""

    def __init__(self, app: App[Any], host: SampleHost) -> None:
        self._app = app
        self._host = host
        self._timer: Timer | None = None
        self._running = False
        self._again = False
        self._again_advance = False
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self.paused = False

    def request(self, advance: bool = False) -> None:
        """A sample now (coalesced with one already running)."""
        self._stop_timer()
        if self._running:
            self._again = True
            self._again_advance |= advance
            return
        self._running = True
        started = time.monotonic()
        # a collector bug must not end the screen: it is said in the status line
        body = reporting(
            self._app,
            self._host.sample_job(advance),
            lambda result: self._landed(result, time.monotonic() - started),
            self._failed,
        )
        if self._thread is None:
            self._thread = threading.Thread(target=self._serve, name="ksmtop-sampling", daemon=True)
            self._thread.start()
        self._jobs.put(body)

    def _serve(self) -> None:
        name_this_thread("ksmtop-sampling")
        while (job := self._jobs.get()) is not None:
            job()

    def stop(self, close: Callable[[], object] | None = None) -> None:
        """No more samples. ``close`` (the source's) runs after the sample being taken, on the sampling thread:
        never beside it (closing the collectors' files while a sample reads them broke the sample, or the close
        itself: "dictionary changed size during iteration"). The screen waits for that at most CLOSE_WAIT_S; a
        sample hung longer (a libvirtd that does not answer) keeps its thread, a daemon, and the source is left
        to the end of the process."""
        self._stop_timer()
        thread = self._thread
        if thread is None:  # no sample was ever taken
            if close is not None:
                close()
            return
        if close is not None:
            self._jobs.put(lambda: _quietly(close))
        self._jobs.put(None)
        if thread is not threading.current_thread():
            thread.join(CLOSE_WAIT_S)

    @property
    def busy(self) -> bool:
        """A sample is being taken (or asked for and not landed yet)."""
        return self._running

    @property
    def started(self) -> bool:
        """A sample has been asked for at least once."""
        return self._thread is not None

    def pause(self, paused: bool) -> None:
        self.paused = paused
        if paused:
            self._stop_timer()
        else:
            self.request()

    def rearm(self) -> None:
        """Start the wait for the next sample again (the interval changed)."""
        if not self._running and not self.paused:
            self._arm()

    def _landed(self, result: object, took_s: float) -> None:
        self._running = False
        self._host.sample_landed(result, took_s)
        self._next()

    def _failed(self, exc: BaseException) -> None:
        self._running = False
        self._host.sample_failed(f"sampling failed: {error_text(exc)}")
        self._next()

    def _next(self) -> None:
        if self._again:
            advance, self._again, self._again_advance = self._again_advance, False, False
            self.request(advance)
        elif not self.paused:
            self._arm()

    def _arm(self) -> None:
        self._stop_timer()
        self._timer = self._app.set_timer(self._host.next_interval(), self._tick)

    def _tick(self) -> None:
        self.request(advance=True)

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.stop()
            self._timer = None


def _quietly(close: Callable[[], object]) -> None:
    """A source's close at the end of the screen: what it raises has nowhere to go (the screen is gone)."""
    try:
        close()
    except Exception:  # the screen has ended; the process ends next
        pass


def name_this_thread(name: str) -> None:
    """Give the calling thread its name in the kernel too (at most 15 bytes), so that `top -H`, htop and
    /proc/PID/task/*/comm tell ksmtop's threads apart (Python 3.11 names threads for itself only)."""
    try:
        with open(f"/proc/self/task/{threading.get_native_id()}/comm", "w") as comm:
            comm.write(name[:15])
    except OSError:
        pass  # no /proc: the name is only a convenience
