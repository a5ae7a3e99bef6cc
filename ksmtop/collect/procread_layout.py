"""The layout of the compiled reader's rows (procread.c): one definition for C (procread_build.py makes
#defines of it) and Python (procfs, procread). Plain constants: importable without cffi or the built module."""

from __future__ import annotations

KSMTOP_ROW = 15  # int64 values per process
KSMTOP_FDS = 4  # ints per process given: stat fd, statm fd, ksm fd (or -1), ksm kind
# a row's status
KSMTOP_OK = 0
KSMTOP_GONE = 1  # exited, or its PID now names another process
KSMTOP_PYTHON = 2  # read it with the Python loop (a failed read, or text this parser does not know)
# what the ksm fd reads
KSMTOP_KSM_NONE = 0
KSMTOP_KSM_STAT = 1
KSMTOP_KSM_MERGING_PAGES = 2
# a row's values
KSMTOP_AT_STATUS = 0
KSMTOP_AT_STATE = 1
KSMTOP_AT_START = 2
KSMTOP_AT_MINFLT = 3
KSMTOP_AT_MAJFLT = 4
KSMTOP_AT_CPU_TICKS = 5
KSMTOP_AT_RSS_PAGES = 6
KSMTOP_AT_SHARED_PAGES = 7
KSMTOP_AT_MERGING = 8
KSMTOP_AT_ZERO = 9
KSMTOP_AT_RMAP = 10
KSMTOP_AT_PROFIT = 11
KSMTOP_AT_MERGEABLE = 12
KSMTOP_AT_MERGE_ANY = 13
KSMTOP_AT_PRESENT = 14  # which of the KSM values the file had (KSMTOP_HAS_* bits)
KSMTOP_HAS_MERGING = 1
KSMTOP_HAS_ZERO = 2
KSMTOP_HAS_RMAP = 4
KSMTOP_HAS_PROFIT = 8
KSMTOP_HAS_MERGEABLE = 16
KSMTOP_HAS_MERGE_ANY = 32

CONSTANTS = {name: value for name, value in globals().items() if name.startswith("KSMTOP_")}
"""Every constant above by name: procread_build.py writes them as #defines for the C source."""

ALL_KSM_PRESENT = sum(value for name, value in CONSTANTS.items() if name.startswith("KSMTOP_HAS_"))
"""``present`` when the ksm file had every value KsmValues holds."""
