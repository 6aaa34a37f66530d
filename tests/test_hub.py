"""Votes and versions kept on the Hub (store/hub.py), through the real huggingface_hub client and a local Hub
server: pushed and restored into a fresh DATA_DIR row for row; the Hub away for a while loses nothing; no
token or no repo is local-only mode, said in the status; a fresh start the Hub cannot answer serves, takes
votes, holds rounds, and serves the Hub's version once it answers."""

import json
import time

import pytest

import trainer.store.hub
from tests.test_events import busy_store, table
from trainer.config import HubSettings
from trainer.contracts import GateReport, Scores, VersionMeta
from trainer.loop import RoundHeld
from trainer.runtime import Runtime
from trainer.store.events import event_files, read_events
from trainer.store.hub import PUSHED_KEY, HubSync
from trainer.store.versions import VersionStore
from trainer.store.votes import StoredReply, VoteStore
from trainer.ui.status import hub_line, status_line

REPO = "tester/reviewer2-data"


def hub_settings(server, **changes) -> HubSettings:
    return HubSettings(**{"repo": REPO, "token": "hf_test", "endpoint": server.url, "push_seconds": 3600, **changes})


def publish(versions: VersionStore, passed: bool, weights: bytes) -> str:
    with versions.staging() as staging:
        (staging / "adapter_config.json").write_text(json.dumps({"r": 8}))
        (staging / "adapter_model.safetensors").write_bytes(weights)
        scores = Scores(version="candidate", auc=0.9, margin=1.0, kl=0.5, distinct2=0.8, repetition=0.0)
        gate = GateReport(passed=passed, reasons=[] if passed else ["AUC fell"], candidate=scores, serving=scores,
                          rows=8)
        return versions.publish(staging, VersionMeta(parent="base", gate=gate))


def stores(folder):
    return VoteStore(folder / "votes.sqlite3"), VersionStore(folder / "versions")


def synced(server, folder, **changes) -> HubSync:
    votes, versions = stores(folder)
    sync = HubSync(hub_settings(server, **changes), folder, votes, versions)
    versions.on_change = sync.push_soon
    sync.start()
    return sync


def test_pushed_votes_and_versions_come_back_on_a_fresh_disk_row_for_row(hub_server, tmp_path, wait_for):
    first = tmp_path / "first"
    busy_store(first / "votes.sqlite3")
    sync = synced(hub_server, first)
    assert sync.ready.is_set() and sync.status().restored_events == 0
    served = publish(sync.versions, True, b"weights one" * 1000)
    sync.versions.set_current(served, reason="round")
    publish(sync.versions, False, b"weights two" * 1000)  # rejected by its gate: kept, and pushed too
    sync.votes.vote("r5", "bob", False)
    assert sync.flush()
    assert sync.status().events_waiting == 0 and sync.status().state == "synced"
    on_hub = hub_server.files("dataset", REPO)
    assert "votes.sqlite3" not in " ".join(on_hub) and "versions/v0002/meta.json" in on_hub
    assert any(path.startswith("events/") for path in on_hub)
    sync.close()

    second = tmp_path / "second"
    again = synced(hub_server, second)
    status = again.status()
    assert again.ready.is_set() and status.restored_versions == 2 and status.restored_events > 0
    for name in ("replies", "votes"):
        assert table(again.votes.path, name) == table(sync.votes.path, name)
    assert again.versions.current() == "v0001" and again.versions.names() == ["v0001", "v0002"]
    assert again.versions.get("v0002").meta.gate.passed is False
    assert (second / "versions" / "v0002" / "adapter_model.safetensors").read_bytes() == b"weights two" * 1000
    assert [e["event"] for e in again.versions.history()] == ["publish", "serve", "publish"]
    # It carries on appending: its own changes go to files of its own, beside the first process's.
    again.votes.vote("r4", "bob", True)
    assert again.flush()
    assert len([p for p in hub_server.files("dataset", REPO) if p.startswith("events/")]) == 2
    third = synced(hub_server, tmp_path / "third")
    assert table(third.votes.path, "votes") == table(again.votes.path, "votes")
    for each in (again, third):
        each.close()


def test_the_hub_away_for_a_while_loses_nothing(hub_server, tmp_path, wait_for):
    sync = synced(hub_server, tmp_path / "a", push_seconds=1)
    wait_for(lambda: sync.status().state == "synced", timeout=30)
    hub_server.down = True
    votes = busy_store(tmp_path / "a" / "votes.sqlite3")  # the same database file, written while it is down
    status = wait_for(lambda: (s := sync.status()).state == "retrying" and s, timeout=60)
    assert status.events_waiting == votes.last_event_seq() and "retrying" in hub_line(status)
    assert "503" in status.detail
    votes.vote("r5", "bob", False)  # still recorded locally
    hub_server.down = False
    wait_for(lambda: sync.status().state == "synced" and sync.status().events_waiting == 0, timeout=60)
    restored = synced(hub_server, tmp_path / "b")
    for name in ("replies", "votes"):
        assert table(restored.votes.path, name) == table(votes.path, name)
    sync.close()
    restored.close()


