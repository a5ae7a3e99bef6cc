"""ksmtop as a Prometheus exporter: the latest Snapshot as metrics, served over HTTP or written as a textfile.

metrics.py  the metric table (names, types, units, where each figure comes from) and the Snapshot -> families step
server.py   the sampling thread, the rendered exposition cached per sample, the HTTP server and the textfile
rules.py    the sample alert rules (docs/alerts.yml is a copy, checked by a test)
cli.py      ``ksmtop exporter``

No Textual or Rich imports. prometheus-client is imported only where the exposition is rendered.
"""
