"""The vote store: record, change, retract, refuse forgeries, and stay exact under concurrent writers."""

import multiprocessing
import threading

import pytest

from trainer.store.votes import StoredReply, VoteError, VoteStore

PROMPT = [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]


def add(store: VoteStore, reply_id: str, session: str = "alice") -> None:
    store.add_reply(StoredReply(id=reply_id, session=session, prompt=PROMPT, completion=f"reply {reply_id}",
                          version="base"))


@pytest.fixture
def store(tmp_path) -> VoteStore:
    return VoteStore(tmp_path / "votes.sqlite3")


def test_wal_mode(store):
    import sqlite3

    assert sqlite3.connect(store.path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_record_change_retract(store):
    add(store, "r1")
    assert store.vote("r1", "alice", True) == "recorded"
    assert store.waiting_counts() == (1, 0)
    assert store.vote("r1", "alice", False) == "changed"
    assert store.waiting_counts() == (0, 1)
    assert store.vote("r1", "alice", False) == "retracted"  # the same thumb again
    assert store.waiting_counts() == (0, 0)
    assert store.vote("r1", "alice", None) == "nothing to retract"
    assert store.vote("r1", "alice", True) == "recorded"
    assert store.vote("r1", "alice", None) == "retracted"  # Gradio's empty value
    assert store.total_counts() == (0, 0)
    assert store.get_reply("r1").completion == "reply r1", "retracting a vote never deletes the reply"


def test_refuses_unknown_reply_foreign_voter_and_odd_labels(store):
    add(store, "r1", session="alice")
    with pytest.raises(VoteError, match="unknown or still being written"):
        store.vote("nope", "alice", True)
    with pytest.raises(VoteError, match="your own chat"):
        store.vote("r1", "mallory", True)
    with pytest.raises(VoteError, match="thumbs up"):
        store.vote("r1", "alice", "yes")
    assert store.total_counts() == (0, 0)


def test_votes_rows_join_the_reply(store):
    add(store, "r1")
    store.vote("r1", "alice", True)
    [vote] = store.votes(waiting=True)
    assert (vote.reply_id, vote.label, vote.prompt, vote.completion, vote.version) == \
        ("r1", True, PROMPT, "reply r1", "base")


def test_mark_trained_only_marks_the_revision_the_round_read(store):
    add(store, "r1")
    add(store, "r2")
    store.vote("r1", "alice", True)
    store.vote("r2", "alice", False)
    read = store.votes(waiting=True)
    store.vote("r2", "alice", True)  # changed while the round trained
    assert store.mark_trained(read, "v0001") == 1
    [still_waiting] = store.votes(waiting=True)
    assert (still_waiting.reply_id, still_waiting.label) == ("r2", True)
    assert [v.reply_id for v in store.votes(waiting=False)] == ["r1"]


def test_concurrent_threads_are_exact(store):
    for i in range(40):
        add(store, f"r{i}", session=f"s{i % 4}")
    errors = []

    def worker(voter: int) -> None:
        try:
            for i in range(voter, 40, 4):
                store.vote(f"r{i}", f"s{voter}", i % 3 != 0)
                store.vote(f"r{i}", f"s{voter}", i % 3 != 0)  # retract
                store.vote(f"r{i}", f"s{voter}", i % 3 != 0)  # and vote again
        except Exception as err:  # surfaced below
            errors.append(err)

    threads = [threading.Thread(target=worker, args=(v,)) for v in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    ups = sum(1 for i in range(40) if i % 3 != 0)
    assert store.total_counts() == (ups, 40 - ups)


def _process_worker(path: str, first: int) -> None:
    store = VoteStore(path)
    for i in range(first, first + 25):
        store.add_reply(StoredReply(id=f"p{i}", session="s", prompt=PROMPT, completion="c", version="base"))
        store.vote(f"p{i}", "s", i % 2 == 0)


def test_concurrent_processes_are_exact(store):
    context = multiprocessing.get_context("spawn")
    procs = [context.Process(target=_process_worker, args=(str(store.path), k * 25)) for k in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert store.total_counts() == (38, 37)


def two_replies(store, session="alice", prompt=None, ids=("a1", "b1")):
    prompt = prompt or [{"role": "user", "content": "Review my paper."}]
    for reply_id, text in zip(ids, ("Reject: no baselines.", "Accept, lovely.")):
        store.add_reply(StoredReply(id=reply_id, session=session, prompt=prompt, completion=text, version="v0001"))


def test_a_pick_is_stored_as_a_pair_and_a_change_of_mind_replaces_it(tmp_path):
    store = VoteStore(tmp_path / "votes.sqlite3")
    two_replies(store)
    assert store.pick("c1", "a1", "b1", "alice", "a") == "recorded"
    assert store.pick("c1", "a1", "b1", "alice", "a") == "unchanged"
    [pick] = store.picks(waiting=True)
    assert (pick.chosen, pick.rejected, pick.revision) == ("Reject: no baselines.", "Accept, lovely.", 1)
    store.mark_picks_trained([pick], "v0002")
    assert store.waiting_pick_counts() == (0, 0)
    assert store.pick("c1", "a1", "b1", "alice", "neither") == "changed"
    [pick] = store.all_picks()
    assert (pick.choice, pick.revision, pick.chosen) == ("neither", 2, None)
    assert store.waiting_pick_counts() == (0, 1), "a changed pick waits for training again"


def test_forged_picks_are_refused_and_change_nothing(tmp_path):
    store = VoteStore(tmp_path / "votes.sqlite3")
    two_replies(store)
    two_replies(store, session="bob", ids=("a2", "b2"))
    two_replies(store, prompt=[{"role": "user", "content": "Another paper."}], ids=("a3", "b3"))
    with pytest.raises(VoteError, match="own chat"):
        store.pick("c1", "a1", "b1", "bob", "a")
    with pytest.raises(VoteError, match="finished"):
        store.pick("c1", "a1", "nope", "alice", "a")
    with pytest.raises(VoteError, match="same message"):
        store.pick("c1", "a1", "a3", "alice", "a")
    with pytest.raises(VoteError, match="one of a, b, neither"):
        store.pick("c1", "a1", "b1", "alice", "both")
    store.pick("c1", "a1", "b1", "alice", "a")
    two_replies(store, ids=("a4", "b4"))
    with pytest.raises(VoteError, match="other replies"):
        store.pick("c1", "a4", "b4", "alice", "b")
    assert [(p.pair_id, p.choice) for p in store.all_picks()] == [("c1", "a")]


def test_a_data_dir_that_cannot_lock_is_refused_before_anything_is_written(tmp_path, monkeypatch):
    """A mounted bucket (no POSIX locks, no atomic rename) would corrupt SQLite's WAL: refused, with what to do."""
    import errno
    import fcntl

    from trainer.store.disk import UnsafeDataDir

    VoteStore(tmp_path / "local" / "votes.db")  # a local disk passes

    def no_locks(handle, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "lockf", no_locks)
    with pytest.raises(UnsafeDataDir, match="cannot hold the votes database.*No locks available.*HUB_REPO"):
        VoteStore(tmp_path / "bucket" / "votes.db")
    assert list((tmp_path / "bucket").iterdir()) == [], "no database, no probe left behind"


def test_a_store_from_before_voters_were_kept_reads_by_name(tmp_path):
    """A database an older app wrote (replies without voter_id and address) opens, and its rows read as today's."""
    import sqlite3
    path = tmp_path / "votes.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE replies (id TEXT PRIMARY KEY, session TEXT NOT NULL, prompt TEXT NOT NULL, "
                   "completion TEXT NOT NULL, version TEXT NOT NULL, stopped INTEGER NOT NULL, "
                   "created_at REAL NOT NULL)")
        db.execute("INSERT INTO replies VALUES ('r1', 'alice', '[]', 'old reply', 'v0001', 0, 1.0)")
    store = VoteStore(path)
    assert store.get_reply("r1") == StoredReply(id="r1", session="alice", prompt=[], completion="old reply",
                                                version="v0001", created_at=1.0)
    assert store.vote("r1", "alice", True) == "recorded"
    (vote,) = store.votes(waiting=True)
    assert (vote.reply_id, vote.label, vote.completion, vote.identity) == ("r1", True, "old reply", "alice")
    assert store.waiting_counts() == (1, 0) and store.counts_by_version() == {"v0001": (1, 0)}
    assert store.waiting_voters() == [(True, "alice", "")] and store.trained_by_voter(["v0002"]) == []


def test_votes_kept_for_the_gate_are_held_out_not_trained_in_and_older_stores_move_them(tmp_path):
    import sqlite3
    path = tmp_path / "votes.sqlite3"
    store = VoteStore(path)
    for reply_id in ("r1", "r2", "r3"):
        add(store, reply_id)
        store.vote(reply_id, "alice", True)
    votes = store.votes(waiting=True)
    assert store.keep_for_gate(votes[:1]) == 1 and store.mark_trained(votes[1:2], "v0002") == 1
    assert [v.reply_id for v in store.gate_votes()] == ["r1"] and store.waiting_counts() == (1, 0)
    assert [v.reply_id for v in store.votes(waiting=False)] == ["r2"], "replay reads trained votes only"
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT trained_in FROM votes WHERE reply_id = 'r1'").fetchone() == (None,)
        # As a store from before 2026-12 kept it: the gate's marker in trained_in, no held_out column.
        db.execute("ALTER TABLE votes DROP COLUMN held_out")
        db.execute("UPDATE votes SET trained_in = 'held-out' WHERE reply_id = 'r1'")
    reopened = VoteStore(path)
    assert [v.reply_id for v in reopened.gate_votes()] == ["r1"] and reopened.waiting_counts() == (1, 0)
    assert [v.reply_id for v in reopened.votes(waiting=False)] == ["r2"]
    assert reopened.vote("r1", "alice", False) == "changed" and reopened.waiting_counts() == (1, 1), \
        "a changed vote waits again, out of the gate's"
