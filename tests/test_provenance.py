"""A run records the commit its code came from and whether its code differed from it,
checked against git in a repository made here; a claim's record of the run says it as
``git describe --dirty`` does."""

import json
import subprocess
from pathlib import Path

import pytest
from conftest import fast_config

from finetune import engine
from finetune.engine.provenance import Checkout, git_checkout
from finetune.runs import run_record

read = git_checkout.__wrapped__  # uncached: the checkout as it is now


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=repo, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return done.stdout.strip()


def make_repo(root: Path) -> Path:
    """A committed checkout: pkg/a.py, notes.md, and .gitignore ignoring scratch/."""
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "a.py").write_text("x = 1\n")
    (root / "notes.md").write_text("notes\n")
    (root / ".gitignore").write_text("scratch/\n")
    git(root, "init", "-q")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "first")
    return root


def test_a_clean_checkout_is_its_commit_read_from_a_subfolder(tmp_path):
    repo = make_repo(tmp_path / "repo")
    assert read(repo / "pkg") == Checkout(git(repo, "rev-parse", "HEAD"), False)


def test_only_a_python_file_of_the_checkout_makes_it_dirty(tmp_path):
    repo = make_repo(tmp_path / "repo")
    (repo / "notes.md").write_text("edited\n")
    (repo / "scratch").mkdir()
    (repo / "scratch" / "try.py").write_text("ignored\n")
    assert read(repo / "pkg").dirty is False  # not Python; ignored
    (repo / "pkg" / "a.py").write_text("x = 2\n")
    assert read(repo / "pkg").dirty is True  # tracked, edited
    git(repo, "checkout", "-q", "--", "pkg/a.py")
    (repo / "b.py").write_text("new\n")
    assert read(repo / "pkg").dirty is True  # new at the top, not ignored, read from below


def test_a_process_keeps_the_checkout_it_first_read(tmp_path):
    repo = make_repo(tmp_path / "repo")
    first = git_checkout(repo)
    (repo / "pkg" / "a.py").write_text("x = 2\n")
    git(repo, "commit", "-q", "-am", "second")
    assert git_checkout(repo) == first != read(repo)


def test_outside_a_checkout_nothing_is_recorded(tmp_path):
    assert read(tmp_path) == Checkout(None, None)


@pytest.mark.parametrize(
    "recorded, commit",
    [({"git_commit": "abc", "git_dirty": False}, "abc"),
     ({"git_commit": "abc", "git_dirty": True}, "abc-dirty"),
     ({"git_commit": "abc"}, "abc"),  # a run recorded before git_dirty
     ({"git_commit": None, "git_dirty": None}, "")],
)  # fmt: skip
def test_a_claims_record_of_a_run_marks_a_dirty_commit(recorded, commit, tmp_path):
    run = tmp_path / "run"
    engine.train(fast_config(epochs=1), run, command="test")
    path = run / "config.json"
    record = {k: v for k, v in json.loads(path.read_text()).items() if k != "git_dirty"}
    path.write_text(json.dumps({**record, **recorded}))
    assert run_record(run)["commit"] == commit
