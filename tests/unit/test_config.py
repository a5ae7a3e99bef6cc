"""Preferences in TOML: what is written reads back the same; a bad file gives one line naming the file and the
line, and the defaults."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ksmtop import config
from ksmtop.config import DEFAULTS, Preferences, dumps, load, parse, save
from ksmtop.tui.columns import COLUMN_KEYS
from tests.conftest import REPO


def test_the_config_knows_every_column_of_the_table():
    assert config.COLUMN_NAMES == COLUMN_KEYS


def test_saved_preferences_read_back_the_same(tmp_path):
    mine = Preferences(
        interval=2.5,
        sort="name",
        reverse=False,
        scope="ksm",
        columns=("name", "pid", "rss_bytes"),
        connect="qemu:///session",
    )
    path = save(mine, tmp_path / "sub" / "config.toml")
    assert load(path) == (mine, None)
    assert parse(dumps(DEFAULTS), path) == DEFAULTS
    assert not list(path.parent.glob(".config.*"))  # the temporary file was renamed into place


def test_no_file_means_the_defaults(tmp_path):
    assert load(tmp_path / "none.toml") == (DEFAULTS, None)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('interval = 1\nsort = "name\n', "line 2"),  # TOML's own error names the line
        ('interval = 1\n\nsort = "nosuch"\n', "line 3: sort must be one of the columns"),
        ('# a comment\ninterval = "abc"\n', "line 2: interval must be a number of seconds"),
        ("interval = 0.001\n", "line 1: interval must be between"),
        ("scope = 'all'\n", "line 1: scope must be 'qemu' or 'ksm'"),
        ("columns = ['name', 'bogus']\n", "line 1: columns has unknown columns: 'bogus'"),
        ("colour = 'red'\n", "line 1: colour is not a setting ksmtop knows"),
        ("reverse = 'yes'\n", "line 1: reverse must be true or false"),
    ],
)
def test_a_bad_file_gives_one_line_with_the_file_and_line_and_the_defaults(tmp_path, text, words):
    path = tmp_path / "config.toml"
    path.write_text(text)
    preferences, warning = load(path)
    assert preferences == DEFAULTS
    assert warning is not None and str(path) in warning and words in warning and "\n" not in warning
    assert warning.endswith("using the defaults")


def test_files_that_are_not_configs_are_refused_in_words(tmp_path):
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe\x00")
    assert "not UTF-8" in load(binary)[1]
    huge = tmp_path / "huge.toml"
    huge.write_text("# " + "x" * (config.MAX_CONFIG_BYTES + 10))
    assert "larger than" in load(huge)[1]
    assert "cannot read" in load(tmp_path)[1]  # a directory


def test_save_refuses_a_symlink(tmp_path):
    (tmp_path / "elsewhere").write_text("keep me")
    (tmp_path / "config.toml").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(OSError, match="not a regular file"):
        save(DEFAULTS, tmp_path / "config.toml")
    assert (tmp_path / "elsewhere").read_text() == "keep me"


def test_the_command_starts_with_a_bad_config_and_says_why_in_one_line(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text("interval = [1, 2]\n")
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "unused")}
    command = [sys.executable, "-m", "ksmtop", "--config", str(path), "--once", "--json", "--no-libvirt"]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip().splitlines() == [
        f"ksmtop: {path}, line 1: interval must be a number of seconds, not [1, 2]; using the defaults"
    ]
    assert done.stdout.startswith("{")
