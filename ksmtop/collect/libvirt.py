"""libvirt: domains by name, their qemu PIDs, start/stop, the guest agent and KSM through the node API.

libvirt-python is optional and imported lazily; without it (or without libvirtd) ksmtop works from /proc alone
and says which mode it is in. Every call may block (remote URIs go over the network): call from workers.
Errors come back as LibvirtError with one line in words; libvirt's own printing to stderr is switched off, so
it cannot corrupt the screen. A lost connection is noticed and re-opened on the next call (with a back-off).

Domain names, libvirt's error texts and status texts come from other people (anyone who may define a domain):
what this module hands out (DomainSample.name, LibvirtError, ``status``) is made safe here (``ksmtop.safetext``).
Calls still reach the real domain: a DomainSample is looked up by its UUID, never by its (escaped) name.

No UI imports.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from pathlib import Path
from typing import Any

from ksmtop.collect.procfs import is_qemu_comm, iter_pids, read_cmdline
from ksmtop.model import DomainSample
from ksmtop.safetext import one_line, safe_name

DEFAULT_URI = "qemu:///system"
RECONNECT_EVERY_S = 2.0
AGENT_TIMEOUT_S = 3
PID_DIR = "run/libvirt/qemu"
BASE_PAGE_KIB = (4, 8, 16, 64)  # base page sizes of the architectures qemu/KVM hosts run on

STATE_NAMES = {
    0: "no state",
    1: "running",
    2: "blocked",
    3: "paused",
    4: "shutting down",
    5: "shut off",
    6: "crashed",
    7: "suspended (PM)",
}

# libvirt's node memory parameters for KSM: the three tunables it can write, and the counters it reads.
NODE_KSM_TUNABLES = {
    "pages_to_scan": "shm_pages_to_scan",
    "sleep_millisecs": "shm_sleep_millisecs",
    "merge_across_nodes": "shm_merge_across_nodes",
}
NODE_KSM_COUNTERS = {
    "pages_shared": "shm_pages_shared",
    "pages_sharing": "shm_pages_sharing",
    "pages_unshared": "shm_pages_unshared",
    "pages_volatile": "shm_pages_volatile",
    "full_scans": "shm_full_scans",
}


class LibvirtError(Exception):
    """A libvirt failure in words (connection, permission, unknown domain, agent not connected)."""


def is_remote(uri: str) -> bool:
    """A URI with a host part (qemu+ssh://host/system) reaches another machine: no /proc or /sys there."""
    _scheme, _, rest = uri.partition("://")
    return bool(rest.split("/", 1)[0])


def without_prompts(uri: str) -> str:
    """The URI with ``no_tty=1`` for ssh transports: ssh must never ask for a password or a host key on the
    terminal the screen is drawn on (use keys or an agent); without it, a prompt would corrupt the screen."""
    scheme = uri.partition("://")[0]
    if "+ssh" not in scheme and "+libssh" not in scheme:
        return uri
    if "no_tty=" in uri.partition("?")[2]:
        return uri
    return uri + ("&" if "?" in uri else "?") + "no_tty=1"


def _import_libvirt() -> Any:
    try:
        import libvirt
    except ImportError:
        raise LibvirtError("libvirt-python is not installed (pip install 'ksmtop[libvirt]')") from None
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)  # no printing to stderr under the screen
    return libvirt


def _uuid_arg(argv: list[str]) -> str | None:
    for i, arg in enumerate(argv[:-1]):
        if arg == "-uuid":
            return argv[i + 1]
    return None


def _words(exc: Exception) -> str:
    message = getattr(exc, "get_error_message", lambda: None)() or str(exc)
    return one_line(message)


DomainRef = str | DomainSample
"""A domain to act on: a DomainSample (looked up by its UUID: its name is the escaped one, for display) or the
real name as the user typed it (`ksmtop lab` and tests name their own domains)."""


