"""read_recording: a recording file back as Snapshots, with everything that looked wrong as warnings.

The file is untrusted: every value goes through ksmtop.codec (types from the model, numbers in range, strings
made safe). The reader raises nothing but RecordingError (one line naming the file and the line); damaged data
in a file whose lines are sealed (a checksum each) is a warning, and the reader goes on at the next complete
sample after it.

No Textual or Rich imports here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ksmtop.codec import (
    DOMAIN_TYPES,
    GUEST_TYPES,
    HOST_TYPES,
    MODES,
    RATES_TYPES,
    SCOPES,
    CodecError,
    clean_bool,
    clean_choice,
    clean_choices,
    clean_fields,
    clean_float,
    clean_int,
    clean_interval,
    clean_ksm_values,
    clean_text,
    clean_time,
    event_from_dict,
    missing,
    show,
    unique_pids,
)
from ksmtop.model import DomainSample, Event, GuestSample, HostSample, KsmRates, KsmState, Snapshot
from ksmtop.recording.lines import (
    FORMAT,
    MAX_LINE_BYTES,
    VERSION,
    BadNumber,
    Damaged,
    Line,
    LineStream,
    LineTooLong,
    RecordingError,
    is_sealed,
    loads,
    open_recording,
    seal_matches,
)
from ksmtop.safetext import safe, safe_name

HEADER_INTERVAL_MAX_S = 86400.0
PAGE_SIZE_MAX = 1 << 30


@dataclass
class Recording:
    """A recording read back: its header, the snapshots (events attached as live), and what looked wrong."""

    path: Path
    header: dict[str, Any]
    """The header's known fields, checked and made safe (unknown fields are dropped)."""
    snapshots: list[Snapshot] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    """One line each, made safe."""
    complete: bool = False
    """True when the end marker was read (the recorder closed the file)."""

    @property
    def start_time(self) -> float:
        return float(self.header["start_time"])


def clean_header(data: Any) -> dict[str, Any]:
    """The header line: checked, its strings made safe, only the fields this version knows."""
    if not isinstance(data, dict) or data.get("type") != "header":
        raise CodecError("not a ksmtop recording: the first line is not a header object")
    if data.get("format") != FORMAT:
        raise CodecError(f"not a ksmtop recording: format is {show(data.get('format'))}")
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise CodecError("the header has no format version")
    if version != VERSION:
        newer = "a newer" if version > VERSION else "an older"
        raise CodecError(f"format version {show(version)} (written by {newer} ksmtop); this ksmtop reads {VERSION}")
    for key, kind in (("host", str), ("kernel", str), ("page_size", int), ("start_time", int | float)):
        if not isinstance(data.get(key), kind) or isinstance(data.get(key), bool):
            raise CodecError(f"header.{key} is missing or of the wrong type")
    page_size = clean_int(data["page_size"], "header.page_size")
    if not 0 < page_size <= PAGE_SIZE_MAX:
        raise CodecError(f"header.page_size is out of range ({page_size})")
    interval = data.get("interval_s")
    if interval is not None:
        if isinstance(interval, bool) or not isinstance(interval, int | float):
            raise CodecError(f"header.interval_s should be a number of seconds or null, not {show(interval)}")
        interval = clean_float(interval, "header.interval_s")
        if not 0 < interval <= HEADER_INTERVAL_MAX_S:
            raise CodecError(f"header.interval_s is out of range ({show(interval)} s)")
    if not isinstance(data.get("tunables"), dict):
        raise CodecError("header.tunables is missing or of the wrong type")
    guests = data.get("guests", [])
    if not isinstance(guests, list):
        raise CodecError("header.guests should be a list")
    header: dict[str, Any] = {
        "type": "header",
        "format": FORMAT,
        "version": VERSION,
        "ksmtop": clean_text(data.get("ksmtop"), "header.ksmtop", name=True),
        "host": safe_name(data["host"]),
        "kernel": safe_name(data["kernel"]),
        "page_size": page_size,
        "start_time": clean_time(data["start_time"], "header.start_time"),
        "interval_s": interval,
        "scope": clean_choice(data.get("scope", "qemu"), SCOPES, "header.scope"),
        "tunables": clean_ksm_values(data["tunables"], "header.tunables"),
        "guests": [_header_guest(g) for g in guests],
    }
    if header["ksmtop"] is None:
        del header["ksmtop"]
    return header


