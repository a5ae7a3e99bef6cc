"""The lab guest's kernel: the host distribution's own kernel package, fetched and unpacked without installing it.

`apt-get download` fetches Debian's linux-image .deb into the cache and `dpkg-deb -x` unpacks it into a temporary
directory, so the host's kernel and /boot are never touched. Only vmlinuz and the virtio modules the guest needs
(with their dependencies, read from each module's .modinfo) are kept.
"""

from __future__ import annotations

import gzip
import json
import lzma
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ksmtop.lab.paths import CACHE_MODE, LabError, ensure_dir, prune

GUEST_MODULES = ("virtio_pci", "virtio_console")
"""Modules the guest needs for the agent's virtio-serial port; their dependencies are added in load order."""

_MODULE_SUFFIXES = (".ko", ".ko.xz", ".ko.gz")
_DEPENDS = re.compile(rb"\0depends=([^\0]*)\0")


@dataclass(frozen=True, slots=True)
class GuestKernel:
    package: str
    version: str
    release: str
    vmlinuz: Path
    modules: tuple[Path, ...]
    """Decompressed .ko files in the order they must be loaded."""


def ensure_kernel(cache: Path, log: Callable[[str], None] = lambda _: None) -> GuestKernel:
    """The guest kernel for the host's current kernel package, fetched into ``cache`` (a checked cache
    directory: ``ksmtop.lab.paths.cache_path``) when missing."""
    kernels = ensure_dir(cache / "kernels", CACHE_MODE)
    try:
        package, version = _candidate_package()
    except LabError:
        cached = _newest_cached(kernels)
        if cached is None:
            raise
        log(f"apt has no kernel package: using the cached {cached.package} {cached.version}")
        return cached
    target = kernels / f"{package}_{version}"
    if (target / "kernel.json").is_file():
        return _load(target)
    log(f"fetching {package} {version} with apt-get download")
    try:
        return _fetch(kernels, target, package, version)
    except LabError as exc:
        cached = _newest_cached(kernels)
        if cached is None:
            raise LabError(f"{exc} (stale package lists? run apt-get update)") from exc
        log(f"could not fetch {package} {version} ({exc}): using the cached {cached.package} {cached.version}")
        return cached


def _fetch(kernels: Path, target: Path, package: str, version: str) -> GuestKernel:
    with tempfile.TemporaryDirectory(dir=kernels, prefix=".fetch-") as tmp:
        work = Path(tmp)
        _run(["apt-get", "download", f"{package}={version}"], cwd=work, timeout=900)
        debs = sorted(work.glob("*.deb"))
        if not debs:
            raise LabError(f"apt-get download {package} produced no .deb")
        unpacked = work / "root"
        _run(["dpkg-deb", "-x", str(debs[0]), str(unpacked)], timeout=600)
        staged = work / "kernel"
        _stage(unpacked, staged, package, version)
        shutil.rmtree(target, ignore_errors=True)
        staged.rename(target)
    prune(kernels, {target.name})  # keep one kernel: the current one (never through a symlink)
    return _load(target)


def _candidate_package() -> tuple[str, str]:
    arch = _run(["dpkg", "--print-architecture"]).strip()
    meta = f"linux-image-{arch}"
    depends = _run(["apt-cache", "depends", meta])
    package = next(
        (
            line.split(":", 1)[1].strip()
            for line in depends.splitlines()
            if line.strip().lstrip("|").startswith("Depends:") and "linux-image-" in line
        ),
        None,
    )
    if not package or not re.fullmatch(r"[a-z0-9][a-z0-9.+-]*", package):
        raise LabError(f"apt knows no kernel package behind {meta}: run apt-get update")
    show = _run(["apt-cache", "show", "--no-all-versions", package])
    version = next((line.split(":", 1)[1].strip() for line in show.splitlines() if line.startswith("Version:")), "")
    if not re.fullmatch(r"[A-Za-z0-9.+~:-]+", version):
        raise LabError(f"apt shows no version for {package}: run apt-get update")
    return package, version


