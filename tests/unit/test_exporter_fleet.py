"""The fleet's data side without Prometheus: the model, its recordings and replay, the client's failures in words,
and the layering (no Textual in ksmtop.exporter or ksmtop.fleet). The real Prometheus is in
tests/integration/test_prometheus_fleet.py."""

from __future__ import annotations

import gzip
import json
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ksmtop.cli import main
from ksmtop.fleet.model import FLEET_FIELDS, FleetGuestRow, FleetSnapshot, HostRow, Sparkline, from_dict, to_dict
from ksmtop.fleet.prom import PrometheusClient, PrometheusError, promql_string
from ksmtop.fleet.recording import (
    FleetRecordingError,
    FleetRecordingWriter,
    FleetReplaySource,
    read_fleet_recording,
)
from ksmtop.fleet.source import FleetSource, selector


def snapshot(t: float = 1000.0, saving: float = 1e9, name: str = "vm-1") -> FleetSnapshot:
    host = HostRow(
        key="ksmtop/a:9848",
        instance="a:9848",
        job="ksmtop",
        hostname="kvm-a",
        up=True,
        stale=False,
        age_s=1.5,
        mode="local",
        ksm_available=True,
        ksm_run=1,
        saving_bytes=saving,
        general_profit_bytes=-4096.0,
        sharing_ratio=3.0,
        ksmd_cpu_percent=2.5,
        guests=1,
        unmerge_debt_bytes=saving,
        mem_available_bytes=5e8,
        mem_total_bytes=1.6e10,
    )
    guest = FleetGuestRow(host=host.key, guest=name, pid=42, kind="qemu", merged_bytes=2e8, rss_bytes=4e8)
    line = Sparkline(start=t - 590, step_s=10, values=(None, 1.0, 2.0))
    return FleetSnapshot(
        time=t,
        prometheus="http://p:9090",
        hosts=(host,),
        guests=(guest,),
        host_series={host.key: {"saving_bytes": line}},
        guest_series={name: line},
        selected=host.key,
    )


def test_a_snapshot_survives_json():
    original = snapshot()
    assert from_dict(json.loads(json.dumps(to_dict(original)))) == original


def test_rows_compute_what_the_screen_shows():
    host = snapshot().hosts[0]
    assert host.ksm_on is True
    assert host.debt_exceeds_available  # 1e9 of debt, 5e8 available
    assert snapshot().guests[0].merged_percent == 50.0
    assert snapshot().guests_of("ksmtop/a:9848") == list(snapshot().guests)
    assert Sparkline(0, 1, (None, 2.0)).filled() == [0.0, 2.0]


def test_every_row_field_has_a_unit_entry_and_description():
    for cls in (HostRow, FleetGuestRow):
        for name in cls.__dataclass_fields__:
            assert f"{cls.__name__}.{name}" in FLEET_FIELDS, name
            assert FLEET_FIELDS[f"{cls.__name__}.{name}"]["description"]


def test_strings_from_a_recording_are_made_safe():
    data = to_dict(snapshot(name="vm\x1b]0;pwned\x07"))
    data["hosts"][0]["hostname"] = "kvm\u202eevil"
    loaded = from_dict(data)
    assert loaded.guests[0].guest == "vm\\x1b]0;pwned\\x07"
    assert loaded.hosts[0].hostname == "kvm\\u202eevil"


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz"])
def test_recording_and_replay(tmp_path, suffix):
    path = tmp_path / f"fleet{suffix}"
    writer = FleetRecordingWriter(path, prometheus="http://p:9090")
    looks = [snapshot(t=1000.0 + 5 * i, saving=1e9 + i) for i in range(4)]
    for look in looks:
        writer.write(look)
    writer.close()
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    recording = read_fleet_recording(path)
    assert recording.snapshots == looks and recording.warnings == []
    replay = FleetReplaySource(recording)
    assert [replay.sample() for _ in range(5)] == [*looks, looks[-1]]  # the last one stays
    assert replay.at_end
    replay.seek(1)
    assert replay.sample() == looks[1]
    assert replay.frame_interval() == 5.0
    replay.set_speed(10)
    assert replay.frame_interval() == 0.5
    assert "look 2/4" in replay.position_text()


def test_a_recording_is_not_overwritten_without_force(tmp_path):
    path = tmp_path / "fleet.jsonl"
    FleetRecordingWriter(path).close()
    with pytest.raises(FleetRecordingError, match="exists"):
        FleetRecordingWriter(path)
    FleetRecordingWriter(path, force=True).close()


