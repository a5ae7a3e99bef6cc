"""ksmtop's command lines: main.py (parser and dispatch), options.py (what was asked, typed), sources.py (the
Source asked for), screen.py, headless.py, session.py (record, replay, export, plot), args.py (shared argument
types). The lab, study, exporter and fleet keep their own command lines beside their packages."""

from ksmtop.cli.main import main

__all__ = ["main"]
