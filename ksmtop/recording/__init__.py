"""Session recordings: JSON Lines (optionally gzip), written one sample at a time, read back as Snapshots.

The format is described in docs/recording.md and docs/recording.schema.json. In short:

    {"type":"header","format":"ksmtop-recording","version":1,"host":...,"kernel":...,"page_size":4096,...}
    {"type":"event","time":...,"kind":"tunable","text":...,"data":{...}}      # attached to the next sample
    {"type":"sample","time":...,"interval_s":...,"host":{...},"guests":[{"pid":1,...}],...}
    {"type":"end","time":...,"samples":N}                                   # written on a clean close

A sample holds only what changed since the sample before it (field names are the model's); every 60th sample
(the first one too) holds everything and, in a gzip file, starts a new gzip member. Every line ends with its
CRC-32 (``"crc":"..."``). Files are created owner-only (0600); strings are redacted and made safe on the way out
and made safe again on the way in (ksmtop.codec). The reader never raises anything but RecordingError, and
reports a cut tail or damaged data as a warning with the samples it could read.

- lines.py: the bytes: sealed lines, gzip members, the line stream that resynchronises after damage
- writer.py: RecordingWriter
- reader.py: read_recording, Recording

No Textual or Rich imports here (tests/unit/test_layering.py checks it).
"""

from __future__ import annotations

from ksmtop.codec import REDACTED, redact, redact_value, stored
from ksmtop.recording.lines import FORMAT, KEYFRAME_SAMPLES, MAX_LINE_BYTES, VERSION, RecordingError
from ksmtop.recording.reader import Recording, read_recording
from ksmtop.recording.writer import RecordingWriter

__all__ = [
    "FORMAT",
    "KEYFRAME_SAMPLES",
    "MAX_LINE_BYTES",
    "REDACTED",
    "VERSION",
    "Recording",
    "RecordingError",
    "RecordingWriter",
    "read_recording",
    "redact",
    "redact_value",
    "stored",
]