def test_a_cut_recording_keeps_what_it_has(tmp_path):
    path = tmp_path / "fleet.jsonl.gz"
    writer = FleetRecordingWriter(path)
    writer.write(snapshot())
    writer.write(snapshot(t=1005.0))
    writer.close()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 30])
    recording = read_fleet_recording(path)
    assert recording.snapshots[0] == snapshot()
    assert recording.warnings


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"not json\n", "no JSON header"),
        (b'{"type":"header","format":"ksmtop-recording","version":1}\n', "not a ksmtop fleet recording"),
        (b'{"type":"header","format":"ksmtop-fleet-recording","version":9}\n', "version 9"),
    ],
)
def test_what_is_not_a_fleet_recording_is_refused(tmp_path, content, message):
    path = tmp_path / "x.jsonl"
    path.write_bytes(content)
    with pytest.raises(FleetRecordingError, match=message):
        read_fleet_recording(path)


def test_bad_lines_are_skipped_with_a_warning(tmp_path):
    path = tmp_path / "x.jsonl"
    header = b'{"type":"header","format":"ksmtop-fleet-recording","version":1}\n'
    good = json.dumps({"type": "fleet", **to_dict(snapshot())}).encode() + b"\n"
    path.write_bytes(header + b"{broken\n" + b'{"type":"fleet","time":"x"}\n' + good)
    recording = read_fleet_recording(path)
    assert recording.snapshots == [snapshot()]
    assert len(recording.warnings) == 2


def test_fleet_replay_prints_json_lines(tmp_path, capsys):
    path = tmp_path / "fleet.jsonl.gz"
    writer = FleetRecordingWriter(path)
    writer.write(snapshot())
    writer.write(snapshot(t=1005.0))
    writer.close()
    assert main(["fleet", "--replay", str(path), "--batch", "--json"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [from_dict(json.loads(line)) for line in lines] == [snapshot(), snapshot(t=1005.0)]
    assert gzip.decompress(path.read_bytes()).count(b"\n") == 4  # header, two looks, end


# --- the client's failures, in words -------------------------------------------------------------------------


def test_promql_selectors_escape_label_values():
    assert promql_string('a"b\\c\n') == '"a\\"b\\\\c\\n"'
    assert selector({"job": "k", "instance": 'x"y'}) == '{instance="x\\"y",job="k"}'


@pytest.mark.parametrize("url", ["prometheus:9090", "ftp://p/", "http://", "file:///etc/passwd"])
def test_only_http_urls_are_taken(url):
    with pytest.raises(PrometheusError, match="not a Prometheus URL"):
        PrometheusClient(url)


def test_a_refused_connection_is_said_in_words():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(PrometheusError, match=rf"cannot reach http://127.0.0.1:{port}: .*refused"):
        PrometheusClient(f"http://127.0.0.1:{port}").query("up")


def test_a_silent_server_times_out():
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        client = PrometheusClient(f"http://127.0.0.1:{silent.getsockname()[1]}", timeout_s=0.3)
        with pytest.raises(PrometheusError, match=r"no answer within 0.3 s"):
            client.query("up")


class _Stub(BaseHTTPRequestHandler):
    answers: dict[str, tuple[int, bytes]] = {}

    def do_GET(self) -> None:
        status, body = self.answers.get(self.path.split("?")[0], (404, b"{}"))
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def stub():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Stub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_bad_query_brings_prometheus_own_message(stub):
    _, url = stub
    _Stub.answers = {
        "/api/v1/query": (400, b'{"status":"error","errorType":"bad_data","error":"parse error at char 3"}')
    }
    with pytest.raises(PrometheusError, match="HTTP 400: bad_data: parse error at char 3"):
        PrometheusClient(url).query("up{")


def test_an_answer_that_is_not_the_api_is_refused(stub):
    _, url = stub
    _Stub.answers = {"/api/v1/query": (200, b"<html>a login page</html>")}
    with pytest.raises(PrometheusError, match="not JSON"):
        PrometheusClient(url).query("up")


def test_fleet_source_reports_an_unreachable_prometheus_in_the_snapshot():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    look = FleetSource(f"http://127.0.0.1:{port}").sample()
    assert look.hosts == () and "cannot reach" in (look.error or "")


def test_fleet_once_without_prometheus_says_why(capsys):
    assert main(["fleet", "--prometheus", "http://127.0.0.1:1", "--once", "--json"]) == 1
    assert "cannot reach" in json.loads(capsys.readouterr().out)["error"]


def test_fleet_needs_json_for_headless_output(capsys):
    assert main(["fleet", "--prometheus", "http://p:9090", "--once"]) == 2
    assert "--json" in capsys.readouterr().err


def test_exporter_and_fleet_import_without_ui():
    modules = [
        "ksmtop.exporter.metrics",
        "ksmtop.exporter.server",
        "ksmtop.exporter.rules",
        "ksmtop.exporter.cli",
        "ksmtop.fleet.prom",
        "ksmtop.fleet.model",
        "ksmtop.fleet.source",
        "ksmtop.fleet.recording",
        "ksmtop.fleet.cli",
    ]
    code = "import sys\n" + "".join(f"import {m}\n" for m in modules)
    code += "print(sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich')))\n"
    code += f"print(all(m in sys.modules for m in {modules!r}))\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == ["[]", "True"]
