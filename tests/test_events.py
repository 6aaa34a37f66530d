"""The vote store's outbox and event files: every change becomes an event in the same transaction, and
replaying the files into an empty store rebuilds it row for row (votes, changes, retractions, marks)."""

import json
import sqlite3

from trainer.store.events import EventWriter, event_files, read_events
from trainer.store.votes import KEPT_FOR_GATE, StoredReply, VoteStore

PROMPT = [{"role": "system", "content": "You are Reviewer #2."}, {"role": "user", "content": "My paper."}]


def table(path, name):
    with sqlite3.connect(path) as db:
        return sorted(db.execute(f"SELECT * FROM {name}").fetchall())


def busy_store(path) -> VoteStore:
    """A store that has seen every kind of change: votes, a change of mind, retractions, marks, gate marks."""
    votes = VoteStore(path)
    for i in range(6):
        votes.add_reply(StoredReply(id=f"r{i}", session="alice" if i < 4 else "bob", prompt=PROMPT,
                              completion=f"Reply {i} — ünïcode", version="v0001", stopped=i == 5))
    votes.vote("r0", "alice", True)
    votes.vote("r1", "alice", False)
    votes.vote("r2", "alice", True)
    votes.vote("r2", "alice", False)        # changed: revision 2
    votes.vote("r3", "alice", True)
    votes.vote("r3", "alice", True)         # the same thumb again: retracted
    votes.vote("r4", "bob", False)
    votes.keep_for_gate([v for v in votes.votes(waiting=True) if v.reply_id == "r4"])
    votes.mark_trained([v for v in votes.votes(waiting=True) if v.reply_id in ("r0", "r1")], "v0002")
    votes.vote("r1", "alice", True)         # changed after its round: waits again
    votes.vote("r5", "bob", True)
    # Picks: one trained, then a change of mind (waits again); one kept for the gate; one "both bad".
    for i in range(6, 12):
        votes.add_reply(StoredReply(id=f"r{i}", session="carol", prompt=PROMPT, completion=f"Pair reply {i}",
                              version="v0001"))
    votes.pick("c1", "r6", "r7", "carol", "a")
    votes.mark_picks_trained(votes.picks(waiting=True), "v0002")
    votes.pick("c1", "r6", "r7", "carol", "b")
    votes.pick("c2", "r8", "r9", "carol", "b")
    votes.keep_picks_for_gate([p for p in votes.picks(waiting=True) if p.pair_id == "c2"])
    votes.pick("c3", "r10", "r11", "carol", "neither")
    return votes


def test_replaying_the_event_files_rebuilds_the_store_row_for_row(tmp_path):
    original = busy_store(tmp_path / "a" / "votes.sqlite3")
    writer = EventWriter(original, tmp_path / "a")
    assert writer.pending() == original.last_event_seq() > 0
    assert writer.write() == original.last_event_seq()
    assert writer.pending() == 0 and writer.write() == 0

    restored = VoteStore(tmp_path / "b" / "votes.sqlite3")
    restored.apply_events(read_events(event_files(tmp_path / "a")))
    for name in ("replies", "votes", "picks"):
        assert table(restored.path, name) == table(original.path, name)
    assert restored.waiting_pick_counts() == (1, 1)  # c1 (changed after its round), c3 (both bad)
    assert [p.pair_id for p in restored.gate_picks()] == ["c2"]
    assert restored.waiting_counts() == original.waiting_counts() == (2, 1)  # up: r1, r5; down: r2
    assert [v.reply_id for v in restored.gate_votes()] == ["r4"]
    assert restored.origin != original.origin  # its own changes from here on carry its own origin


def test_events_are_read_once_in_store_order_and_a_truncated_last_line_is_skipped(tmp_path):
    first = busy_store(tmp_path / "a" / "votes.sqlite3")
    EventWriter(first, tmp_path / "a").write()
    [path] = event_files(tmp_path / "a")
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    # The same events again in a later file (a crash before the written position was saved), and a
    # killed writer's half line.
    (path.parent / "zz-later-0000.jsonl").write_text("".join(lines[:5]) + lines[5][:20], encoding="utf-8")

    events = read_events(event_files(tmp_path / "a"))
    assert [e.seq for e in events] == list(range(1, len(lines) + 1))

    second = VoteStore(tmp_path / "b" / "votes.sqlite3")
    second.apply_events(events)
    second.vote("r5", "bob", False)
    EventWriter(second, tmp_path / "a").write()  # into the same folder, as on the Hub
    merged = read_events(event_files(tmp_path / "a"))
    assert [e.origin for e in merged][-1] == second.origin and merged[-1].kind == "vote"
    third = VoteStore(tmp_path / "c" / "votes.sqlite3")
    third.apply_events(merged)
    assert table(third.path, "votes") == table(second.path, "votes")


def test_a_store_made_before_the_outbox_logs_its_rows_once(tmp_path):
    path = tmp_path / "old" / "votes.sqlite3"
    original = busy_store(path)
    with sqlite3.connect(path) as db:  # as an older app left it: no outbox
        db.execute("DROP TABLE events")
        db.execute("DROP TABLE store_meta")
    reopened = VoteStore(path)
    EventWriter(reopened, tmp_path / "old").write()
    restored = VoteStore(tmp_path / "new" / "votes.sqlite3")
    restored.apply_events(read_events(event_files(tmp_path / "old")))
    for name in ("replies", "votes", "picks"):
        assert table(restored.path, name) == table(original.path, name)
    assert restored.waiting_pick_counts() == (1, 1)  # c1 (changed after its round), c3 (both bad)
    assert [p.pair_id for p in restored.gate_picks()] == ["c2"]
    assert VoteStore(path).last_event_seq() == reopened.last_event_seq()  # logged once, not at every open


def test_an_event_exists_only_for_a_committed_change(tmp_path):
    votes = busy_store(tmp_path / "votes.sqlite3")
    before = votes.last_event_seq()
    for bad in (lambda: votes.vote("r0", "mallory", True), lambda: votes.vote("nope", "alice", True)):
        try:
            bad()
        except ValueError:
            pass
    assert votes.last_event_seq() == before
    kinds = [e.kind for e in votes.events_after(0)]
    assert kinds.count("mark") == 2 and kinds.count("retract") == 1 and kinds.count("reply") == 12
    assert kinds.count("pick") == 4 and kinds.count("mark_picks") == 2
    marks = [e.body for e in votes.events_after(0) if e.kind == "mark"]
    assert marks[0]["version"] == KEPT_FOR_GATE and json.dumps(marks[1]["votes"]).count("r0") == 1
