"""A newc ("070701") cpio archive writer, enough for a Linux initramfs: directories, files, symlinks, devices."""

from __future__ import annotations

import stat


class CpioWriter:
    """Collects entries in memory; ``getvalue()`` returns the archive with its trailer."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._inode = 1
        self._names: set[str] = set()

    def __contains__(self, name: str) -> bool:
        return name.strip("/") in self._names

    def directory(self, name: str, mode: int = 0o755) -> None:
        self._entry(name, stat.S_IFDIR | mode, b"", nlink=2)

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        self._entry(name, stat.S_IFREG | mode, data)

    def symlink(self, name: str, target: str) -> None:
        self._entry(name, stat.S_IFLNK | 0o777, target.encode())

    def char_device(self, name: str, major: int, minor: int, mode: int = 0o600) -> None:
        self._entry(name, stat.S_IFCHR | mode, b"", rdev=(major, minor))

    def getvalue(self) -> bytes:
        trailer = _header("TRAILER!!!", 0, 0, 0, 1, (0, 0))
        return b"".join([*self._chunks, trailer])

    def _entry(self, name: str, mode: int, data: bytes, nlink: int = 1, rdev: tuple[int, int] = (0, 0)) -> None:
        name = name.strip("/")
        if not name or name in self._names:
            raise ValueError(f"cpio: empty or duplicate entry {name!r}")
        self._names.add(name)
        self._chunks.append(_header(name, self._inode, mode, len(data), nlink, rdev))
        self._chunks.append(data + b"\0" * (-len(data) % 4))
        self._inode += 1


def _header(name: str, inode: int, mode: int, size: int, nlink: int, rdev: tuple[int, int]) -> bytes:
    encoded = name.encode() + b"\0"
    fields = (inode, mode, 0, 0, nlink, 0, size, 0, 0, rdev[0], rdev[1], len(encoded), 0)
    header = b"070701" + b"".join(b"%08X" % value for value in fields) + encoded
    return header + b"\0" * (-len(header) % 4)


def list_entries(archive: bytes) -> dict[str, int]:
    """Entry name -> mode of a newc archive (to check what an initramfs holds)."""
    entries: dict[str, int] = {}
    offset = 0
    while True:
        header = archive[offset : offset + 110]
        if header[:6] != b"070701":
            raise ValueError(f"not a newc cpio header at offset {offset}")
        mode, size, name_size = int(header[14:22], 16), int(header[54:62], 16), int(header[94:102], 16)
        name = archive[offset + 110 : offset + 110 + name_size - 1].decode()
        if name == "TRAILER!!!":
            return entries
        entries[name] = mode
        offset += 110 + name_size
        offset += -offset % 4
        offset += size + (-size % 4)
