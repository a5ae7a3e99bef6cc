"""Where the lab keeps its files: the built image (cache) and running guests' sockets and state (runtime).

ksmtop runs as root on shared hosts, so neither place may be one that another user controls:
- the cache is /var/cache/ksmtop/lab for root (never a path taken from HOME or XDG_CACHE_HOME, which sudo may
  carry over from a user), else $XDG_CACHE_HOME/ksmtop/lab or ~/.cache/ksmtop/lab;
- the runtime directory is /run/ksmtop/lab for root, else $XDG_RUNTIME_DIR/ksmtop/lab, else /tmp/ksmtop-UID/lab;
- every directory ksmtop creates there is made by mkdir (never through a symlink) and checked with lstat before
  use: a real directory, owned by us, not writable by others (runtime ones: no group or other bits at all). One
  that someone else made first is refused with one line saying which and why, never used or "fixed";
- pruning old images and kernels never follows a symlink (``prune``).
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

SYSTEM_CACHE = Path("/var/cache/ksmtop/lab")
SYSTEM_RUNTIME = Path("/run/ksmtop/lab")
CACHE_MODE = 0o755
"""Cache directories: readable by others (libvirt's qemu user copies the image), writable by us alone."""
RUNTIME_MODE = 0o700
"""Runtime directories: sockets that control guests; nobody else may even look."""


class LabError(Exception):
    """A lab operation failed; the message is one line meant for the user."""


def cache_dir() -> Path:
    """/var/cache/ksmtop/lab for root, else $XDG_CACHE_HOME/ksmtop/lab, else ~/.cache/ksmtop/lab."""
    if os.geteuid() == 0:
        return SYSTEM_CACHE
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ksmtop" / "lab"


def runtime_dir() -> Path:
    """/run/ksmtop/lab for root, else $XDG_RUNTIME_DIR/ksmtop/lab, else /tmp/ksmtop-UID/lab."""
    if os.geteuid() == 0 and Path("/run").is_dir():
        return SYSTEM_RUNTIME
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg:
        return Path(xdg) / "ksmtop" / "lab"
    return Path(f"/tmp/ksmtop-{os.getuid()}") / "lab"


def ours_from(path: Path) -> int:
    """How many trailing components of a default cache or runtime path ksmtop creates (checked on use): the
    'ksmtop' (or 'ksmtop-UID') directory and 'lab'. A path given by the user: only its last component."""
    defaults = {cache_dir(), runtime_dir(), SYSTEM_CACHE, SYSTEM_RUNTIME}
    return 2 if path in defaults else 1


def ensure_dir(path: Path, mode: int, levels: int = 1) -> Path:
    """Create ``path`` (its last ``levels`` components with mkdir, never through a symlink) and check each of
    those before use: a real directory (lstat), owned by us, that nobody else can write to. One that fails is
    refused with a LabError in one line and not touched; one of ours that others may only read (made by an older
    ksmtop under umask 022) is narrowed to ``mode``."""
    parts = [path, *list(path.parents)[: levels - 1]][::-1]
    parts[0].parent.mkdir(parents=True, exist_ok=True)  # above ksmtop's own: /run, /var/cache, ~/.cache, /tmp
    for part in parts:
        try:
            os.mkdir(part, mode)
        except FileExistsError:
            pass
        except OSError as exc:
            raise LabError(f"cannot create {part}: {exc.strerror or exc}") from None
        check_dir(part, forbidden=0o022)
        try:
            fd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as exc:
            raise LabError(f"cannot use {part}: {exc.strerror or exc}") from None
        try:
            if stat.S_IMODE(os.fstat(fd).st_mode) != mode:
                os.fchmod(fd, mode)  # exactly the mode, whatever the umask was
        finally:
            os.close(fd)
    return path


def check_dir(path: Path, forbidden: int) -> None:
    """LabError unless ``path`` is a real directory (lstat: not a symlink), owned by us, no ``forbidden`` bits."""
    try:
        info = os.lstat(path)
    except OSError as exc:
        raise LabError(f"cannot use {path}: {exc.strerror or exc}") from None
    if stat.S_ISLNK(info.st_mode):
        raise LabError(f"refusing {path}: it is a symlink (someone else may have planted it; remove it)")
    if not stat.S_ISDIR(info.st_mode):
        raise LabError(f"refusing {path}: not a directory")
    if info.st_uid != os.geteuid():
        raise LabError(f"refusing {path}: owned by uid {info.st_uid}, not by us (uid {os.geteuid()}); remove it")
    if info.st_mode & forbidden:
        raise LabError(f"refusing {path}: mode {stat.S_IMODE(info.st_mode):04o} lets others write in it (remove it)")


def cache_path(path: Path) -> Path:
    """The cache directory, created and checked (see ``ensure_dir``)."""
    return ensure_dir(path, CACHE_MODE, ours_from(path))


def runtime_path(path: Path) -> Path:
    """The runtime directory, created 0700 and checked (see ``ensure_dir``)."""
    return ensure_dir(path, RUNTIME_MODE, ours_from(path))


def prune(directory: Path, keep: set[str], *, newest: int = 0) -> list[str]:
    """Remove the entries of ``directory`` not named in ``keep`` (and not hidden), sparing the ``newest`` most
    recent others; returns the names removed. Never follows a symlink: ``directory`` is opened with O_NOFOLLOW
    and checked as ours, entries are looked at with lstat through its descriptor, a symlink entry is unlinked
    itself, and directories are removed by shutil.rmtree with dir_fd (which never descends into a symlink)."""
    check_dir(directory, forbidden=0o022)
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    removed: list[str] = []
    try:
        entries = []
        for name in os.listdir(fd):
            if name in keep or name.startswith("."):
                continue
            info = os.lstat(name, dir_fd=fd)
            entries.append((info.st_mtime, name, info))
        entries.sort(reverse=True)
        for _mtime, name, info in entries[newest:]:
            if stat.S_ISDIR(info.st_mode):
                shutil.rmtree(name, dir_fd=fd, ignore_errors=True)
            else:
                try:
                    os.unlink(name, dir_fd=fd)
                except OSError:
                    continue
            removed.append(name)
    finally:
        os.close(fd)
    return removed


def guest_agents_dir() -> Path:
    """The workload scripts (guest_agents/ at the top of the source tree)."""
    return Path(__file__).resolve().parents[2] / "guest_agents"


def boot_id() -> str:
    """An id that changes on every host boot (for caches that are only valid until the next boot)."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown"


GUEST_AGENTS_IN_IMAGE = "/usr/local/share/ksmtop/agents"
"""Where the lab image holds the workload scripts inside the guest."""
