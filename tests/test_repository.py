"""The repository works on a fresh clone: nothing tracked points into one machine.

A tracked ``.venv`` symlink into a CI cache once made ``make train`` fail on every fresh
clone ("File exists: '.venv'"), while CI, which kept its virtualenv elsewhere, stayed green.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# A path into one machine's caches or home: a user's cache folder, a virtualenv's site-packages,
# pip's or linzoo CI's cache. Records in docs/runs name data folders (/work/shared/data): those
# are facts about a past run, not paths a command reads.
MACHINE_LOCAL = re.compile(
    r"(?:/root|/home/[\w.-]+|/Users/[\w.-]+|~)/\.cache/"
    r"|/(?:root|home/[\w.-]+|Users/[\w.-]+)/[\w./-]*site-packages"
    r"|linzoo-ci/venv[-]"
)


def tracked_files() -> list[tuple[str, str]]:
    """``(mode, path)`` of every file git tracks in this clone."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git clone (an installed wheel or an export): nothing tracked to check")
    listing = subprocess.run(["git", "ls-files", "-s", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    entries = []
    for record in listing.decode().split("\0"):
        if record:
            meta, path = record.split("\t", 1)
            entries.append((meta.split()[0], path))
    return entries


def test_no_tracked_file_is_a_symlink() -> None:
    links = [path for mode, path in tracked_files() if mode == "120000"]
    assert not links, f"tracked symlinks break fresh clones (git rm --cached them): {links}"


def test_the_virtualenv_is_ignored_in_every_form() -> None:
    assert all(not path.startswith(".venv") for _, path in tracked_files())
    for form in (".venv", ".venv/", ".venv/bin/python"):  # a folder, a symlink or a file
        ignored = subprocess.run(["git", "check-ignore", "-q", "--no-index", form], cwd=ROOT)
        assert ignored.returncode == 0, f"{form} is not ignored by .gitignore"


def test_no_tracked_file_names_a_machine_local_cache() -> None:
    found = []
    for mode, path in tracked_files():
        file = ROOT / path
        if mode == "120000" or not file.is_file() or file.stat().st_size > 2_000_000:
            continue
        data = file.read_bytes()
        if b"\0" in data[:8192]:  # binary: checkpoints, pictures
            continue
        for number, line in enumerate(data.decode(errors="replace").splitlines(), start=1):
            if MACHINE_LOCAL.search(line):
                found.append(f"{path}:{number}: {line.strip()[:120]}")
    assert not found, "tracked files name a machine-local cache path:\n" + "\n".join(found)


@pytest.mark.parametrize(
    "line",
    [
        # Built from pieces, so that this file names no such path itself.
        "/root/" + ".cache/" + "linzoo-ci/" + "venv-50870d039fa0b603",
        "see /home/ada/" + ".cache/pip",
        "/Users/x/lib/python3.11/" + "site-packages/y",
    ],
)
def test_the_cache_pattern_catches_what_broke_clones(line: str) -> None:
    assert MACHINE_LOCAL.search(line)


def test_the_cache_pattern_leaves_run_records_alone() -> None:
    assert not MACHINE_LOCAL.search("data.root: /work/shared/data  and  --out /tmp/bench.json")
