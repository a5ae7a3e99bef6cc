"""The exporter at work: a sampling thread on its own cadence, the exposition rendered once per sample and cached,
an HTTP server that hands out the cached bytes, and the textfile for node_exporter.

A scrape never waits on /proc walks or libvirt, and concurrent scrapes cost a memory copy each: the text is built
in the sampling thread, once per sample, not per scrape. Before the first sample lands, /metrics shows the
exporter's own health only. The server answers GET and HEAD, nothing else: it is read-only.
"""

from __future__ import annotations

import gzip
import os
import stat
import sys
import tempfile
import threading
import time
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING

from ksmtop.exporter.metrics import Health, families, render
from ksmtop.safetext import safe

if TYPE_CHECKING:
    from ksmtop.model import Snapshot
    from ksmtop.source import Source

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
REQUEST_TIMEOUT_S = 10.0
"""A client that sends nothing for this long is dropped (no thread is held by a silent connection)."""


class TextfileError(Exception):
    """The textfile cannot be written; the message says why in words."""


def check_textfile_target(path: Path) -> None:
    """Refuse what node_exporter would not read, or what is not ours to replace: one line on why."""
    if not path.name.endswith(".prom"):
        raise TextfileError(f"{path}: node_exporter's textfile collector reads only files named *.prom")
    if not path.parent.is_dir():
        raise TextfileError(f"{path.parent} is not a directory")
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise TextfileError(f"{path}: {exc.strerror}") from None
    if not stat.S_ISREG(mode):
        raise TextfileError(f"{path} exists and is not a regular file (a link, a directory, a device): not replaced")


def write_textfile(path: Path, data: bytes) -> None:
    """Atomically: a temporary file in the same directory (never *.prom), fsync, then rename over the target."""
    check_textfile_target(path)
    try:
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise TextfileError(f"cannot create a file in {path.parent}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fchmod(handle.fileno(), 0o644)
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except OSError as exc:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise TextfileError(f"cannot write {path}: {exc.strerror}") from None


class Exporter:
    """Samples ``source`` every ``interval_s`` in a thread; ``body()`` is the latest exposition, ready to send."""

    def __init__(self, source: Source, health: Health, textfile: Path | None = None) -> None:
        self.source = source
        self.health = health
        self.textfile = textfile
        self.snapshot: Snapshot | None = None
        self._errors = dict.fromkeys(("sample", "ksm", "libvirt", "textfile"), 0)
        self._lock = threading.Lock()
        self._body = render(families(None, health))
        self._gzipped: bytes | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None

    # --- what the server reads ----------------------------------------------------------------------------
    def body(self, gzipped: bool = False) -> bytes:
        with self._lock:
            if not gzipped:
                return self._body
            if self._gzipped is None:  # once per sample, for the first scrape that asks
                self._gzipped = gzip.compress(self._body, compresslevel=6, mtime=0)
            return self._gzipped

    # --- the sampling thread ------------------------------------------------------------------------------
    def sample_once(self) -> None:
        """One sample, rendered and stored (and written to the textfile); errors are counted, never raised."""
        started = time.perf_counter()
        snapshot = None
        try:
            snapshot = self.source.sample()
        except Exception as exc:  # a broken sample keeps the previous one served, and says so
            self._errors["sample"] += 1
            self.last_error = safe(f"sample failed: {type(exc).__name__}: {exc}")
            print(f"ksmtop exporter: {self.last_error}", file=sys.stderr)
        duration = time.perf_counter() - started
        libvirt_up = self._libvirt_up()
        if snapshot is not None:
            self.snapshot = snapshot
            if not snapshot.ksm.available:
                self._errors["ksm"] += 1
        if libvirt_up is False:
            self._errors["libvirt"] += 1
        self.health = replace(
            self.health,
            samples=self.health.samples + (snapshot is not None),
            sample_duration_s=duration,
            last_sample_time=self.snapshot.time if self.snapshot is not None else None,
            errors=dict(self._errors),
            libvirt_up=libvirt_up,
        )
        body = render(families(self.snapshot, self.health))
        with self._lock:
            self._body, self._gzipped = body, None
        if self.textfile is not None:
            try:
                write_textfile(self.textfile, body)
            except TextfileError as exc:
                self._errors["textfile"] += 1
                self.last_error = str(exc)
                print(f"ksmtop exporter: {exc}", file=sys.stderr)

    def _libvirt_up(self) -> bool | None:
        watcher = getattr(self.source, "watcher", None)
        if watcher is None:
            return None
        return bool(watcher.latest().connected)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="ksmtop-exporter-sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            self.sample_once()
            next_at += self.health.interval_s
            now = time.monotonic()
            if next_at < now:  # a sample longer than the interval: start again from now, no burst
                next_at = now
            self._stop.wait(next_at - now)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)


# --- HTTP --------------------------------------------------------------------------------------------------

INDEX = b"""<html><head><title>ksmtop exporter</title></head><body>
<h1>ksmtop exporter</h1><p>Per-guest KSM metrics: <a href="/metrics">/metrics</a></p></body></html>
"""


class _Handler(BaseHTTPRequestHandler):
    server: MetricsServer
    timeout = REQUEST_TIMEOUT_S
    server_version = "ksmtop-exporter"
    sys_version = ""

    def do_GET(self) -> None:
        self._answer(send_body=True)

    def do_HEAD(self) -> None:
        self._answer(send_body=False)

    def _answer(self, send_body: bool) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            gzipped = "gzip" in self.headers.get("Accept-Encoding", "")
            body = self.server.exporter.body(gzipped)
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPE)
            if gzipped:
                self.send_header("Content-Encoding", "gzip")
        elif path == "/":
            body = INDEX
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
        else:
            body = b"not found: the metrics are at /metrics\n"
            self.send_response(404)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Scrapes are not logged: a scrape every 15 s would fill the journal with nothing."""


class MetricsServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], exporter: Exporter, family: int) -> None:
        self.address_family = family
        self.exporter = exporter
        super().__init__(address, _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host = f"[{host}]" if ":" in str(host) else str(host)
        return f"http://{host}:{port}/metrics"
