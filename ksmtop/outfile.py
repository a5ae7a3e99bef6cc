"""Files that ksmtop writes, often as root: recordings, exports, plots.

The rules, for every file ksmtop writes:
- only a regular file is ever replaced: a path that is a symlink, a FIFO, a device, a socket or a directory is
  refused with one line naming it (as root, ``-o /dev/null`` must not change /dev/null);
- an existing file is refused unless the caller says ``force`` (``--force`` on the command line);
- the file is new: created with O_EXCL and mode 0600 (names and command lines can be sensitive). Replacing an
  existing file means writing a new one under a temporary name in the same directory and renaming it over the
  old one, so ksmtop never opens, truncates or chmods a file it did not create.
- every step is relative to the directory opened once (openat/renameat), so a path swapped for a symlink halfway
  does not redirect the write.

No UI imports.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

FILE_MODE = 0o600
DIR_MODE = 0o700
_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class NotRegularFile(OSError):
    """The path exists and is not a regular file (a symlink, a FIFO, a device, a directory, a socket)."""

    def __init__(self, path: str | Path, kind: str) -> None:
        super().__init__(errno.EINVAL, f"is {kind}, not a regular file: ksmtop writes only regular files", str(path))


def kind_of(mode: int) -> str | None:
    """None for a regular file, else what it is, in words."""
    if stat.S_ISREG(mode):
        return None
    for test, kind in (
        (stat.S_ISLNK, "a symlink"),
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return kind
    return "not a regular file"


def _named(exc: OSError, path: str | Path) -> OSError:
    """The same error naming the whole path (calls relative to a directory name only the last part)."""
    return type(exc)(exc.errno, exc.strerror, str(path))


def check_target(path: str | Path, force: bool, dir_fd: int | None = None) -> bool:
    """True when ``path`` exists (a regular file, replaceable with ``force``); False when it does not.
    Raises NotRegularFile, or FileExistsError without ``force``."""
    name = os.path.basename(path) if dir_fd is not None else path
    try:
        info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise _named(exc, path) from None
    kind = kind_of(info.st_mode)
    if kind is not None:
        raise NotRegularFile(path, kind)
    if not force:
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(path))
    return True


@contextmanager
def _directory(path: Path, dir_fd: int | None = None) -> Iterator[int]:
    """The directory ``path`` is in, opened once (or ``dir_fd``, when the caller holds it open already)."""
    if dir_fd is not None:
        yield dir_fd
        return
    try:
        fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise _named(exc, path.parent) from None
    try:
        yield fd
    finally:
        os.close(fd)


def _temporary(dir_fd: int, name: str, path: Path) -> tuple[int, str]:
    for _ in range(100):
        temp = f".{name[:200]}.{secrets.token_hex(6)}.tmp"
        try:
            return os.open(temp, _NEW, FILE_MODE, dir_fd=dir_fd), temp
        except FileExistsError:
            continue
        except OSError as exc:
            raise _named(exc, path) from None
    raise FileExistsError(errno.EEXIST, "no free temporary name", str(path))


def create(path: str | Path, replace: bool = False) -> int:
    """A descriptor open for writing on a new, empty regular file at ``path`` (mode 0600).

    Without ``replace`` an existing path is refused (FileExistsError); with it, an existing regular file is
    replaced at once by the new one (a temporary file renamed over it), so the caller writes to its own file from
    the first byte on. Anything but a regular file is refused (NotRegularFile).
    """
    path = Path(path)
    with _directory(path) as dir_fd:
        name = path.name
        exists = check_target(path, replace, dir_fd)
        if not exists:
            try:
                return os.open(name, _NEW, FILE_MODE, dir_fd=dir_fd)
            except FileExistsError:
                check_target(path, False, dir_fd)  # appeared meanwhile: say what it is
                raise
            except OSError as exc:
                raise _named(exc, path) from None
        fd, temp = _temporary(dir_fd, name, path)
        try:
            check_target(path, True, dir_fd)
            os.rename(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException as exc:
            os.close(fd)
            try:
                os.unlink(temp, dir_fd=dir_fd)
            except OSError:
                pass
            if isinstance(exc, OSError) and not isinstance(exc, NotRegularFile):
                raise _named(exc, path) from None
            raise
        return fd


@contextmanager
def replacing(path: str | Path, force: bool, binary: bool = False, dir_fd: int | None = None) -> Iterator[IO[Any]]:
    """A handle to write a whole file (an export, a plot) that appears at ``path`` only when complete.

    The content goes to a new temporary file in the same directory (0600), which is renamed to ``path`` when the
    block ends without an exception; on an exception it is removed and ``path`` is left as it was. ``path`` is
    checked first: an existing file needs ``force``, anything but a regular file is refused. ``dir_fd``: the
    directory ``path`` is in, already open (open_directory()).
    """
    path = Path(path)
    with _directory(path, dir_fd) as dir_fd:
        check_target(path, force, dir_fd)
        fd, temp = _temporary(dir_fd, path.name, path)
        handle = os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", newline="", encoding="utf-8")
        try:
            with handle:
                yield handle
                handle.flush()
                os.fsync(handle.fileno())
            check_target(path, force, dir_fd)
            os.rename(temp, path.name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException as exc:
            try:
                os.unlink(temp, dir_fd=dir_fd)
            except OSError:
                pass
            if isinstance(exc, OSError) and not isinstance(exc, NotRegularFile | FileExistsError):
                raise _named(exc, path) from None
            raise


@contextmanager
def open_directory(path: str | Path) -> Iterator[int]:
    """An output directory, opened (O_NOFOLLOW): created (0700, with its parents) when missing; refused when it
    is a symlink or not a directory. Write into it with replacing(..., dir_fd=fd)."""
    path = Path(path)
    try:
        os.makedirs(path, mode=DIR_MODE)
    except FileExistsError:
        pass
    except OSError as exc:
        raise _named(exc, path) from None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        try:
            kind = kind_of(os.lstat(path).st_mode) or "a regular file"
        except OSError:
            raise _named(exc, path) from None
        raise NotADirectoryError(errno.ENOTDIR, f"is {kind}, not a directory", str(path)) from None
    try:
        yield fd
    finally:
        os.close(fd)
