"""The screen: ksmtop's default command."""

from __future__ import annotations

import sys

from ksmtop.cli.options import Options
from ksmtop.cli.sources import open_source


def run_screen(options: Options) -> int:
    from ksmtop.tui.app import KsmTopApp

    if not sys.stdout.isatty():
        print("ksmtop: the screen needs a terminal; use --once --json or --batch for output to a pipe", file=sys.stderr)
        return 2
    app = KsmTopApp(
        open_source(options.source),
        interval=options.interval,
        preferences=options.preferences,
        config_file=options.config_file,
        config_warning=options.config_warning,
    )
    app.run()
    return app.return_code or 0
