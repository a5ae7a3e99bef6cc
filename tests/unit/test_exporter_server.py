"""The exporter's sampling, cache, HTTP server, textfile and command line, on fixture trees (no Prometheus)."""

from __future__ import annotations

import gzip
import http.client
import os
import socket
import threading
from pathlib import Path

import pytest

from ksmtop.cli import main
from ksmtop.exporter.metrics import Health
from ksmtop.exporter.rules import RULES
from ksmtop.exporter.server import Exporter, MetricsServer, TextfileError, write_textfile
from ksmtop.sampler import Sampler
from tests.fixtures.tree import FakeRoot, ksm_stat_text

HEALTH = Health(version="0.1.0", mode="local", scope="qemu", hostname="h", is_root=True, interval_s=15.0)


class TreeSource:
    """A Sampler on a fixture tree, as a source; ``fail`` makes the next samples raise."""

    def __init__(self, root: Path) -> None:
        self.sampler = Sampler(root=root, perf=False)
        self.fail = False
        self.calls = 0

    def sample(self):
        self.calls += 1
        if self.fail:
            raise OSError("the tree went away")
        return self.sampler.sample()

    def close(self) -> None:
        self.sampler.close()


@pytest.fixture
def tree(tmp_path):
    tree = FakeRoot(tmp_path / "root")
    tree.add_process(4242, "qemu-system-x86", ["qemu", "-name", "guest=g1"], ksm_stat=ksm_stat_text(merging=10))
    return tree


@pytest.fixture
def exporter(tree):
    source = TreeSource(tree.path)
    exporter = Exporter(source, HEALTH)
    yield exporter
    source.close()


def test_the_exposition_is_rendered_once_per_sample_not_per_scrape(exporter):
    exporter.sample_once()
    first = exporter.body()
    assert exporter.body() is first  # the same bytes object: nothing was rendered for the second scrape
    assert exporter.body(gzipped=True) is exporter.body(gzipped=True)
    assert gzip.decompress(exporter.body(gzipped=True)) == first
    exporter.sample_once()
    assert exporter.body() is not first
    assert b"ksmtop_exporter_samples_total 2.0" in exporter.body()


def test_before_the_first_sample_only_health_is_served(exporter):
    body = exporter.body().decode()
    assert "ksmtop_exporter_samples_total 0.0" in body
    assert "ksmtop_ksm_run" not in body


def test_a_failed_sample_is_counted_and_the_previous_one_stays(exporter, capsys):
    exporter.sample_once()
    exporter.source.fail = True
    exporter.sample_once()
    body = exporter.body().decode()
    assert 'ksmtop_exporter_errors_total{kind="sample"} 1.0' in body
    assert "ksmtop_exporter_samples_total 1.0" in body
    assert 'ksmtop_guest_merged_bytes{guest="g1",uuid=""}' in body
    assert "sample failed: OSError: the tree went away" in capsys.readouterr().err


def test_the_sampling_thread_samples_on_its_own(tree):
    source = TreeSource(tree.path)
    exporter = Exporter(source, Health("0", "local", "qemu", "h", True, interval_s=0.05))
    exporter.start()
    try:
        deadline = threading.Event()
        for _ in range(200):
            if source.calls >= 3:
                break
            deadline.wait(0.05)
    finally:
        exporter.stop()
        source.close()
    assert source.calls >= 3


@pytest.fixture
def server(exporter):
    exporter.sample_once()
    server = MetricsServer(("127.0.0.1", 0), exporter, socket.AF_INET)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def request(server, method: str, path: str, headers: dict[str, str] | None = None):
    connection = http.client.HTTPConnection(*server.server_address[:2], timeout=10)
    try:
        connection.request(method, path, headers=headers or {})
        answer = connection.getresponse()
        return answer.status, dict(answer.getheaders()), answer.read()
    finally:
        connection.close()


def test_the_server_hands_out_the_cached_exposition(server, exporter):
    status, headers, body = request(server, "GET", "/metrics")
    assert status == 200
    assert headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert body == exporter.body()
    status, headers, body = request(server, "GET", "/metrics", {"Accept-Encoding": "gzip"})
    assert headers["Content-Encoding"] == "gzip" and gzip.decompress(body) == exporter.body()
    status, headers, body = request(server, "HEAD", "/metrics")
    assert status == 200 and body == b"" and int(headers["Content-Length"]) == len(exporter.body())


def test_the_server_is_read_only(server):
    assert request(server, "GET", "/other")[0] == 404
    assert request(server, "POST", "/metrics")[0] == 501
    assert request(server, "PUT", "/metrics")[0] == 501


def test_the_textfile_is_replaced_atomically(tmp_path):
    target = tmp_path / "ksmtop.prom"
    write_textfile(target, b"a 1\n")
    inode = target.stat().st_ino
    write_textfile(target, b"a 2\n")
    assert target.read_bytes() == b"a 2\n"
    assert target.stat().st_ino != inode  # a new file renamed over the old one, never rewritten in place
    assert oct(target.stat().st_mode & 0o777) == "0o644"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ksmtop.prom"]  # no temporary file left


@pytest.mark.parametrize("kind", ["symlink", "directory", "fifo"])
def test_the_textfile_refuses_targets_that_are_not_regular_files(tmp_path, kind):
    target = tmp_path / "ksmtop.prom"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_text("keep me")
    if kind == "symlink":
        target.symlink_to(elsewhere)
    elif kind == "directory":
        target.mkdir()
    else:
        os.mkfifo(target)
    with pytest.raises(TextfileError, match="not a regular file"):
        write_textfile(target, b"a 1\n")
    assert elsewhere.read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["elsewhere", "ksmtop.prom"]


def test_the_textfile_must_be_named_prom(tmp_path):
    with pytest.raises(TextfileError, match=r"\*\.prom"):
        write_textfile(tmp_path / "ksmtop.txt", b"a 1\n")


def test_exporter_once_writes_the_textfile(tree, tmp_path, capsys):
    target = tmp_path / "out.prom"
    assert main(["--root", str(tree.path), "exporter", "--once", "--textfile", str(target)]) == 0
    text = target.read_text()
    assert 'ksmtop_guest_merged_bytes{guest="g1",uuid=""}' in text
    assert capsys.readouterr().out == ""


def test_exporter_once_prints_the_exposition(tree, capsys):
    assert main(["--root", str(tree.path), "exporter", "--once"]) == 0
    assert "ksmtop_ksm_general_profit_bytes -4096.0" in capsys.readouterr().out


def test_exporter_rules_prints_the_rules(capsys):
    assert main(["exporter", "--rules"]) == 0
    assert capsys.readouterr().out == RULES


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["exporter", "--textfile", "/nonexistent-dir/k.prom"], "/nonexistent-dir is not a directory"),
        (["exporter", "--textfile", "/tmp"], "reads only files named *.prom"),
        (["--root", "/nonexistent-root", "exporter", "--once"], "/nonexistent-root/proc is not a directory"),
    ],
)
def test_bad_input_is_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_a_bad_listen_address_is_refused_by_the_parser(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["exporter", "--listen", "localhost"])
    assert exit_info.value.code == 2
    assert "not ADDR:PORT" in capsys.readouterr().err


def test_a_taken_port_is_one_line(tree, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["--root", str(tree.path), "exporter", "--listen", f"127.0.0.1:{port}"]) == 2
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{port}" in err and err.count("\n") == 1
