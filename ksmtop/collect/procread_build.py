"""Builds ksmtop.collect._procread (procread.c) with cffi in API mode; setup.py names it in ``cffi_modules``,
so pip compiles it when it installs ksmtop (the same compiler and Python headers libvirt-python needs).

The constants are defined once, in procread_layout.py: the C source gets them as #defines, and Python reads
them from that module, so C and Python cannot disagree on a row's layout.
"""

from __future__ import annotations

import runpy
from pathlib import Path

from cffi import FFI

# The layout is read by path: cffi runs this file from setup.py, where ksmtop itself cannot be imported.
CONSTANTS: dict[str, int] = runpy.run_path(str(Path(__file__).with_name("procread_layout.py")))["CONSTANTS"]

DEFINES = "".join(f"#define {name} {value}\n" for name, value in CONSTANTS.items())

CDEF = (
    DEFINES
    + """
int ksmtop_parse(const char *stat, size_t stat_size, const char *statm, size_t statm_size, int ksm_kind,
                 const char *ksm, size_t ksm_size, int64_t start_ticks, int64_t *row);
void ksmtop_sample(const int *fds, size_t count, const int64_t *start_ticks, int64_t *rows);
"""
)

ffibuilder = FFI()
ffibuilder.cdef(CDEF)
ffibuilder.set_source(
    "ksmtop.collect._procread",
    DEFINES + (Path(__file__).with_name("procread.c")).read_text(),
    extra_compile_args=["-O2"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
