"""Files root writes (exports, recordings, plots): only regular files, an existing one only with force,
replaced by a new file renamed over it, never a chmod or a truncate of a file ksmtop did not create."""

from __future__ import annotations

import contextlib
import json
import os
import stat
from pathlib import Path

import pytest

from ksmtop import outfile
from ksmtop.export import CSV_TABLES, export_csv, export_json
from ksmtop.recording import RecordingWriter, read_recording
from tests.support.hostile_recordings import write_base

NOBODY = 65534


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    return read_recording(write_base(tmp_path_factory.mktemp("rec") / "r.jsonl"))


def state(path: Path) -> tuple:
    info = os.lstat(path)
    return info.st_ino, stat.S_IMODE(info.st_mode), info.st_uid, info.st_size, info.st_mtime_ns


@contextlib.contextmanager
def dev_null_guard():
    """/dev/null exactly as it was afterwards, even if the code under test chmods it (the bug this tests)."""
    before = os.stat("/dev/null")
    try:
        yield before
    finally:
        after = os.stat("/dev/null")
        if stat.S_IMODE(after.st_mode) != stat.S_IMODE(before.st_mode):
            os.chmod("/dev/null", stat.S_IMODE(before.st_mode))
        if (after.st_uid, after.st_gid) != (before.st_uid, before.st_gid):
            os.chown("/dev/null", before.st_uid, before.st_gid)
        assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def writers(recording):
    """Every way ksmtop writes a named file, with force."""
    return {
        "export-json": lambda path: export_json(recording, path, force=True),
        "record": lambda path: RecordingWriter(path, overwrite=True, fsync=False).close(),
        "plot-target": lambda path: outfile.replacing(path, True, binary=True).__enter__(),
    }


@pytest.mark.parametrize("how", ["export-json", "record", "plot-target"])
def test_dev_null_is_refused_and_left_alone(recording, how):
    if os.geteuid() != 0:
        pytest.skip("the harm needs root: as root, fchmod on /dev/null breaks the host")
    with dev_null_guard() as before:
        with pytest.raises(outfile.NotRegularFile) as caught:
            writers(recording)[how](Path("/dev/null"))
        after = os.stat("/dev/null")
    assert (
        str(caught.value)
        == "[Errno 22] is a character device, not a regular file: ksmtop writes only regular files: '/dev/null'"
    )
    assert caught.value.filename == "/dev/null" and caught.value.strerror.startswith("is a character device")
    assert (stat.S_IMODE(after.st_mode), after.st_uid, after.st_rdev) == (
        stat.S_IMODE(before.st_mode),
        before.st_uid,
        before.st_rdev,
    )


def _fifo(path: Path) -> None:
    os.mkfifo(path, 0o644)