def _stage(unpacked: Path, staged: Path, package: str, version: str) -> None:
    vmlinuz = sorted((unpacked / "boot").glob("vmlinuz-*"))
    if not vmlinuz:
        raise LabError(f"{package} holds no /boot/vmlinuz-*")
    release = vmlinuz[0].name.removeprefix("vmlinuz-")
    module_root = next(
        (p for p in (unpacked / "lib/modules" / release, unpacked / "usr/lib/modules" / release) if p.is_dir()),
        None,
    )
    if module_root is None:
        raise LabError(f"{package} holds no modules for {release}")
    index = _module_index(module_root)
    builtin = _builtin_modules(module_root)
    order = _load_order(GUEST_MODULES, index, builtin)
    (staged / "modules").mkdir(parents=True)
    shutil.copyfile(vmlinuz[0], staged / "vmlinuz")
    for name in order:
        (staged / "modules" / f"{name}.ko").write_bytes(_read_module(index[name]))
    manifest = {"package": package, "version": version, "release": release, "modules": order}
    (staged / "kernel.json").write_text(json.dumps(manifest, indent=1) + "\n")


def _module_index(module_root: Path) -> dict[str, Path]:
    index: dict[str, Path] = {}
    for path in module_root.rglob("*.ko*"):
        for suffix in _MODULE_SUFFIXES:
            if path.name.endswith(suffix):
                index[path.name.removesuffix(suffix).replace("-", "_")] = path
    return index


def _builtin_modules(module_root: Path) -> set[str]:
    try:
        lines = (module_root / "modules.builtin").read_text().splitlines()
    except OSError:
        return set()
    return {Path(line).name.split(".ko")[0].replace("-", "_") for line in lines if line}


def _load_order(wanted: tuple[str, ...], index: dict[str, Path], builtin: set[str]) -> list[str]:
    order: list[str] = []

    def visit(name: str, chain: tuple[str, ...]) -> None:
        if name in order or name in builtin:
            return
        if name in chain:
            raise LabError(f"module dependency loop through {name}")
        if name not in index:
            raise LabError(f"the kernel package has no module {name}")
        for dependency in _depends(_read_module(index[name])):
            visit(dependency, (*chain, name))
        order.append(name)

    for name in wanted:
        visit(name, ())
    return order


def _depends(module: bytes) -> list[str]:
    match = _DEPENDS.search(module)
    if not match:
        return []
    return [name.replace("-", "_") for name in match.group(1).decode().split(",") if name]


def _read_module(path: Path) -> bytes:
    data = path.read_bytes()
    if path.name.endswith(".xz"):
        return lzma.decompress(data)
    if path.name.endswith(".gz"):
        return gzip.decompress(data)
    return data


def _load(directory: Path) -> GuestKernel:
    manifest = json.loads((directory / "kernel.json").read_text())
    return GuestKernel(
        package=manifest["package"],
        version=manifest["version"],
        release=manifest["release"],
        vmlinuz=directory / "vmlinuz",
        modules=tuple(directory / "modules" / f"{name}.ko" for name in manifest["modules"]),
    )


def _newest_cached(kernels: Path) -> GuestKernel | None:
    if not kernels.is_dir():
        return None
    found = sorted((p for p in kernels.glob("*/kernel.json")), key=lambda p: p.stat().st_mtime)
    return _load(found[-1].parent) if found else None


def _run(argv: list[str], cwd: Path | None = None, timeout: float = 60) -> str:
    try:
        result = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError as exc:
        raise LabError(f"{argv[0]} not found: the lab needs Debian's apt and dpkg") from exc
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"{argv[0]} took longer than {timeout:g} s") from exc
    if result.returncode != 0:
        detail = " ".join((result.stderr or result.stdout).split())[-300:]
        raise LabError(f"{' '.join(argv[:2])} failed (exit {result.returncode}): {detail}")
    return result.stdout
