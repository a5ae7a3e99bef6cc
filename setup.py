"""Only the compiled part of ksmtop: everything else is in pyproject.toml. cffi builds ksmtop.collect._procread
(the per-tick reader, procread.c) from procread_build.py."""

from setuptools import setup

setup(cffi_modules=["ksmtop/collect/procread_build.py:ffibuilder"])
