"""A real Prometheus server and real ksmtop exporters for tests, on loopback, stopped afterwards.

    with Exporter(tmp, "--all") as real, Exporter(tmp, "--root", tree) as other:
        with PrometheusServer(tmp, {"ksmtop": [real.address, other.address]}) as prometheus:
            prometheus.wait_for_targets(2)

Prometheus is Debian's package (scripts/setup installs it), started with its own config and data directory in
a temporary directory, on a free loopback port, with a short scrape interval; stop() (and leaving the ``with``)
ends it, also when a test fails. Exporters listen on port 0 and say their URL on stderr (a log file here).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS = "/usr/bin/prometheus"
PROMTOOL = "/usr/bin/promtool"


def installed() -> bool:
    return Path(PROMETHEUS).exists() and Path(PROMTOOL).exists()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _stop(process: subprocess.Popen, timeout: float = 15) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


class Exporter:
    """``python -m ksmtop [GLOBAL...] exporter --listen 127.0.0.1:0 [ARGS...]`` as a process of its own."""

    def __init__(self, workdir: Path, *args: str, interval: float = 1.0, global_args: tuple[str, ...] = ()) -> None:
        self.workdir = workdir
        self.args = args
        self.interval = interval
        self.global_args = global_args
        self.process: subprocess.Popen | None = None
        self.address = ""
        self.url = ""
        self.log = workdir / f"exporter-{id(self)}.log"

    def start(self, timeout: float = 60) -> Exporter:
        command = [sys.executable, "-m", "ksmtop", *self.global_args, "exporter", "--listen", "127.0.0.1:0"]
        command += ["--interval", f"{self.interval:g}", *self.args]
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(command, cwd=REPO, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log.read_text(errors="replace")
            for line in text.splitlines():
                if "serving http://" in line:
                    self.url = line.split("serving ", 1)[1].split()[0].rstrip(",;")
                    self.address = self.url.removeprefix("http://").removesuffix("/metrics")
                    return self
            if self.process.poll() is not None:
                raise RuntimeError(f"exporter exited {self.process.returncode}: {text}")
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"exporter did not start within {timeout} s: {self.log.read_text(errors='replace')}")

    def scrape(self, timeout: float = 10) -> str:
        with urllib.request.urlopen(self.url, timeout=timeout) as answer:
            return answer.read().decode()

    def stop(self) -> None:
        if self.process is not None:
            _stop(self.process)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def __enter__(self) -> Exporter:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class PrometheusServer:
    """Debian's prometheus on 127.0.0.1:<free port>, config and TSDB in ``workdir``; scrapes ``targets``."""

    def __init__(
        self,
        workdir: Path,
        targets: dict[str, list[str]],
        scrape_interval: str = "1s",
        rule_files: list[Path] | None = None,
    ) -> None:
        self.workdir = workdir / f"prometheus-{os.getpid()}-{id(self)}"
        self.targets = targets
        self.scrape_interval = scrape_interval
        self.rule_files = rule_files or []
        self.process: subprocess.Popen | None = None
        self.port = 0
        self.log = self.workdir / "prometheus.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def config(self) -> str:
        """The YAML configuration (JSON is YAML, so no YAML library is needed)."""
        return json.dumps(
            {
                "global": {"scrape_interval": self.scrape_interval, "evaluation_interval": self.scrape_interval},
                "rule_files": [str(path) for path in self.rule_files],
                "scrape_configs": [
                    {"job_name": job, "static_configs": [{"targets": addresses}]}
                    for job, addresses in self.targets.items()
                ],
            },
            indent=1,
        )

    def start(self, timeout: float = 60) -> PrometheusServer:
        self.workdir.mkdir(parents=True)
        (self.workdir / "prometheus.yml").write_text(self.config())
        for attempt in range(3):  # a free port can be taken between the probe and the bind: try another
            self.port = free_port()
            command = [
                PROMETHEUS,
                f"--config.file={self.workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--storage.tsdb.retention.time=2h",
                "--log.level=warn",
            ]
            with open(self.log, "ab") as log:
                self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
            if self._wait_ready(timeout):
                return self
            _stop(self.process)
            if attempt == 2 or "address already in use" not in self.log.read_text(errors="replace"):
                break
        raise RuntimeError(f"prometheus did not become ready: {self.log.read_text(errors='replace')[-2000:]}")

    def _wait_ready(self, timeout: float) -> bool:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as answer:
                    if answer.status == 200:
                        return True
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        return False

    def api(self, path: str) -> dict:
        with urllib.request.urlopen(f"{self.url}{path}", timeout=10) as answer:
            return json.loads(answer.read())

    def targets_up(self) -> dict[str, str]:
        """Scrape URL -> health ('up', 'down', 'unknown') of every active target."""
        data = self.api("/api/v1/targets")["data"]["activeTargets"]
        return {target["scrapeUrl"]: target["health"] for target in data}

    def wait_for_targets(self, count: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        health: dict[str, str] = {}
        while time.monotonic() < deadline:
            health = self.targets_up()
            if len(health) == count and all(state == "up" for state in health.values()):
                return
            time.sleep(0.2)
        raise AssertionError(f"targets not all up within {timeout} s: {health}")

    def stop(self) -> None:
        if self.process is not None:
            _stop(self.process)
        shutil.rmtree(self.workdir / "data", ignore_errors=True)

    def __enter__(self) -> PrometheusServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
