"""What the command line asked for, typed: the screen and the headless output take an Options, never the
argparse namespace; the config file fills what the command line left out."""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from pathlib import Path

from ksmtop.config import DEFAULTS, Preferences, config_path
from ksmtop.config import load as load_preferences


@dataclass(frozen=True, slots=True)
class SourceOptions:
    """Where the figures come from."""

    root: str = "/"
    """Read /proc and /sys under another root (tests, fixture trees)."""
    all: bool = False
    """Every process using KSM, not only qemu guests."""
    connect: str | None = None
    """libvirt URI; a remote one shows that host through libvirt alone."""
    no_libvirt: bool = False


@dataclass(frozen=True, slots=True)
class Options:
    source: SourceOptions
    interval: float = 1.0
    once: bool = False
    batch: bool = False
    count: int | None = None
    preferences: Preferences = DEFAULTS
    config_file: Path | None = None
    config_warning: str | None = None
    """Why the config file could not be used (said once; ksmtop goes on with the defaults)."""

    @property
    def headless(self) -> bool:
        return self.once or self.batch

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Options:
        """The command line, with the config file's preferences where it gives none."""
        preferences, warning = load_preferences(args.config)
        connect = args.connect
        if connect is None and not args.no_libvirt and preferences.connect:
            connect = preferences.connect
        if connect:  # the URI in use is the one W saves
            preferences = dataclasses.replace(preferences, connect=connect)
        source = SourceOptions(
            root=str(args.root),
            all=args.all or preferences.scope == "ksm",
            connect=connect,
            no_libvirt=args.no_libvirt,
        )
        return cls(
            source=source,
            interval=args.interval if args.interval is not None else preferences.interval,
            once=args.once,
            batch=args.batch,
            count=args.count,
            preferences=preferences,
            config_file=config_path(args.config),
            config_warning=warning,
        )
