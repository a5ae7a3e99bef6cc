"""The KVM probe's runtime directory is checked before anything is read from it or written into it: a
directory others can write to (or a symlink) is refused in one line, and no probe boots."""

from __future__ import annotations

import os

import pytest

from ksmtop.lab.accel import choose_accel
from ksmtop.lab.paths import LabError


class NoImage:
    """Any use of the image (the cache key, the probe boot) fails the test: the check comes first."""

    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"the image was used ({name}) before the runtime directory was checked")


@pytest.fixture
def kvm_offered() -> None:
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        pytest.skip("no usable /dev/kvm: choose_accel answers tcg without a runtime directory")


def test_a_runtime_directory_others_can_write_is_refused_before_the_probe(tmp_path, kvm_offered):
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    runtime.chmod(0o777)
    with pytest.raises(LabError, match=str(runtime)):
        choose_accel(runtime, NoImage(), "auto")  # type: ignore[arg-type]
    assert list(runtime.iterdir()) == []


def test_a_symlinked_runtime_directory_is_refused(tmp_path, kvm_offered):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    (tmp_path / "runtime").symlink_to(elsewhere)
    with pytest.raises(LabError):
        choose_accel(tmp_path / "runtime", NoImage(), "auto")  # type: ignore[arg-type]
    assert list(elsewhere.iterdir()) == []
