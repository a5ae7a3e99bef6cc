"""The fill and release workloads as the guest runs them: the real scripts under busybox sh (the shell the lab
image carries), as root, with a /dev/shm of their own (a tmpfs mounted in a private mount namespace, so the
host's /dev/shm is never touched). In someone else's libvirt guest /dev/shm is world-writable: the fill must
go into a directory of root's own, and refuse one that a guest user made or linked first."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "guest_agents"

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("busybox") is None or shutil.which("unshare") is None,
    reason="needs root, busybox and unshare (a private /dev/shm)",
)


def in_guest_shm(shell: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Run ``shell`` (busybox sh) with a fresh tmpfs on /dev/shm; $OUTSIDE is ``tmp_path``, outside that tmpfs."""
    script = (
        "set -e; mount -t tmpfs -o mode=1777 ksmtop-test /dev/shm; "
        f"OUTSIDE={tmp_path}; export OUTSIDE; cd {SCRIPTS}; set +e; {shell}"
    )
    return subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "busybox", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_fill_goes_into_a_directory_of_roots_own_and_release_removes_it(tmp_path):
    done = in_guest_shm(
        "busybox sh fill_same.sh 2 && stat -c '%a %U %s' /dev/shm/ksmtop /dev/shm/ksmtop/fill"
        " && tr -d A < /dev/shm/ksmtop/fill | wc -c"
        " && busybox sh fill_random.sh 1 && stat -c %s /dev/shm/ksmtop/fill"
        " && busybox sh release.sh && ls -A /dev/shm/ksmtop | wc -l",
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.split("\n")
    assert lines[0] == "fill_same: 2 MiB of identical data in /dev/shm/ksmtop/fill"
    assert lines[1].startswith("700 root ")  # the directory: root's, private
    assert lines[2] == f"644 root {2 * 1024 * 1024}"
    assert lines[3].strip() == "0"  # every byte 'A'
    assert lines[4] == "fill_random: 1 MiB of random data in /dev/shm/ksmtop/fill"
    assert lines[5] == str(1024 * 1024)  # the random fill replaced the identical one
    assert lines[6] == "release: fill removed"
    assert lines[7].strip() == "0"


@pytest.mark.parametrize("script", ["fill_same.sh", "fill_random.sh"])
def test_a_directory_someone_else_made_or_linked_first_is_refused(tmp_path, script):
    tmp_path.chmod(0o777)
    # a guest user's directory in its place
    made = in_guest_shm(f"mkdir /dev/shm/ksmtop && chown nobody /dev/shm/ksmtop && busybox sh {script} 1", tmp_path)
    assert made.returncode == 1
    assert made.stderr.strip().endswith("/dev/shm/ksmtop is not a directory of this user's own; not writing there")
    # a link to somewhere root can write: nothing may land there
    linked = in_guest_shm(f'ln -s "$OUTSIDE" /dev/shm/ksmtop && busybox sh {script} 1; echo "rc=$?"', tmp_path)
    assert linked.stdout.strip().endswith("rc=1"), linked.stderr
    assert "not a directory of this user's own" in linked.stderr
    assert list(tmp_path.iterdir()) == []
    released = in_guest_shm(
        'ln -s "$OUTSIDE" /dev/shm/ksmtop && touch "$OUTSIDE/fill" && busybox sh release.sh', tmp_path
    )
    assert released.returncode == 0 and released.stdout.strip() == "release: no fill to remove"
    assert (tmp_path / "fill").exists()  # release never follows the link either
