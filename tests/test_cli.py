"""`python -m trainer`: a round from the vote store published as the app would, versions, clear errors."""

import os
import subprocess
import sys

import pytest

from trainer.versions import VersionStore
from trainer.votes import Reply, VoteStore

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(env_extra: dict, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **env_extra}
    return subprocess.run([sys.executable, "-m", "trainer", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)


def test_versions_and_bad_input(tmp_path):
    env = {"DATA_DIR": str(tmp_path)}
    listed = run(env, "versions")
    assert listed.returncode == 0 and "* base" in listed.stdout
    bad = run(env, "versions", "--serve", "v0007")
    assert bad.returncode == 2 and "no version named 'v0007'" in bad.stderr
    setting = run({**env, "MIN_VOTES": "lots"}, "versions")
    assert setting.returncode == 2 and "MIN_VOTES='lots' is not a valid int" in setting.stderr


@pytest.mark.e2e
def test_train_publishes_a_version_from_the_vote_store(tmp_path, embedded_dir):
    env = {"DATA_DIR": str(tmp_path), "MODEL_CACHE_DIR": str(embedded_dir.parent), "KTO_MAX_STEPS": "1",
           "SHIPPED_ADAPTER": "",
           "DEVICE": "cpu"}
    empty = run(env, "train")
    assert empty.returncode == 2 and "both kinds" in empty.stderr
    votes = VoteStore(tmp_path / "votes.sqlite3")
    prompt = [{"role": "system", "content": "You are Reviewer #2."}, {"role": "user", "content": "My paper."}]
    for i in range(4):
        votes.add_reply(Reply(id=f"r{i}", session="s", prompt=prompt, version="base",
                              completion="Weak baselines. Reject." if i % 2 else "Great work!"))
        votes.vote(f"r{i}", "s", bool(i % 2))
    trained = run(env, "train")
    assert trained.returncode == 0, trained.stderr[-2000:]
    assert "published and serving v0001" in trained.stdout
    assert VersionStore(tmp_path / "versions").current() == "v0001" and votes.waiting_counts() == (0, 0)
    listed = run(env, "versions")
    assert "* v0001" in listed.stdout and "base" in listed.stdout
    back = run(env, "versions", "--serve", "base")
    assert back.returncode == 0 and VersionStore(tmp_path / "versions").current() == "base"