def _device(path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("mknod needs root")
    os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # a /dev/null of our own


def _directory(path: Path) -> None:
    path.mkdir(mode=0o755)


def _symlink_to_another_users_file(path: Path) -> None:
    target = path.with_name("theirs.txt")
    target.write_text("their data")
    target.chmod(0o644)
    if os.geteuid() == 0:
        os.chown(target, NOBODY, NOBODY)
    path.symlink_to(target)


def _dangling_symlink(path: Path) -> None:
    path.symlink_to(path.with_name("nowhere"))


@pytest.mark.parametrize(
    ("make", "kind"),
    [
        (_fifo, "a FIFO"),
        (_device, "a character device"),
        (_directory, "a directory"),
        (_symlink_to_another_users_file, "a symlink"),
        (_dangling_symlink, "a symlink"),
    ],
)
@pytest.mark.parametrize("how", ["export-json", "record", "plot-target"])
def test_anything_but_a_regular_file_is_refused_even_with_force(tmp_path, recording, make, kind, how):
    path = tmp_path / "out"
    make(path)
    around = {p.name: state(p) for p in tmp_path.iterdir()}
    with pytest.raises(outfile.NotRegularFile, match=f"is {kind}, not a regular file"):
        writers(recording)[how](path)
    assert {p.name: state(p) for p in tmp_path.iterdir()} == around  # nothing changed, no temporary left
    if make is _symlink_to_another_users_file:
        assert (tmp_path / "theirs.txt").read_text() == "their data"


def test_an_existing_file_needs_force_and_is_replaced_not_rewritten(tmp_path, recording):
    path = tmp_path / "out.json"
    path.write_text("precious")
    path.chmod(0o644)
    if os.geteuid() == 0:
        os.chown(path, NOBODY, NOBODY)
    os.link(path, tmp_path / "other-name")  # the same inode under another name: it must not change
    with pytest.raises(FileExistsError):
        export_json(recording, path)
    assert path.read_text() == "precious"
    export_json(recording, path, force=True)
    assert json.loads(path.read_text())["format"] == "ksmtop-export"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and path.stat().st_uid == os.geteuid()
    old = tmp_path / "other-name"
    assert old.read_text() == "precious" and stat.S_IMODE(old.stat().st_mode) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other-name", "out.json"]


def test_record_force_replaces_at_once_and_never_touches_the_old_inode(tmp_path):
    from tests.support.hostile_recordings import base_session

    path = tmp_path / "r.jsonl"
    path.write_text("old recording")
    path.chmod(0o640)
    os.link(path, tmp_path / "kept")
    with pytest.raises(FileExistsError):
        RecordingWriter(path)
    writer = RecordingWriter(path, overwrite=True, fsync=False)
    writer.write(base_session()[0])  # the new file is at the name from the first sample on (kill -9 safe)
    assert len(read_recording(path).snapshots) == 1
    writer.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert (tmp_path / "kept").read_text() == "old recording" and stat.S_IMODE(
        (tmp_path / "kept").stat().st_mode
    ) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept", "r.jsonl"]


def test_a_failed_export_leaves_the_old_file_and_no_temporary(tmp_path, recording, monkeypatch):
    path = tmp_path / "out.json"
    path.write_text("precious")

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(json, "dump", broken)
    with pytest.raises(OSError, match="No space left"):
        export_json(recording, path, force=True)
    assert path.read_text() == "precious"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_new_files_are_owner_only_whatever_the_umask(tmp_path, recording):
    old = os.umask(0)
    try:
        export_json(recording, tmp_path / "a.json")
        export_csv(recording, tmp_path / "csv")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "csv").stat().st_mode) == 0o700
    assert {stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "csv").iterdir()} == {0o600}


def test_csv_tables_are_all_checked_before_any_is_written(tmp_path, recording):
    out = tmp_path / "csv"
    out.mkdir()
    (out / "events.csv").write_text("mine")  # the last table written
    with pytest.raises(FileExistsError):
        export_csv(recording, out)
    assert [p.name for p in out.iterdir()] == ["events.csv"]  # no table written before the refusal
    written = export_csv(recording, out, force=True)
    assert sorted(p.name for p in out.iterdir()) == sorted(CSV_TABLES) == sorted(p.name for p in written)


def test_csv_table_that_is_a_symlink_is_refused_even_with_force(tmp_path, recording):
    out = tmp_path / "csv"
    out.mkdir()
    (tmp_path / "target").write_text("theirs")
    (out / "host.csv").symlink_to(tmp_path / "target")
    with pytest.raises(outfile.NotRegularFile, match="is a symlink"):
        export_csv(recording, out, force=True)
    assert (tmp_path / "target").read_text() == "theirs" and [p.name for p in out.iterdir()] == ["host.csv"]


@pytest.mark.parametrize("kind", ["symlink", "file", "fifo"])
def test_csv_directory_must_be_a_real_directory(tmp_path, recording, kind):
    out = tmp_path / "csv"
    if kind == "symlink":
        (tmp_path / "elsewhere").mkdir()
        out.symlink_to(tmp_path / "elsewhere")
    elif kind == "file":
        out.write_text("x")
    else:
        os.mkfifo(out)
    with pytest.raises(NotADirectoryError, match="not a directory"):
        export_csv(recording, out, force=True)
    if kind == "symlink":
        assert list((tmp_path / "elsewhere").iterdir()) == []
