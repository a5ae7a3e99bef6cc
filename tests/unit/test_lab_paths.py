"""The lab's cache and runtime directories on a shared host: root's cache is root's own, directories someone else
made (another owner, a mode that lets others write, a symlink) are refused in one line, and pruning never
follows a symlink out of the cache."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from ksmtop.lab import image as image_module
from ksmtop.lab import paths
from ksmtop.lab.guests import Lab
from ksmtop.lab.paths import LabError, cache_path, prune, runtime_path
from tests.support.nobody import run_as_nobody

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (chown to another user, setuid)")


def outside_tree(tmp_path: Path) -> Path:
    """A directory outside the cache holding what a hostile symlink would aim root's delete at."""
    victim = tmp_path / "victim"
    for name in ("home-a", "home-b", "home-c"):
        (victim / name).mkdir(parents=True)
        (victim / name / "precious.txt").write_text("keep me\n")
    return victim


def survivors(victim: Path) -> list[str]:
    return sorted(str(p.relative_to(victim)) for p in victim.rglob("precious.txt"))


ALL_PRECIOUS = ["home-a/precious.txt", "home-b/precious.txt", "home-c/precious.txt"]


def test_pruning_images_through_a_symlinked_images_directory_deletes_nothing_outside(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    victim = outside_tree(tmp_path)
    (cache / "images").symlink_to(victim)  # planted by whoever owned the cache
    with pytest.raises(LabError, match="symlink"):
        image_module._prune(cache / "images", keep=cache / "images" / "home-a")
    assert survivors(victim) == ALL_PRECIOUS


def test_pruning_never_follows_a_symlinked_entry(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    victim = outside_tree(tmp_path)
    (images / "current").mkdir()
    (images / "old").mkdir()
    (images / "old" / "vmlinuz").write_text("old image\n")
    os.utime(images / "old", (1, 1))
    (images / "aaa-planted").symlink_to(victim)
    (images / "zzz-planted").symlink_to(victim / "home-a")
    removed = prune(images, {"current"})
    assert sorted(removed) == ["aaa-planted", "old", "zzz-planted"]
    assert sorted(os.listdir(images)) == ["current"]  # the links themselves went, nothing behind them
    assert survivors(victim) == ALL_PRECIOUS


def test_prune_keeps_the_newest_and_hidden_entries(tmp_path):
    images = tmp_path / "images"
    for index, name in enumerate(("a", "b", "c", "keep", ".staging")):
        (images / name).mkdir(parents=True)
        os.utime(images / name, (1000 + index, 1000 + index))
    assert sorted(prune(images, {"keep"}, newest=1)) == ["a", "b"]
    assert sorted(os.listdir(images)) == [".staging", "c", "keep"]


@needs_root
def test_root_caches_under_var_cache_whatever_home_and_xdg_say(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "user-cache"))
    monkeypatch.setenv("HOME", str(tmp_path / "user-home"))
    assert paths.cache_dir() == Path("/var/cache/ksmtop/lab")
    assert paths.runtime_dir() == Path("/run/ksmtop/lab")


@needs_root
@pytest.mark.parametrize("hostile", ["other-owner", "group-writable", "world-writable", "symlink", "a-file"])
def test_a_pre_created_hostile_directory_is_refused_in_one_line(tmp_path, hostile):
    target = tmp_path / "lab"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    if hostile == "other-owner":
        target.mkdir(mode=0o700)
        os.chown(target, 65534, 65534)
    elif hostile == "group-writable":
        target.mkdir()
        target.chmod(0o770)
    elif hostile == "world-writable":
        target.mkdir()
        target.chmod(0o777)
    elif hostile == "symlink":
        target.symlink_to(elsewhere)
    else:
        target.write_text("")
    before = os.lstat(target)
    for make in (runtime_path, cache_path):
        with pytest.raises(LabError) as refused:
            make(target)
        message = str(refused.value)
        assert "\n" not in message and str(target) in message
        assert message.startswith("refusing")
    after = os.lstat(target)
    assert (after.st_mode, after.st_uid) == (before.st_mode, before.st_uid)  # refused, not "fixed"
    assert os.listdir(elsewhere) == []


def test_runtime_directories_are_0700_whatever_the_umask(tmp_path):
    old = os.umask(0)
    try:
        made = runtime_path(tmp_path / "lab")
        narrowed = tmp_path / "older"
        narrowed.mkdir(mode=0o755)  # an older ksmtop made it under umask 022: ours, others could only read
        runtime_path(narrowed)
    finally:
        os.umask(old)
    assert os.stat(made).st_mode & 0o777 == 0o700
    assert os.stat(narrowed).st_mode & 0o777 == 0o700


@needs_root
def test_a_lab_whose_runtime_directory_others_control_lists_no_guest(tmp_path):
    """A state file in a directory someone else made could name any process (root would then stop it)."""
    runtime = tmp_path / "runtime"
    (runtime / "lab-1").mkdir(parents=True)
    decoy = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()", "guest=lab-1"], stdin=subprocess.PIPE
    )
    try:
        ticks = int(Path(f"/proc/{decoy.pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
        state = {
            "name": "lab-1", "pid": decoy.pid, "start_ticks": ticks, "memory_mib": 256, "accel": "tcg",
            "image_id": "x", "started_at": 0.0, "directory": str(runtime / "lab-1"),
            "agent_socket": str(runtime / "lab-1/qga.sock"), "qmp_socket": str(runtime / "lab-1/qmp.sock"),
            "serial_log": str(runtime / "lab-1/serial.log"),
        }  # fmt: skip
        (runtime / "lab-1" / "state.json").write_text(json.dumps(state))
        os.chown(runtime, 65534, 65534)
        with pytest.raises(LabError, match="owned by uid 65534"):
            Lab(runtime).guests()
    finally:
        decoy.kill()
        decoy.wait()


@needs_root
def test_non_root_fallback_under_tmp_refuses_a_directory_another_user_made(monkeypatch):
    """Without XDG_RUNTIME_DIR a user's runtime is /tmp/ksmtop-UID: predictable, so it is trusted only if it
    is the user's own 0700 directory."""
    planted = Path("/tmp/ksmtop-65534")
    if os.path.lexists(planted):
        pytest.skip(f"{planted} exists on this host already")
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    planted.mkdir(mode=0o777)  # the "attacker" here is root: any owner but the user will do
    planted.chmod(0o777)
    try:

        def observe() -> dict:
            where = paths.runtime_dir()
            try:
                runtime_path(where)
                return {"where": str(where), "refused": ""}
            except LabError as exc:
                return {"where": str(where), "refused": str(exc)}

        found = run_as_nobody(observe)
        assert found.get("where") == "/tmp/ksmtop-65534/lab", found
        assert found["refused"].startswith("refusing /tmp/ksmtop-65534: owned by uid 0"), found
        assert not (planted / "lab").exists()
    finally:
        planted.rmdir()


@needs_root
def test_non_root_cache_refuses_a_ksmtop_directory_it_does_not_own():
    top = Path(tempfile.mkdtemp(prefix="ksmtop-cache-test-"))  # pytest's own tmp is 0700: nobody cannot enter
    try:
        top.chmod(0o755)
        base = top / "cache-home"
        (base / "ksmtop").mkdir(parents=True)  # made by root, not by the user
        base.chmod(0o777)

        def observe() -> dict:
            os.environ["XDG_CACHE_HOME"] = str(base)
            try:
                cache_path(paths.cache_dir())
                return {"refused": ""}
            except LabError as exc:
                return {"refused": str(exc)}

        found = run_as_nobody(observe)
        expected = f"refusing {base}/ksmtop: owned by uid 0, not by us (uid 65534); remove it"
        assert found.get("refused") == expected, found
        assert not (base / "ksmtop" / "lab").exists()
    finally:
        shutil.rmtree(top)