@pytest.mark.parametrize("changes, state, says", [({"token": ""}, "local-only", "no HF_TOKEN"),
                                                  ({"repo": ""}, "off", "no HUB_REPO")])
def test_without_a_token_or_a_repo_the_app_is_local_only_and_says_so(hub_server, tmp_path, changes, state, says):
    sync = synced(hub_server, tmp_path, **changes)
    busy_store(tmp_path / "votes.sqlite3")
    assert sync.ready.is_set() and not sync.flush()
    status = sync.status()
    assert status.state == state and says in status.detail and "Local only" in hub_line(status)
    assert not (hub_server.root / "datasets").exists()  # nothing was sent anywhere
    sync.close()


def test_a_wrong_token_never_counts_as_an_empty_hub(hub_server, tmp_path):
    busy_store(tmp_path / "a" / "votes.sqlite3")
    synced(hub_server, tmp_path / "a").close()
    wrong = synced(hub_server, tmp_path / "b", token="hf_wrong")
    assert not wrong.ready.is_set() and wrong.status().state == "restoring" and "401" in wrong.status().detail
    assert wrong.votes.meta("hub_repo") is None  # it will read the Hub before it ever pushes
    wrong.close()


def test_a_fresh_start_the_hub_cannot_answer_serves_holds_rounds_then_serves_the_hubs_version(
        hub_server, settings, tiny_base, vote_on_replies, wait_for, tmp_path, monkeypatch):
    settings.hub = hub_settings(hub_server)
    first = Runtime(settings, tiny_base)
    vote_on_replies(first, 4)
    first.loop.run_round()
    assert first.server.current.name == "v0001"
    first.close()  # flushes: the round's version and every vote are on the Hub
    assert first.votes.meta(PUSHED_KEY) == str(first.votes.last_event_seq())

    monkeypatch.setattr("trainer.store.hub.RETRY_SECONDS", (0.5, 1.0))
    hub_server.down = True
    settings.data_dir = tmp_path / "fresh"
    second = Runtime(settings, tiny_base)
    assert second.server.current.name == "base" and "reading it back" in status_line(second.status())
    session = vote_on_replies(second, 2)  # chat and votes go on
    with pytest.raises(RoundHeld, match="not been read back"):
        second.admin.train_now("sesame")
    assert not second.loop.ready()
    hub_server.down = False
    wait_for(lambda: second.server.current.name == "v0001", timeout=30)
    assert second.votes.total_counts() == (3, 3)  # the Hub's 4 votes beside the 2 cast meanwhile
    assert session.reply_ids and second.status().hub.restored_versions == 1
    second.close()


def test_push_and_pull_from_the_command_line(hub_server, tmp_path):
    from tests.test_cli import run

    env = {"HUB_REPO": REPO, "HF_TOKEN": "hf_test", "HF_ENDPOINT": hub_server.url, "HF_HUB_OFFLINE": "0"}
    source = tmp_path / "source"
    votes = busy_store(source / "votes.sqlite3")
    versions = VersionStore(source / "versions")
    versions.set_current(publish(versions, True, b"w" * 4000), reason="round")
    pushed = run({**env, "DATA_DIR": str(source)}, "push")
    assert pushed.returncode == 0, pushed.stderr[-2000:]
    assert "versions/v0001/adapter_model.safetensors" in hub_server.files("dataset", REPO)

    target = tmp_path / "target"
    pulled = run({**env, "DATA_DIR": str(target)}, "pull")
    assert pulled.returncode == 0, pulled.stderr[-2000:]
    assert "and 1 versions" in pulled.stdout and "current version: v0001" in pulled.stdout
    for name in ("replies", "votes"):
        assert table(target / "votes.sqlite3", name) == table(votes.path, name)
    assert "already read" in run({**env, "DATA_DIR": str(target)}, "pull").stdout  # never replayed twice
    no_token = run({"HUB_REPO": REPO, "DATA_DIR": str(target)}, "push")
    assert no_token.returncode == 2 and "HF_TOKEN" in no_token.stderr
    wrong = run({**env, "HF_TOKEN": "hf_wrong", "DATA_DIR": str(tmp_path / "other")}, "pull")
    assert wrong.returncode == 2 and "401" in wrong.stderr


