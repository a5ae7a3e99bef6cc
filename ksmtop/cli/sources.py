"""The Source a command line asks for: this host (with libvirt when there), or a remote host through libvirt.
One libvirt connection per source: its watcher and its guest controls share it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ksmtop.cli.options import SourceOptions

if TYPE_CHECKING:
    from ksmtop.source import Source

HEADLESS_FIRST_WAIT_S = 15.0
"""Headless output waits this long for libvirt's first answer (a libvirtd that just started probes qemu first);
later samples wait no longer than the screen's, so a hung libvirtd does not slow --batch or record down."""


def libvirt_uri(options: SourceOptions) -> str | None:
    """The libvirt URI to use, or None: --no-libvirt, another root, or (by default) no libvirt-python here."""
    if options.no_libvirt or (options.root != "/" and not options.connect):
        return None
    if options.connect:
        return options.connect
    try:
        import libvirt  # noqa: F401
    except ImportError:
        return None
    from ksmtop.collect.libvirt import DEFAULT_URI

    return DEFAULT_URI


def open_source(options: SourceOptions, *, headless: bool = False, perf: bool = True) -> Source:
    """The source asked for. ``headless``: no guest controls, and the first sample waits for libvirt's answer;
    ``perf``: count KSM tracepoints and per-guest faults with perf (the exporter does without)."""
    from ksmtop.collect.libvirt import LibvirtConnection, is_remote
    from ksmtop.live import LiveSource

    uri = libvirt_uri(options)
    first_wait = HEADLESS_FIRST_WAIT_S if headless else 0.0
    if uri is not None and is_remote(uri):
        from ksmtop.remote import RemoteSource

        return RemoteSource(LibvirtConnection(uri), controls=not headless, first_wait_s=first_wait)
    source = LiveSource(
        root=options.root,
        scope="ksm" if options.all else "qemu",
        libvirt=LibvirtConnection(uri) if uri else None,
        controls=not headless and options.root == "/",
        libvirt_first_wait_s=first_wait,
        perf=perf,
    )
    if uri is None and options.no_libvirt:
        source.description += "; libvirt off (--no-libvirt)"
    elif uri is None and options.root == "/":
        source.description += "; no libvirt: libvirt-python is not installed (pip install 'ksmtop[libvirt]')"
    return source


def open_headless_source(options: SourceOptions, perf: bool = True) -> Source:
    return open_source(options, headless=True, perf=perf)
