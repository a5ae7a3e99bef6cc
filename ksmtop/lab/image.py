"""`ksmtop lab build`: a small guest (kernel + initramfs) from the host distribution's own packages.

The initramfs holds busybox (with its applet links), /usr/sbin/qemu-ga with every library ldd lists (the loader
included) at the same absolute paths, the virtio modules, the workloads from guest_agents/, /init and
/sbin/shutdown. It is written as a newc cpio in Python and gzipped, so no cpio tool is needed.

Images live under the cache directory, one directory per hash of every input (kernel package and version, the
bytes of each copied file, the scripts, the image format). An unchanged host gets the cached image back in well
under a second; an upgraded qemu-ga, busybox, kernel package or workload gets a new one. The cache directory is
checked before use and pruned without following symlinks (``ksmtop.lab.paths``).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ksmtop.lab.cpio import CpioWriter
from ksmtop.lab.guest_init import SHUTDOWN_SCRIPT, init_script
from ksmtop.lab.kernel import GuestKernel, ensure_kernel
from ksmtop.lab.paths import (
    CACHE_MODE,
    GUEST_AGENTS_IN_IMAGE,
    LabError,
    cache_dir,
    cache_path,
    ensure_dir,
    guest_agents_dir,
    prune,
)

IMAGE_FORMAT = 1
"""Bump when the layout of the image changes, so cached images are rebuilt."""

_IMAGES_KEPT = 2


@dataclass(frozen=True, slots=True)
class LabImage:
    image_id: str
    directory: Path
    kernel: Path
    initramfs: Path
    kernel_package: str
    kernel_version: str
    kernel_release: str
    file_count: int
    built: bool
    """False when the image came from the cache unchanged."""
    seconds: float

    @property
    def size_bytes(self) -> int:
        return self.kernel.stat().st_size + self.initramfs.stat().st_size

    def describe(self) -> str:
        verb = "built" if self.built else "up to date"
        return (
            f"lab image {self.image_id} {verb} in {self.seconds:.1f} s: {self.directory}\n"
            f"  kernel     {self.kernel.name}  {_mib(self.kernel.stat().st_size)}  "
            f"({self.kernel_package} {self.kernel_version})\n"
            f"  initramfs  {self.initramfs.name}  {_mib(self.initramfs.stat().st_size)}  "
            f"({self.file_count} entries: busybox, qemu-ga and its libraries, virtio modules, workloads)\n"
            f"  total      {_mib(self.size_bytes)}"
        )


def build_image(
    cache: Path | None = None, *, force: bool = False, log: Callable[[str], None] = lambda _: None
) -> LabImage:
    """Build the lab image, or return the cached one when none of its inputs changed."""
    started = time.monotonic()
    cache = cache_path(cache or cache_dir())
    images = ensure_dir(cache / "images", CACHE_MODE)
    kernel = ensure_kernel(cache, log)
    files, links = _gather(kernel)
    image_id = _hash_inputs(kernel, files, links)
    directory = images / image_id
    manifest_path = directory / "image.json"
    if manifest_path.is_file() and not force:
        manifest = json.loads(manifest_path.read_text())
        return _image(directory, kernel, manifest["file_count"], built=False, started=started)

    log(f"writing initramfs for {kernel.release}")
    archive = _archive(files, links)
    staging = images / f".{image_id}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    shutil.copyfile(kernel.vmlinuz, staging / "vmlinuz")
    (staging / "initramfs.gz").write_bytes(gzip.compress(archive.getvalue(), compresslevel=9, mtime=0))
    file_count = len(files) + len(links)
    manifest = {
        "image_id": image_id,
        "format": IMAGE_FORMAT,
        "kernel_package": kernel.package,
        "kernel_version": kernel.version,
        "kernel_release": kernel.release,
        "file_count": file_count,
        "files": sorted(files),
    }
    (staging / "image.json").write_text(json.dumps(manifest, indent=1) + "\n")
    shutil.rmtree(directory, ignore_errors=True)
    staging.rename(directory)
    _prune(images, keep=directory)
    return _image(directory, kernel, file_count, built=True, started=started)


# -- gathering the guest's files ------------------------------------------------------------------------------

GuestFiles = dict[str, tuple[bytes, int]]
"""guest path -> (content, permission bits)."""


def _gather(kernel: GuestKernel) -> tuple[GuestFiles, dict[str, str]]:
    files: GuestFiles = {}
    links: dict[str, str] = {}
    busybox = _host_binary("busybox", ("/bin/busybox", "/usr/bin/busybox"), "busybox-static")
    qemu_ga = _host_binary("qemu-ga", ("/usr/sbin/qemu-ga", "/usr/bin/qemu-ga"), "qemu-guest-agent")
    files["/bin/busybox"] = (busybox.read_bytes(), 0o755)
    for applet in _busybox_applets(busybox):
        if applet != "/bin/busybox":
            links[applet] = "/bin/busybox"
    files["/usr/sbin/qemu-ga"] = (qemu_ga.read_bytes(), 0o755)
    for binary in (busybox, qemu_ga):
        for library in _shared_libraries(binary):
            files[library] = (Path(library).read_bytes(), 0o755)
    for module in kernel.modules:
        files[f"/lib/modules/{module.name}"] = (module.read_bytes(), 0o644)
    files["/init"] = (init_script([m.stem for m in kernel.modules]).encode(), 0o755)
    files["/sbin/shutdown"] = (SHUTDOWN_SCRIPT.encode(), 0o755)
    links.pop("/sbin/shutdown", None)
    agents = guest_agents_dir()
    scripts = sorted(agents.glob("*.sh")) if agents.is_dir() else []
    if not scripts:
        raise LabError(f"no workload scripts in {agents}")
    for script in scripts:
        files[f"{GUEST_AGENTS_IN_IMAGE}/{script.name}"] = (script.read_bytes(), 0o755)
    files["/etc/passwd"] = (b"root:x:0:0:root:/root:/bin/sh\n", 0o644)
    files["/etc/group"] = (b"root:x:0:\n", 0o644)
    links["/var/run"] = "/run"
    for path in files:
        links.pop(path, None)
    return files, links


def _host_binary(name: str, candidates: tuple[str, ...], package: str) -> Path:
    for candidate in (*candidates, shutil.which(name)):
        if candidate and Path(candidate).is_file():
            return Path(candidate).resolve()
    raise LabError(f"{name} not found: install the {package} package")


def _busybox_applets(busybox: Path) -> list[str]:
    output = _run([str(busybox), "--list-full"])
    return sorted("/" + line.strip().lstrip("/") for line in output.splitlines() if line.strip())


def _shared_libraries(binary: Path) -> list[str]:
    """Absolute paths of every library ldd lists for ``binary``, the dynamic loader included."""
    try:
        result = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, timeout=30, check=False)
    except (FileNotFoundError, subprocess.TimeoutExpired) as exc:
        raise LabError(f"ldd failed on {binary}: {exc}") from exc
    if result.returncode != 0:  # "not a dynamic executable": a static binary needs nothing
        return []
    libraries: list[str] = []
    for line in result.stdout.splitlines():
        line = line.strip()
        if "=> not found" in line:
            raise LabError(f"{binary} needs a library that is missing: {line.split()[0]}")
        path = line.split("=>", 1)[1] if "=>" in line else line
        path = path.split(" (", 1)[0].strip()
        if path.startswith("/"):
            libraries.append(path)
    return libraries


def _hash_inputs(kernel: GuestKernel, files: GuestFiles, links: dict[str, str]) -> str:
    digest = hashlib.sha256()
    digest.update(f"format {IMAGE_FORMAT}\nkernel {kernel.package} {kernel.version}\n".encode())
    digest.update(hashlib.sha256(kernel.vmlinuz.read_bytes()).digest())
    for path in sorted(files):
        data, mode = files[path]
        digest.update(f"file {path} {mode:o} ".encode() + hashlib.sha256(data).digest())
    for path in sorted(links):
        digest.update(f"link {path} {links[path]}\n".encode())
    return digest.hexdigest()[:16]


def _archive(files: GuestFiles, links: dict[str, str]) -> CpioWriter:
    archive = CpioWriter()
    directories = {"/dev", "/proc", "/sys", "/run", "/root", "/tmp", "/dev/shm", "/etc"}
    for path in (*files, *links):
        parent = Path(path).parent
        while str(parent) != "/":
            directories.add(str(parent))
            parent = parent.parent
    for directory in sorted(directories):
        archive.directory(directory, 0o1777 if directory == "/tmp" else 0o755)
    archive.char_device("/dev/console", 5, 1)
    archive.char_device("/dev/null", 1, 3, 0o666)
    for path in sorted(files):
        data, mode = files[path]
        archive.file(path, data, mode)
    for path in sorted(links):
        archive.symlink(path, links[path])
    return archive


# -- helpers --------------------------------------------------------------------------------------------------


def _image(directory: Path, kernel: GuestKernel, file_count: int, *, built: bool, started: float) -> LabImage:
    return LabImage(
        image_id=directory.name,
        directory=directory,
        kernel=directory / "vmlinuz",
        initramfs=directory / "initramfs.gz",
        kernel_package=kernel.package,
        kernel_version=kernel.version,
        kernel_release=kernel.release,
        file_count=file_count,
        built=built,
        seconds=time.monotonic() - started,
    )


def _prune(images: Path, keep: Path) -> None:
    """Keep the newest few images (running guests may still use an older one: qemu has read it already).
    Never follows a symlink (``ksmtop.lab.paths.prune``)."""
    prune(images, {keep.name}, newest=_IMAGES_KEPT - 1)


def _run(argv: list[str]) -> str:
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LabError(f"{argv[0]} failed: {exc}") from exc
    if result.returncode != 0:
        raise LabError(f"{' '.join(argv)} failed (exit {result.returncode})")
    return result.stdout


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB"


__all__ = ["LabImage", "build_image"]