def _header_guest(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise CodecError("header.guests should hold objects")
    guest = clean_fields(data, {k: GUEST_TYPES[k] for k in ("pid", "name", "kind", "start_ticks")}, "header.guest")
    if "pid" not in guest or "name" not in guest:
        raise CodecError("a guest in the header has no pid or name")
    return guest


class _State:
    """What the samples read so far add up to: each sample line changes it, then it becomes a Snapshot."""

    def __init__(self) -> None:
        self.top: dict[str, Any] = {}
        self.host: dict[str, Any] = {}
        self.rates: dict[str, Any] = {}
        self.ksm_meta: dict[str, Any] = {"available": True, "choices": {}, "error": None}
        self.ksm_values: dict[str, Any] = {}
        self.guests: dict[int, dict[str, Any]] = {}
        self.pids: list[int] = []
        self.domains: list[dict[str, Any]] = []

    def apply(self, data: dict[str, Any], events: list[Event]) -> Snapshot:
        first = not self.top
        self.top["time"] = clean_time(data.get("time"), "sample.time")
        self.top["interval_s"] = clean_interval(data.get("interval_s"), "sample.interval_s")
        if "scope" in data or first:
            self.top["scope"] = clean_choice(data.get("scope"), SCOPES, "sample.scope")
        if "is_root" in data:
            self.top["is_root"] = clean_bool(data["is_root"], "sample.is_root")
        if "mode" in data:  # mode, libvirt_status, domains: written when they change; the last value holds
            self.top["mode"] = clean_choice(data["mode"], MODES, "sample.mode")
        if "libvirt_status" in data:
            self.top["libvirt_status"] = clean_text(data["libvirt_status"], "sample.libvirt_status")
        self.host.update(clean_fields(data.get("host", {}), HOST_TYPES, "host"))
        self.rates.update(clean_fields(data.get("rates", {}), RATES_TYPES, "rates"))
        self.ksm(data.get("ksm", {}))
        self.guest_rows(data)
        if "domains" in data:
            self.domain_rows(data["domains"])
        if first:
            lacking = missing(self.host, HOST_TYPES) + missing(self.rates, RATES_TYPES)
            if lacking:
                raise CodecError(f"the first sample has no {', '.join(lacking[:3])}")
        return self.build(events)

    def ksm(self, data: Any) -> None:
        if not isinstance(data, dict):
            raise CodecError("sample.ksm should be an object")
        if "available" in data:
            self.ksm_meta["available"] = clean_bool(data["available"], "ksm.available")
        if "error" in data:
            self.ksm_meta["error"] = clean_text(data["error"], "ksm.error")
        if "choices" in data:
            self.ksm_meta["choices"] = clean_choices(data["choices"], "ksm.choices")
        for key, value in clean_ksm_values(data.get("values", {}), "ksm.values", removals=True).items():
            if value is None:
                self.ksm_values.pop(key, None)
            else:
                self.ksm_values[key] = value

    def guest_rows(self, data: dict[str, Any]) -> None:
        if "pids" in data:
            pids = data["pids"]
            if not isinstance(pids, list) or not all(isinstance(p, int) and not isinstance(p, bool) for p in pids):
                raise CodecError("sample.pids should be a list of process IDs")
            unique_pids(pids, "sample.pids")
            self.pids = [clean_int(pid, "sample.pids") for pid in pids]
            keep = set(pids)
            self.guests = {pid: row for pid, row in self.guests.items() if pid in keep}
        rows = data.get("guests", [])
        if not isinstance(rows, list):
            raise CodecError("sample.guests should be a list")
        known = set(self.pids)
        for row in rows:
            row = clean_fields(row, GUEST_TYPES, "guest")
            pid = row.get("pid")
            if pid is None:
                raise CodecError("a guest has no pid")
            if pid not in known:
                raise CodecError(f"guest {pid} is not in the sample's pids")
            self.guests.setdefault(pid, {}).update(row)
        for pid in self.pids:
            lacking = missing(self.guests.get(pid, {}), GUEST_TYPES)
            if lacking:
                raise CodecError(f"guest {pid} appears without {', '.join(lacking[:3])}")

    def domain_rows(self, rows: Any) -> None:
        """The whole domain list, written when it changed."""
        if not isinstance(rows, list):
            raise CodecError("sample.domains should be a list")
        domains = []
        for row in rows:
            row = clean_fields(row, DOMAIN_TYPES, "domain")
            lacking = missing(row, DOMAIN_TYPES)
            if lacking:
                who = f"domain {show(row['name'])}" if "name" in row else "a domain"
                raise CodecError(f"{who} appears without {', '.join(lacking[:3])}")
            domains.append(row)
        self.domains = domains

    def build(self, events: list[Event]) -> Snapshot:
        try:
            return Snapshot(
                time=self.top["time"],
                interval_s=self.top["interval_s"],
                scope=self.top["scope"],
                host=HostSample(**self.host),
                ksm=KsmState(
                    available=self.ksm_meta["available"],
                    values=dict(self.ksm_values),
                    choices=dict(self.ksm_meta["choices"]),
                    error=self.ksm_meta["error"],
                ),
                rates=KsmRates(**self.rates),
                guests=tuple(GuestSample(**self.guests[pid]) for pid in self.pids),
                events=tuple(events),
                is_root=self.top.get("is_root", True),
                domains=tuple(DomainSample(**row) for row in self.domains),
                mode=self.top.get("mode", "local"),
                libvirt_status=self.top.get("libvirt_status"),
            )
        except (TypeError, ValueError, KeyError) as exc:  # belt and braces: the checks above should catch it
            raise CodecError(f"sample does not fit the model: {safe(str(exc), 120)}") from None


class _Reader:
    def __init__(self, path: Path, stream: LineStream) -> None:
        self.path = path
        self.shown = safe(str(path))
        """The path as messages show it (a file name can hold terminal controls too)."""
        self.stream = stream
        self.number = 0
        self.state = _State()
        self.pending: list[Event] = []
        self.recording: Recording | None = None
        self.sealed = False
        """The header carries a checksum: so must every line (a line without one is damaged)."""
        self.next_seq = 0
        """Number of the next sample as the writer counted them (known again at every complete sample)."""
        self.damage: str | None = None
        """Where damaged data began, while the reader looks for a complete sample to go on with."""
        self.was_cut = False
        self.went_back = False

    def fail(self, message: str) -> RecordingError:
        return RecordingError(f"{self.shown}: line {self.number}: {message}")

    def warn(self, message: str) -> None:
        assert self.recording is not None
        self.recording.warnings.append(safe(f"{self.shown}: {message}", 1000))

    def read(self) -> Recording:
        try:
            while (line := self.next_line()) is not None:
                self.number = line.number
                if not line.ended:
                    self.cut(line)
                    break
                if line.raw.strip() and not self.line(line):
                    break
        except MemoryError:
            raise RecordingError(f"{self.shown}: line {self.number}: too large to read") from None
        return self.finish()

    def next_line(self) -> Line | None:
        while True:
            try:
                return self.stream.next()
            except Damaged as exc:
                if self.recording is None:
                    raise RecordingError(
                        f"{self.shown}: line {self.stream.number + 1}: the compressed data is damaged ({exc})"
                    ) from None
                self.damaged(f"in the gzip member at byte {exc.member}: {exc}")
            except LineTooLong as exc:
                if self.recording is None or not (self.sealed and self.stream.compressed):
                    raise RecordingError(
                        f"{self.shown}: line {exc.number} is longer than {self.stream.max_line} bytes"
                    ) from None
                self.damaged("a line too long")
            except OSError as exc:
                raise RecordingError(f"{self.shown}: read error after line {self.number}: {exc.strerror}") from None
            if not self.sealed or not self.stream.resync():
                return None

    def damaged(self, where: str) -> None:
        """Damaged data: remember where it began; samples are skipped until a complete one (a keyframe)."""
        self.pending = []
        if self.damage is None:
            count = len(self.recording.snapshots) if self.recording else 0
            self.damage = f"damaged data after sample {count} ({where})"

    def cut(self, line: Line) -> None:
        if self.recording is None:
            raise self.fail("the file ends inside the header (cut off)")
        self.was_cut = True
        if self.damage is not None:
            return
        where = "in the middle of the compressed stream" if line.raw == b"" else f"inside line {line.number}"
        self.warn(
            f"the tail was cut {where} (the recorder was killed or could not write?): "
            f"{len(self.recording.snapshots)} samples read, at most one lost"
        )

    def line(self, line: Line) -> bool:
        """Take one line; False when reading stops here."""
        raw = line.raw
        sealed = is_sealed(raw)
        if (sealed and not seal_matches(raw)) or (self.sealed and not sealed):
            if self.recording is None:
                raise self.fail("the header is damaged (its checksum does not match)")
            self.damaged(f"line {line.number} does not match its checksum")
            return self.stream.resync()
        try:
            data = loads(raw)
        except BadNumber as exc:
            raise self.fail(str(exc)) from None
        except (ValueError, RecursionError) as exc:
            if self.recording is None:
                raise self.fail(f"not JSON ({safe(str(exc), 80)}): not a ksmtop recording") from None
            raise self.fail(f"not JSON: {safe(str(exc), 80)}") from None
        try:
            if self.recording is None:
                self.recording = Recording(path=self.path, header=clean_header(data))
                self.sealed = sealed
                return True
            return self.item(data)
        except CodecError as exc:
            raise self.fail(str(exc)) from None

    def item(self, data: Any) -> bool:
        recording = self.recording
        assert recording is not None
        if recording.complete:
            self.warn(f"line {self.number}: data after the end marker ignored")
            return False
        if not isinstance(data, dict):
            raise CodecError(f"expected an object, got {type(data).__name__}")
        kind = data.get("type")
        if kind == "sample":
            self.sample(data)
        elif kind == "event":
            event = event_from_dict(data)
            self.pending.append(event)
            recording.events.append(event)
        elif kind == "end":
            if self.damage is not None:
                written = data.get("samples")
                valid = isinstance(written, int) and not isinstance(written, bool) and written >= self.next_seq
                self.resume("the end marker", written - self.next_seq if valid else None)
            recording.complete = True
        else:
            self.warn(f"line {self.number}: unknown object type {show(kind)} skipped")
        return True

    def sample(self, data: dict[str, Any]) -> None:
        recording = self.recording
        assert recording is not None
        full = data.get("full") is True
        seq = data.get("seq")
        seq = seq if isinstance(seq, int) and not isinstance(seq, bool) and 0 <= seq < 1 << 53 else None
        if self.damage is not None:
            if not full:
                self.pending = []  # events of a sample that is skipped
                return
            lost = seq - self.next_seq if seq is not None and seq >= self.next_seq else None
            self.resume(f"sample {seq + 1}" if seq is not None else "a complete sample", lost)
        if full:
            self.state = _State()
            if seq is not None:
                self.next_seq = seq
        previous = recording.snapshots[-1].time if recording.snapshots else None
        snapshot = self.state.apply(data, self.pending)
        self.pending = []
        recording.snapshots.append(snapshot)
        self.next_seq += 1
        if previous is not None and snapshot.time < previous and not self.went_back:
            self.went_back = True
            self.warn(
                f"line {self.number}: the sample time goes back {previous - snapshot.time:.3f} s "
                "(the clock was set back?); samples are kept in file order"
            )

    def resume(self, at: str, lost: int | None) -> None:
        """Intact data after damaged data: say what was lost and go on."""
        count = "some samples" if lost is None else f"{lost} samples"
        self.warn(f"{self.damage}: {count} skipped, reading went on at {at}")
        self.damage = None

    def finish(self) -> Recording:
        recording = self.recording
        if recording is None:
            raise RecordingError(f"{self.shown}: empty file: no header, not a ksmtop recording")
        if self.damage is not None:
            self.warn(f"{self.damage}: nothing intact after it, {len(recording.snapshots)} samples read")
        elif not recording.complete and not self.was_cut:
            self.warn(
                f"the tail was cut after line {self.number} (no end marker: the recorder was killed or could not "
                f"write?); {len(recording.snapshots)} samples read"
            )
        if not recording.snapshots:
            self.warn("the recording holds no sample")
        return recording


def read_recording(path: str | Path, max_line: int = MAX_LINE_BYTES) -> Recording:
    """Read a whole recording. Raises RecordingError (one message naming the line) for a file that is not a
    readable recording; a cut tail, a missing end marker and damaged data become warnings in
    Recording.warnings, with every sample before them (and, for sealed files, after the next complete one)."""
    path = Path(path)
    with open_recording(path) as handle:
        try:
            return _Reader(path, LineStream(handle, max_line)).read()
        except OSError as exc:
            raise RecordingError(f"{safe(str(path))}: read error: {exc.strerror or exc}") from None
