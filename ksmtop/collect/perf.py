"""perf_event_open through cffi (ABI mode): the binding, and whether perf and tracefs can be used here.

The only cdef for perf lives in this module: ``struct perf_event_attr`` (PERF_ATTR_SIZE_VER8, 136 bytes), the
head of the mmap'd ring buffer page, and the libc calls ``syscall``, ``ioctl`` and ``mount``. The attr's bit
fields are one ``uint64_t flags`` word set through ``FLAG_*`` bit numbers (the kernel's order), so no C compiler
is needed and the layout is the one in include/uapi/linux/perf_event.h.

Every file descriptor lives in a ``PerfEvent`` (a context manager) and is closed deterministically. Open
failures raise ``PerfError`` (an OSError with a message in words) inside the collectors; the collectors turn it
into a ``PerfStatus`` and never raise to their callers.

No UI imports. Functions that look at files take ``root`` (default "/").
"""

from __future__ import annotations

import errno
import mmap
import os
import platform
import resource
import struct
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cffi import FFI

CDEF = """
struct perf_event_attr {
    uint32_t type;
    uint32_t size;
    uint64_t config;
    union { uint64_t sample_period; uint64_t sample_freq; };
    uint64_t sample_type;
    uint64_t read_format;
    uint64_t flags;                 /* the kernel's bit fields: disabled, inherit, ... (FLAG_* below) */
    union { uint32_t wakeup_events; uint32_t wakeup_watermark; };
    uint32_t bp_type;
    union { uint64_t bp_addr; uint64_t kprobe_func; uint64_t uprobe_path; uint64_t config1; };
    union { uint64_t bp_len; uint64_t kprobe_addr; uint64_t probe_offset; uint64_t config2; };
    uint64_t branch_sample_type;
    uint64_t sample_regs_user;
    uint32_t sample_stack_user;
    int32_t clockid;
    uint64_t sample_regs_intr;
    uint32_t aux_watermark;
    uint16_t sample_max_stack;
    uint16_t reserved_2;
    uint32_t aux_sample_size;
    uint32_t reserved_3;
    uint64_t sig_data;
    uint64_t config3;
};
struct perf_ring_head {             /* struct perf_event_mmap_page from data_head on (offset 1024) */
    uint8_t before_data[1024];
    uint64_t data_head;
    uint64_t data_tail;
    uint64_t data_offset;
    uint64_t data_size;
};
long syscall(long number, ...);
int ioctl(int fd, unsigned long request, ...);
int mount(const char *source, const char *target, const char *fstype, unsigned long flags, const void *data);
"""

ffi = FFI()
ffi.cdef(CDEF)
_libc: Any = None


def _lib() -> Any:
    global _libc
    if _libc is None:
        _libc = ffi.dlopen(None)
    return _libc


ATTR_SIZE = 136  # PERF_ATTR_SIZE_VER8

PERF_TYPE_SOFTWARE = 1
PERF_TYPE_TRACEPOINT = 2
PERF_COUNT_SW_CPU_CLOCK = 0
PERF_COUNT_SW_PAGE_FAULTS_MIN = 5
PERF_COUNT_SW_PAGE_FAULTS_MAJ = 6

PERF_SAMPLE_TIME = 1 << 2
PERF_SAMPLE_RAW = 1 << 10
PERF_FORMAT_GROUP = 1 << 3
PERF_FLAG_FD_CLOEXEC = 1 << 3

PERF_RECORD_LOST = 2
PERF_RECORD_SAMPLE = 9

# Bit numbers in perf_event_attr's flags word (include/uapi/linux/perf_event.h order).
FLAG_DISABLED = 0
FLAG_INHERIT = 1
FLAG_EXCLUDE_KERNEL = 5
FLAG_EXCLUDE_HV = 6
FLAG_USE_CLOCKID = 25

CLOCK_MONOTONIC = 1
MS_NOSUID, MS_NODEV, MS_NOEXEC = 2, 4, 8

