"""Many hosts through Prometheus: the data side of ``ksmtop fleet`` (the screen lives in ksmtop/tui).

prom.py       Prometheus HTTP API client (urllib, timeouts, size caps, errors in words)
model.py      FleetSnapshot, HostRow, FleetGuestRow, Sparkline; FLEET_FIELDS (unit, description, column label)
source.py     FleetSource: ``sample()`` -> FleetSnapshot, ``select(key)`` for the drilled-into host
recording.py  fleet recordings (JSON Lines) and FleetReplaySource
cli.py        ``ksmtop fleet`` (headless --once/--batch JSON; the screen is a hook)

No Textual or Rich imports (tests/unit/test_exporter_layering.py checks it).
"""
