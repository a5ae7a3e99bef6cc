"""The fleet screen (Pilot) on a real Prometheus that scrapes real ksmtop exporters, two on fixture trees standing
for other hosts: every host is a row, Enter drills into a host's guests, a host whose exporter dies turns
stale with its last values, and a recording of the fleet replays in the same screen.

Heavy: run under the host-wide lock (flock /tmp/ksmtop-heavy.lock ...).
"""

from __future__ import annotations

import os

import pytest

from ksmtop.fleet.recording import FleetRecordingWriter, FleetReplaySource, RecordingFleetSource
from ksmtop.fleet.source import FleetSource
from ksmtop.format import human_bytes
from ksmtop.tui.fleet import FleetApp
from ksmtop.tui.widgets.graphs import BAR_LINES
from tests.integration.test_prometheus_fleet import fixture_host
from tests.support.prometheus import Exporter, PrometheusServer, installed
from tests.tui.conftest import wait_until, widget_text

PAGE = os.sysconf("SC_PAGE_SIZE")
SIZE = (170, 40)

pytestmark = pytest.mark.skipif(
    not installed() and not os.environ.get("CI"), reason="needs Debian's prometheus (scripts/setup)"
)


def cell(app: FleetApp, table: str, row: str, column: str) -> str:
    return app.query_one(f"#{table}").get_cell(row, column)


async def test_the_fleet_screen_shows_every_host_drills_into_one_and_marks_a_dead_one_stale(tmp_path):
    host_b = fixture_host(tmp_path / "b", "host-b", {100: ("web-1", 100), 101: ("web-2", 50)})
    host_c = fixture_host(tmp_path / "c", "host-c", {200: ("db-1", 7)})
    recording = tmp_path / "fleet.jsonl"
    with (
        Exporter(tmp_path, "--no-libvirt", global_args=("--root", str(host_b.path))) as b,
        Exporter(tmp_path, "--no-libvirt", global_args=("--root", str(host_c.path))) as c,
        PrometheusServer(tmp_path, {"ksmtop": [b.address, c.address]}) as prometheus,
    ):
        prometheus.wait_for_targets(2)
        source = RecordingFleetSource(
            FleetSource(prometheus.url, rate_window_s=10), FleetRecordingWriter(recording, prometheus=prometheus.url)
        )
        app = FleetApp(source, interval=0.5)
        async with app.run_test(size=SIZE) as pilot:
            hosts = app.query_one("#hosts")
            await wait_until(pilot, lambda: hosts.row_count == 2, timeout=30)
            keys = {cell(app, "hosts", key.value, "hostname"): key.value for key in hosts.rows}
            assert set(keys) == {"host-b", "host-c"}
            b_key, c_key = keys["host-b"], keys["host-c"]
            assert cell(app, "hosts", b_key, "ksm_run") == "on"
            assert cell(app, "hosts", b_key, "saving_bytes") == human_bytes(35 * PAGE)
            assert cell(app, "hosts", b_key, "guests") == "2"
            assert cell(app, "hosts", b_key, "state").startswith("ok")
            assert "2 hosts" in widget_text(app.header) and "none stale" in widget_text(app.header)

            # Enter on host-b: its guests, with their merged memory, and its sparklines
            hosts.move_cursor(row=[key.value for key in hosts.rows].index(b_key))
            await pilot.press("enter")
            guests = app.query_one("#guests")
            await wait_until(pilot, lambda: guests.display and guests.row_count == 2)
            assert cell(app, "guests", "web-1", "merged_bytes") == human_bytes(100 * PAGE)
            assert cell(app, "guests", "web-2", "merged_bytes") == human_bytes(50 * PAGE)
            label, *bars = app.graphs.lines("saving")
            assert label.startswith(f"host-b: KSM saving: {human_bytes(35 * PAGE)}")
            assert bars[-1].strip(), bars  # a positive saving draws at least the lowest bar
            assert app.graphs.render_line(0).text.startswith("host-b: KSM saving")  # what reaches the screen
            assert app.graphs.content_size.height == 3 * (1 + BAR_LINES)  # the three graphs, none cut off
            assert app.graphs.lines("profit")[0].startswith("host-b: general profit")
            await pilot.press("escape")
            assert hosts.display and not guests.display

            # the exporter of host-c dies: stale, with its last figures, not zeros
            assert c.process is not None
            c.process.kill()
            c.process.wait(timeout=10)
            await wait_until(pilot, lambda: cell(app, "hosts", c_key, "state").startswith("STALE"), timeout=60)
            assert cell(app, "hosts", c_key, "saving_bytes") == human_bytes(35 * PAGE)
            assert cell(app, "hosts", c_key, "guests") == "1"
            assert "1 stale" in widget_text(app.header)
            looks = len(app.snapshot.hosts)
        assert looks == 2

    # the recording of that session replays in the same screen, with the time keys
    replay = FleetApp(FleetReplaySource(recording), interval=0.5)
    async with replay.run_test(size=SIZE) as pilot:
        hosts = replay.query_one("#hosts")
        await wait_until(pilot, lambda: hosts.row_count == 2)
        await pilot.press("G")
        await wait_until(pilot, lambda: replay.clock.at_end and replay.paused, timeout=30)
        await pilot.pause(0.2)
        states = {
            cell(replay, "hosts", key.value, "hostname"): cell(replay, "hosts", key.value, "state")
            for key in hosts.rows
        }
        assert states["host-c"].startswith("STALE") and states["host-b"].startswith("ok")
        assert "REPLAY" in widget_text(replay.status)
        await pilot.press("g")
        await wait_until(pilot, lambda: replay.clock.index == 0)