# __NR_perf_event_open per architecture (arch/*/entry/syscalls, include/uapi/asm-generic/unistd.h).
SYSCALL_NUMBERS = {
    "x86_64": 298,
    "i386": 336,
    "i686": 336,
    "aarch64": 241,
    "riscv64": 241,
    "loongarch64": 241,
    "armv7l": 364,
    "ppc64le": 319,
    "ppc64": 319,
    "s390x": 331,
}


def _ioc(direction: int, number: int, size: int) -> int:
    """_IOC('$', number) with this architecture's encoding (powerpc and mips use 3 direction bits)."""
    machine = platform.machine()
    if machine.startswith(("ppc", "mips")):
        none, write, dir_shift = 1, 4, 29
    else:
        none, write, dir_shift = 0, 1, 30
    code = {0: none, 1: write}[direction]
    return (code << dir_shift) | (size << 16) | (ord("$") << 8) | number


PERF_EVENT_IOC_ENABLE = _ioc(0, 0, 0)
PERF_EVENT_IOC_DISABLE = _ioc(0, 1, 0)
PERF_EVENT_IOC_RESET = _ioc(0, 3, 0)
PERF_EVENT_IOC_SET_OUTPUT = _ioc(0, 5, 0)
PERF_EVENT_IOC_SET_FILTER = _ioc(1, 6, ffi.sizeof("char *"))


def flag(bit: int) -> int:
    """The flags-word value of one bit field (GCC allocates bit fields from the low end on little-endian)."""
    return 1 << bit if sys.byteorder == "little" else 1 << (63 - bit)


class PerfError(OSError):
    """perf_event_open or an ioctl failed; str() says why in words."""


def paranoid_level(root: str | Path = "/") -> int | None:
    try:
        return int((Path(root) / "proc/sys/kernel/perf_event_paranoid").read_text())
    except (OSError, ValueError):
        return None


def explain_open_error(err: int, what: str, root: str | Path = "/") -> str:
    """Why perf_event_open failed, in words."""
    level = paranoid_level(root)
    if err in (errno.EACCES, errno.EPERM):
        if os.geteuid() != 0:
            return (
                f"{what}: not allowed (perf_event_paranoid is {level}); system-wide and tracepoint events need root "
                "or CAP_PERFMON, and another user's process needs CAP_PERFMON or ptrace rights"
            )
        return f"{what}: not allowed even as root (a security module or seccomp filter refuses perf_event_open)"
    if err == errno.ENOSYS:
        return f"{what}: this kernel has no perf events (CONFIG_PERF_EVENTS off)"
    if err == errno.ENOENT:
        return f"{what}: the kernel does not know this event"
    if err == errno.ESRCH:
        return f"{what}: the process is gone"
    if err == errno.EMFILE:
        return f"{what}: too many open files (RLIMIT_NOFILE)"
    if err == errno.EINVAL:
        return f"{what}: the kernel rejected the event settings (EINVAL)"
    return f"{what}: {os.strerror(err)}"


def _new_attr(type_: int, config: int) -> Any:
    attr = ffi.new("struct perf_event_attr *")
    attr.type = type_
    attr.size = ATTR_SIZE
    attr.config = config
    return attr


