"""Argument types every command line shares (argparse ``type=`` callables). No command imports here, so any
command's parser can use them without an import circle."""

from __future__ import annotations

import argparse


def positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0.05 <= value <= 3600:
        raise argparse.ArgumentTypeError("interval must be between 0.05 and 3600 s")
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("count must be at least 1")
    return value


def duration(text: str) -> float:
    """'90', '1.5', '30s', '10m', '2h'."""
    units = {"s": 1, "m": 60, "h": 3600}
    scale = units.get(text[-1:].lower(), 1)
    number = text[:-1] if text[-1:].lower() in units else text
    try:
        value = float(number) * scale
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 90, 30s, 10m, 2h)") from None
    if not value > 0:
        raise argparse.ArgumentTypeError("a duration must be positive")
    return value


def add_libvirt_options(parser: argparse.ArgumentParser, *, connect_help: str, dest_prefix: str = "") -> None:
    """-c/--connect URI and --no-libvirt, mutually exclusive: the pair every command that reads a host takes
    (a subcommand gives a dest_prefix, so that its own options do not overwrite the top level's)."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("-c", "--connect", dest=f"{dest_prefix}connect", metavar="URI", help=connect_help)
    group.add_argument(
        "--no-libvirt",
        dest=f"{dest_prefix}no_libvirt",
        action="store_true",
        help="do not use libvirt: /proc and /sys only",
    )