def domain_label(domain: DomainRef) -> str:
    """The domain's name, safe to show."""
    return domain.name if isinstance(domain, DomainSample) else safe_name(domain)


def _close_quietly(conn: Any) -> None:
    try:
        conn.close()
    except Exception:  # closing a connection that libvirtd dropped may fail in any way
        pass


class LibvirtConnection:
    """A connection that re-opens itself after libvirtd restarts. Thread-safe (calls serialize)."""

    def __init__(self, uri: str = DEFAULT_URI, root: str | Path = "/") -> None:
        self.uri = uri
        self.label = safe_name(uri)
        """The URI, safe to show (it may hold a host name from anywhere)."""
        self.root = Path(root)
        self.remote = is_remote(uri)
        self._conn: Any = None
        self._lock = threading.RLock()
        self._last_attempt = 0.0
        self._closing = False
        """Set by a close() that could not wait for a call in progress: that call closes the connection."""
        self.status = "not connected yet"

    def close(self, wait_s: float | None = None) -> None:
        """Close the connection. With ``wait_s``, never block longer than about that: a call still running then
        (a hung libvirtd) keeps the connection and closes it when it returns; a close that libvirtd does not
        answer is left to a daemon thread."""
        if not self._lock.acquire(timeout=-1 if wait_s is None else wait_s):
            self._closing = True
            return
        try:
            conn, self._conn = self._conn, None
        finally:
            self._lock.release()
        if conn is None:
            return
        if wait_s is None:
            _close_quietly(conn)
            return
        closer = threading.Thread(target=_close_quietly, args=(conn,), name="ksmtop-libvirt-close", daemon=True)
        closer.start()
        closer.join(timeout=wait_s)

    def __enter__(self) -> LibvirtConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _connection(self) -> Any:
        libvirt = _import_libvirt()
        if self._conn is not None:
            try:
                if self._conn.isAlive():
                    return self._conn
            except libvirt.libvirtError:
                pass
            self._conn = None
            self.status = f"lost the connection to {self.label}; reconnecting"
        now = time.monotonic()
        if now - self._last_attempt < RECONNECT_EVERY_S:
            raise LibvirtError(self.status)
        self._last_attempt = now
        try:
            self._conn = libvirt.open(without_prompts(self.uri))
        except libvirt.libvirtError as exc:
            self.status = f"cannot connect to {self.label}: {_words(exc)}"
            raise LibvirtError(self.status) from None
        self.status = f"connected to {self.label}"
        return self._conn

    def _call(self, what: str, function: Any) -> Any:
        libvirt = _import_libvirt()
        with self._lock:
            try:
                return self._call_locked(libvirt, what, function)
            finally:
                if self._closing:  # close() gave up waiting for this call: finish its job
                    conn, self._conn, self._closing = self._conn, None, False
                    if conn is not None:
                        _close_quietly(conn)

    def _call_locked(self, libvirt: Any, what: str, function: Any) -> Any:
        conn = self._connection()
        try:
            return function(conn)
        except libvirt.libvirtError as exc:
            try:
                alive = conn.isAlive()
            except libvirt.libvirtError:
                alive = False
            if not alive:
                self._conn = None
                self.status = f"lost the connection to {self.label} ({_words(exc)}); reconnecting"
                raise LibvirtError(f"{what}: {self.status}") from None
            raise LibvirtError(f"{what}: {_words(exc)}") from None

    # --- domains ------------------------------------------------------------------------------------------
    def domains(self) -> list[DomainSample]:
        """Every domain, shut-off ones included, with the qemu PID of running local ones (as the model's
        DomainSample; the watcher adds the statistics)."""
        return self._call("listing domains", lambda conn: [self._domain(d) for d in conn.listAllDomains(0)])

    def _domain(self, dom: Any) -> DomainSample:
        state, max_kib, kib, vcpus, _cpu_time = dom.info()
        name = dom.name()  # the real name: only for the pid file below
        domain = DomainSample(
            name=safe_name(name),
            uuid=dom.UUIDString(),
            state=STATE_NAMES.get(state, f"state {state}"),
            vcpus=vcpus,
            max_memory_bytes=max_kib * 1024,
            memory_bytes=kib * 1024,
            persistent=bool(dom.isPersistent()),
        )
        if domain.running and not self.remote:
            return dataclasses.replace(domain, pid=self.pid_of(name, domain.uuid))
        return domain

    def pid_of(self, name: str, uuid: str) -> int | None:
        """The qemu PID: libvirt's pid file, else the qemu process whose command line carries the domain's UUID."""
        if "/" not in name and name not in (".", ".."):
            try:
                return int((self.root / PID_DIR / f"{name}.pid").read_text().strip())
            except (OSError, ValueError):
                pass
        for pid in iter_pids(self.root):
            argv = read_cmdline(pid, self.root)
            if argv and is_qemu_comm(Path(argv[0]).name) and _uuid_arg(argv) == uuid:
                return pid
        return None

    @staticmethod
    def _lookup(conn: Any, domain: DomainRef) -> Any:
        if isinstance(domain, DomainSample):
            return conn.lookupByUUIDString(domain.uuid)
        return conn.lookupByName(domain)

    def start(self, domain: DomainRef) -> None:
        self._call(f"starting {domain_label(domain)}", lambda conn: self._lookup(conn, domain).create())

    def shutdown(self, domain: DomainRef) -> None:
        """Graceful: guest agent if it answers, else ACPI power button."""
        libvirt = _import_libvirt()
        flags = libvirt.VIR_DOMAIN_SHUTDOWN_GUEST_AGENT | libvirt.VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN
        self._call(
            f"shutting down {domain_label(domain)}", lambda conn: self._lookup(conn, domain).shutdownFlags(flags)
        )

    def destroy(self, domain: DomainRef) -> None:
        """Forced stop (the screen asks first)."""
        self._call(f"destroying {domain_label(domain)}", lambda conn: self._lookup(conn, domain).destroy())

    def define(self, xml: str) -> str:
        """Define a domain; returns its real name."""
        return self._call("defining a domain", lambda conn: conn.defineXML(xml).name())

    def undefine(self, domain: DomainRef) -> None:
        self._call(f"undefining {domain_label(domain)}", lambda conn: self._lookup(conn, domain).undefine())

    def memory_stats(self, domain: DomainRef) -> dict[str, int]:
        """The domain's memory statistics (KiB values as libvirt reports them: actual, rss, ...)."""
        return self._call(
            f"memory statistics of {domain_label(domain)}", lambda conn: dict(self._lookup(conn, domain).memoryStats())
        )

    def agent_command(self, domain: DomainRef, command: dict[str, Any], timeout: int = AGENT_TIMEOUT_S) -> Any:
        """One qemu-guest-agent command through libvirt's agent channel; returns its "return" value."""

        def run(conn: Any) -> Any:
            import libvirt_qemu

            answer = libvirt_qemu.qemuAgentCommand(self._lookup(conn, domain), json.dumps(command), timeout, 0)
            return json.loads(answer).get("return")

        return self._call(f"guest agent of {domain_label(domain)}", run)

    # --- KSM through the node API -------------------------------------------------------------------------
    def node_ksm(self) -> dict[str, int]:
        """KSM tunables and counters libvirt exposes, under /sys/kernel/mm/ksm's names."""
        params = self._call("reading node memory parameters", lambda conn: conn.getMemoryParameters(0))
        names = {**NODE_KSM_TUNABLES, **NODE_KSM_COUNTERS}
        return {name: int(params[key]) for name, key in names.items() if key in params}

    def set_node_ksm(self, name: str, value: int) -> int:
        """Write one of the three tunables libvirt can set; returns the value read back."""
        key = NODE_KSM_TUNABLES.get(name)
        if key is None:
            raise LibvirtError(f"libvirt cannot set {safe_name(name)}: only {', '.join(NODE_KSM_TUNABLES)}")
        self._call(f"setting {name}", lambda conn: conn.setMemoryParameters({key: int(value)}, 0))
        return self.node_ksm()[name]

    def domain_stats(self) -> dict[str, dict[str, int]]:
        """Per running domain (by UUID): rss_bytes from the balloon statistics and perf page faults where enabled."""
        libvirt = _import_libvirt()
        kinds = libvirt.VIR_DOMAIN_STATS_BALLOON | libvirt.VIR_DOMAIN_STATS_PERF
        flags = libvirt.VIR_CONNECT_GET_ALL_DOMAINS_STATS_ACTIVE

        def run(conn: Any) -> dict[str, dict[str, int]]:
            result: dict[str, dict[str, int]] = {}
            for dom, stats in conn.getAllDomainStats(kinds, flags):
                figures: dict[str, int] = {}
                if "balloon.rss" in stats:
                    figures["rss_bytes"] = int(stats["balloon.rss"]) * 1024
                if "perf.page_faults_min" in stats:
                    figures["minor_faults"] = int(stats["perf.page_faults_min"])
                if "perf.page_faults_maj" in stats:
                    figures["major_faults"] = int(stats["perf.page_faults_maj"])
                result[dom.UUIDString()] = figures
            return result

        return self._call("reading domain statistics", run)

    # --- the node (for remote hosts) ----------------------------------------------------------------------
    def node_memory(self) -> dict[str, int]:
        """The node's memory in bytes: total, free, buffers, cached (whatever the host reports)."""
        libvirt = _import_libvirt()
        stats = self._call(
            "reading node memory", lambda conn: conn.getMemoryStats(libvirt.VIR_NODE_MEMORY_STATS_ALL_CELLS, 0)
        )
        return {name: int(kib) * 1024 for name, kib in stats.items()}

    def node_cpus(self) -> int:
        return int(self._call("reading node information", lambda conn: conn.getInfo())[2])

    def page_size(self) -> int | None:
        """The host's base page size in bytes: the smallest size whose free pages libvirt can count on cell 0.

        (The capabilities XML says it too, but getCapabilities probes the host CPU and takes seconds per call.)
        """
        libvirt = _import_libvirt()

        def run(conn: Any) -> int | None:
            for kib in BASE_PAGE_KIB:
                try:
                    conn.getFreePages([kib], 0, 1, 0)
                    return kib * 1024
                except libvirt.libvirtError:
                    continue
            return None

        return self._call("reading the page size", run)

    # --- perf events --------------------------------------------------------------------------------------
    def enable_fault_counters(self, domain: DomainRef) -> None:
        """Ask libvirt to count the domain's page faults (perf events); fails in words where perf is off."""
        libvirt = _import_libvirt()
        params = {
            libvirt.VIR_PERF_PARAM_PAGE_FAULTS_MIN: True,
            libvirt.VIR_PERF_PARAM_PAGE_FAULTS_MAJ: True,
        }
        self._call(
            f"enabling page-fault counters of {domain_label(domain)}",
            lambda conn: self._lookup(conn, domain).setPerfEvents(params, libvirt.VIR_DOMAIN_AFFECT_LIVE),
        )

    def fault_counters(self) -> dict[str, tuple[int, int]]:
        """(minor, major) page faults per running domain (by UUID), where perf events are enabled."""
        libvirt = _import_libvirt()

        def run(conn: Any) -> dict[str, tuple[int, int]]:
            result: dict[str, tuple[int, int]] = {}
            for dom, stats in conn.getAllDomainStats(libvirt.VIR_DOMAIN_STATS_PERF, 0):
                minor = stats.get("perf.page_faults_min")
                major = stats.get("perf.page_faults_maj")
                if minor is not None or major is not None:
                    result[dom.UUIDString()] = (int(minor or 0), int(major or 0))
            return result

        return self._call("reading perf events", run)