class PerfEvent:
    """One perf event file descriptor; closed by close() or on leaving a ``with`` block."""

    def __init__(self, fd: int, description: str) -> None:
        self.fd = fd
        self.description = description

    def __enter__(self) -> PerfEvent:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # a safety net only; owners close explicitly
        self.close()

    @property
    def closed(self) -> bool:
        return self.fd < 0

    def close(self) -> None:
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            try:
                os.close(fd)
            except OSError:
                pass

    def _ioctl(self, request: int, argument: Any = None) -> None:
        arg = ffi.cast("unsigned long", 0) if argument is None else argument
        if _lib().ioctl(ffi.cast("int", self.fd), ffi.cast("unsigned long", request), arg) != 0:
            err = ffi.errno
            raise PerfError(err, f"ioctl on {self.description}: {os.strerror(err)}")

    def enable(self) -> None:
        self._ioctl(PERF_EVENT_IOC_ENABLE)

    def disable(self) -> None:
        self._ioctl(PERF_EVENT_IOC_DISABLE)

    def reset(self) -> None:
        self._ioctl(PERF_EVENT_IOC_RESET)

    def set_filter(self, expression: str) -> None:
        """A tracepoint filter (ftrace syntax, e.g. "err == 0")."""
        self._ioctl(PERF_EVENT_IOC_SET_FILTER, ffi.new("char[]", expression.encode()))

    def set_output(self, target: PerfEvent) -> None:
        """Send this event's samples to ``target``'s ring buffer (same CPU or same task)."""
        self._ioctl(PERF_EVENT_IOC_SET_OUTPUT, ffi.cast("unsigned long", target.fd))

    def read_count(self) -> int:
        """The counter's value (read_format 0)."""
        return struct.unpack("<Q" if sys.byteorder == "little" else ">Q", os.read(self.fd, 8))[0]

    def read_group(self, members: int) -> tuple[int, ...]:
        """The values of a group leader and its members (read_format PERF_FORMAT_GROUP)."""
        data = os.read(self.fd, 8 * (members + 1))
        values = struct.unpack(f"={members + 1}Q", data)
        return values[1:]


def open_event(
    type_: int,
    config: int,
    *,
    pid: int = -1,
    cpu: int = -1,
    group: PerfEvent | None = None,
    sample_type: int = 0,
    sample_period: int = 0,
    read_format: int = 0,
    exclude_kernel: bool = False,
    monotonic_time: bool = False,
    description: str = "",
) -> PerfEvent:
    """perf_event_open(2), enabled at once (counting starts now); raises PerfError with the reason in words."""
    attr = _new_attr(type_, config)
    attr.sample_type = sample_type
    attr.sample_period = sample_period
    attr.read_format = read_format
    attr.wakeup_events = 1 if sample_period else 0
    flags = flag(FLAG_EXCLUDE_HV)
    if exclude_kernel:
        flags |= flag(FLAG_EXCLUDE_KERNEL)
    if monotonic_time:
        flags |= flag(FLAG_USE_CLOCKID)
        attr.clockid = CLOCK_MONOTONIC
    attr.flags = flags
    number = SYSCALL_NUMBERS.get(platform.machine())
    what = description or f"perf event type {type_} config {config}"
    if number is None:
        raise PerfError(errno.ENOSYS, f"{what}: perf_event_open's number on {platform.machine()} is not known")
    fd = _lib().syscall(
        ffi.cast("long", number),
        attr,
        ffi.cast("int", pid),
        ffi.cast("int", cpu),
        ffi.cast("int", group.fd if group is not None else -1),
        ffi.cast("unsigned long", PERF_FLAG_FD_CLOEXEC),
    )
    if fd < 0:
        err = ffi.errno
        raise PerfError(err, explain_open_error(err, what))
    return PerfEvent(int(fd), what)


