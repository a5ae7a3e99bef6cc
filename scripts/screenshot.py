"""Save an SVG screenshot of the real app on this machine into screenshots/.

    .venv/bin/python scripts/screenshot.py [--seconds 20] [--all] [--connect qemu:///system] [-o screenshots/ksmtop.svg]

Run it while guests (e.g. `ksmtop lab up 3`, or `ksmtop lab up 4 --libvirt` with one domain shut off) are
merging, so the picture shows real figures.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from ksmtop.collect.libvirt import LibvirtConnection
from ksmtop.live import LiveSource
from ksmtop.tui.app import KsmTopApp


async def shoot(seconds: float, scope: str, output: Path, size: tuple[int, int], uri: str | None) -> None:
    source = LiveSource(scope=scope, libvirt=LibvirtConnection(uri) if uri else None, controls=True)  # type: ignore[arg-type]
    app = KsmTopApp(source, interval=1.0)
    async with app.run_test(size=size) as pilot:
        await pilot.pause(seconds)
        app.save_screenshot(filename=output.name, path=str(output.parent))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=20.0, help="how long to sample before the picture")
    parser.add_argument("--all", action="store_true", help="every process using KSM, not only qemu guests")
    parser.add_argument("-o", "--output", type=Path, default=Path("screenshots/ksmtop.svg"))
    parser.add_argument("--width", type=int, default=170)
    parser.add_argument("--height", type=int, default=46)
    parser.add_argument("--connect", metavar="URI", default=None, help="a local libvirt URI (e.g. qemu:///system)")
    args = parser.parse_args()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    asyncio.run(
        shoot(args.seconds, "ksm" if args.all else "qemu", args.output, (args.width, args.height), args.connect)
    )
    print(f"saved {args.output}")


if __name__ == "__main__":
    main()