def test_pushes_keep_to_the_hours_budget_and_the_last_flush_takes_the_rest(hub_server, tmp_path, wait_for):
    """Pushes due every 0.2 s with votes coming in: no more commits than HUB_MAX_COMMITS_PER_HOUR, the
    status says why it waits, and the SIGTERM flush (outside the budget) takes everything."""
    sync = synced(hub_server, tmp_path / "a", push_seconds=0.2, max_commits_per_hour=2)
    for n in range(10):
        sync.votes.add_reply(StoredReply(id=f"r{n}", session="alice", prompt=[{"role": "user", "content": "p"}],
                                   completion="Reject.", version="base"))
        sync.votes.vote(f"r{n}", "alice", n % 2 == 0)
        time.sleep(0.3)
    status = wait_for(lambda: (s := sync.status()).state == "waiting" and s, timeout=10)
    assert len(hub_server.commits) == 2 and status.commits_last_hour == 2 and status.events_waiting > 0
    assert "HUB_MAX_COMMITS_PER_HOUR" in status.detail and status.keeps_votes
    assert sync.flush(timeout=10) and sync.status().events_waiting == 0 and len(hub_server.commits) == 3
    restored = synced(hub_server, tmp_path / "b")
    assert table(restored.votes.path, "votes") == table(sync.votes.path, "votes")
    for each in (sync, restored):
        each.close()


def test_a_publish_its_serving_and_its_marks_go_up_in_one_commit(hub_server, tmp_path, monkeypatch, wait_for):
    monkeypatch.setattr(trainer.store.hub, "PUSH_COALESCE_SECONDS", 1.0)
    sync = synced(hub_server, tmp_path / "a")
    wait_for(lambda: sync.connected.is_set(), timeout=10)
    before = len(hub_server.commits)
    name = publish(sync.versions, True, b"weights" * 100)  # each of these asks for a push
    sync.versions.set_current(name, reason="round")
    sync.push_soon()  # the round's marks
    wait_for(lambda: len(hub_server.commits) > before, timeout=10)
    time.sleep(1.5)
    [commit] = hub_server.commits[before:]
    assert "versions/CURRENT" in commit["paths"] and f"versions/{name}/meta.json" in commit["paths"]
    sync.close()


def test_a_429_puts_pushes_off_for_its_retry_after_and_loses_nothing(hub_server, tmp_path, wait_for):
    hub_server.commit_limit = (1, 3.0)  # one commit per 3 s
    sync = synced(hub_server, tmp_path / "a", push_seconds=0.2)
    busy_store(tmp_path / "a" / "votes.sqlite3")
    wait_for(lambda: len(hub_server.commits) == 1, timeout=10)
    sync.votes.vote("r5", "bob", False)
    status = wait_for(lambda: (s := sync.status()).state == "retrying" and s, timeout=10)
    assert "429" in status.detail and "asked to wait" in status.detail
    assert len(hub_server.refused) == 1, "pushes due every 0.2 s wait out the Retry-After instead of hammering"
    wait_for(lambda: sync.status().state == "synced" and sync.status().events_waiting == 0, timeout=15)
    assert len(hub_server.refused) == 1 and len(hub_server.commits) == 2

    sync.votes.vote("r5", "bob", True)  # then SIGTERM within the next window: the flush waits it out
    hub_server.commit_limit = (1, 2.0)
    assert sync.flush(timeout=10) and sync.status().events_waiting == 0
    restored = synced(hub_server, tmp_path / "b")
    assert table(restored.votes.path, "votes") == table(sync.votes.path, "votes")
    for each in (sync, restored):
        each.close()


def test_shutdown_takes_no_new_message_ends_the_replies_in_flight_then_flushes_them(
        hub_server, settings, tiny_base, wait_for, tmp_path):
    """SIGTERM's order: no new chat, the replies in flight end (stopped after the grace), are stored, and one
    flush takes them to the Hub."""
    import threading

    import torch

    from trainer.serve.chat import ChatError

    settings.hub = hub_settings(hub_server)
    settings.chat.max_new_tokens, settings.chat.temperature = 1500, 1.0  # a long reply, in flight at SIGTERM
    torch.manual_seed(3)
    runtime = Runtime(settings, tiny_base)
    wait_for(lambda: runtime.hub.connected.is_set(), timeout=10)
    session = runtime.chat.new_session()
    stream = runtime.chat.reply(session, "A long paper.", "alice")
    next(stream)
    closing = threading.Thread(target=runtime.close, kwargs={"grace": 0.05})
    closing.start()
    wait_for(lambda: runtime.chat._closing, timeout=5)
    with pytest.raises(ChatError, match="restarting"):
        list(runtime.chat.reply(runtime.chat.new_session(), "Another paper.", "bob"))
    list(stream)  # the visitor's stream ends with the stop
    closing.join(30)
    reply = runtime.votes.get_reply(session.reply_ids[2])
    assert reply is not None and reply.stopped
    hub = VoteStore(tmp_path / "hub-check" / "votes.sqlite3")
    hub.apply_events(read_events(event_files(hub_server.repo_dir("dataset", REPO) / "files")))
    assert hub.get_reply(reply.id) == reply, "stored before the one flush, and flushed"