class RingBuffer:
    """The mmap'd sample buffer of one event: 1 header page + ``data_pages`` (a power of two) data pages.

    ``records()`` yields (type, body) of every record written since the last call and frees their space.
    Reading the head, then the data, then writing the tail is ordered on x86 (TSO); perf's rule on weaker
    architectures (a read barrier after data_head) is met by the interpreter's own locking between the reads.
    """

    def __init__(self, event: PerfEvent, data_pages: int = 4) -> None:
        if data_pages & (data_pages - 1):
            raise ValueError("data_pages must be a power of two")
        page = mmap.PAGESIZE
        self.event = event
        self._map = mmap.mmap(event.fd, (1 + data_pages) * page, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        self._head = ffi.from_buffer("struct perf_ring_head *", self._map)
        self._offset = int(self._head.data_offset) or page
        self._size = int(self._head.data_size) or data_pages * page

    def __enter__(self) -> RingBuffer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._map is not None:
            self._head = None
            self._map.close()
            self._map = None  # type: ignore[assignment]

    def records(self) -> Iterator[tuple[int, bytes]]:
        head = int(self._head.data_head)
        tail = int(self._head.data_tail)
        size, offset = self._size, self._offset
        while tail < head:
            start = offset + tail % size
            header = self._read(start, 8, offset, size)
            kind, _misc, length = struct.unpack("=IHH", header)
            if length < 8:
                break
            body = self._read(offset + (tail + 8) % size, length - 8, offset, size)
            tail += length
            yield kind, body
        self._head.data_tail = tail

    def _read(self, start: int, length: int, offset: int, size: int) -> bytes:
        end = start + length
        if end <= offset + size:
            return self._map[start:end]
        first = self._map[start : offset + size]
        return first + self._map[offset : offset + length - len(first)]


def raise_nofile(needed: int) -> int:
    """Raise the soft RLIMIT_NOFILE towards the hard limit so ``needed`` more descriptors fit; returns the limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        in_use = len(os.listdir("/proc/self/fd"))
    except OSError:
        in_use = 64
    want = in_use + needed + 64
    if soft != resource.RLIM_INFINITY and want > soft:
        new = want if hard == resource.RLIM_INFINITY else min(want, hard)
        if new > soft:
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
                soft = new
            except (ValueError, OSError):
                pass
    return soft


def online_cpus(root: str | Path = "/") -> list[int]:
    """CPU numbers from /sys/devices/system/cpu/online ("0-3,5"); falls back to 0..cpu_count-1."""
    try:
        text = (Path(root) / "sys/devices/system/cpu/online").read_text().strip()
        cpus: list[int] = []
        for part in text.split(","):
            low, _, high = part.partition("-")
            cpus.extend(range(int(low), int(high or low) + 1))
        if cpus:
            return cpus
    except (OSError, ValueError):
        pass
    return list(range(os.cpu_count() or 1))


@dataclass(frozen=True, slots=True)
class PerfStatus:
    """Whether a perf-based collector works here, and if not, why in words (for the panel)."""

    available: bool
    reason: str
    notes: tuple[str, ...] = ()
    """Things worth saying even when it works (e.g. "mounted tracefs at /sys/kernel/tracing")."""


TRACEFS_CANDIDATES = ("sys/kernel/tracing", "sys/kernel/debug/tracing")


@dataclass(frozen=True, slots=True)
class Tracefs:
    path: Path | None
    reason: str
    mounted_now: bool = False


def find_tracefs(root: str | Path = "/", *, mount: bool = True) -> Tracefs:
    """The tracefs directory that holds events/; mounts tracefs at /sys/kernel/tracing when allowed and asked."""
    base = Path(root)
    for candidate in TRACEFS_CANDIDATES:
        try:
            if (base / candidate / "events").is_dir():
                return Tracefs(base / candidate, f"tracefs at /{candidate}")
        except PermissionError:
            return Tracefs(None, f"tracefs at /{candidate} is readable by root only")
    target = base / TRACEFS_CANDIDATES[0]
    if not target.is_dir():
        return Tracefs(None, "tracefs is not available: /sys/kernel/tracing does not exist (kernel without tracing)")
    try:
        os.listdir(target)
    except PermissionError:
        return Tracefs(None, f"tracefs at {target} is readable by root only")
    except OSError as exc:
        return Tracefs(None, f"cannot look into {target}: {exc.strerror}")
    if not mount:
        return Tracefs(None, "tracefs is not mounted at /sys/kernel/tracing")
    if os.geteuid() != 0:
        return Tracefs(None, "tracefs is not mounted at /sys/kernel/tracing, and mounting it needs root")
    flags = MS_NOSUID | MS_NODEV | MS_NOEXEC
    if _lib().mount(b"nodev", str(target).encode(), b"tracefs", flags, ffi.NULL) != 0:
        err = ffi.errno
        return Tracefs(None, f"tracefs is not mounted, and mounting it at {target} failed: {os.strerror(err)}")
    if (target / "events").is_dir():
        return Tracefs(target, f"mounted tracefs at {target}", mounted_now=True)
    return Tracefs(None, f"mounted tracefs at {target}, but it has no events directory")
