"""The reply and vote store: SQLite in WAL mode, safe for concurrent Gradio workers and the trainer.

Votes are the asset: nothing here deletes a reply, and a vote leaves only when its voter retracts
it. A vote is keyed by (reply id, voter); clicking the same thumb again retracts it, the other
thumb changes it. A vote waits for training until a round that read it publishes; a vote changed
after a round read it waits again (the round only marks the revision it saw).

Picks are the paired form: of two replies to the same message (a comparison), the voter picks the
better one, or neither ("both bad"); keyed by (comparison, voter), a change of mind replaces it.

Every change is also written, in the same transaction, to the `events` table: an outbox of
append-only events (a reply, a vote or a pick as it now stands, a retraction, what a round marked) from
which `store/events.py` writes the files the Hub keeps, and from which `apply_events` rebuilds this
store exactly on a fresh disk. An event exists if and only if its change was committed.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from ..contracts import PICK_CHOICES, Pick, StoredReply, TrainerError, Vote
from .disk import check_local_disk

SCHEMA = """
CREATE TABLE IF NOT EXISTS replies (
    id         TEXT PRIMARY KEY,
    session    TEXT NOT NULL,
    prompt     TEXT NOT NULL,      -- JSON list of chat messages the model was given
    completion TEXT NOT NULL,
    version    TEXT NOT NULL,      -- adapter version that wrote the reply
    stopped    INTEGER NOT NULL,   -- 1 when the visitor stopped generation early
    created_at REAL NOT NULL,
    voter_id   TEXT NOT NULL DEFAULT '',  -- who may vote on it, hashed (serve/voters.py); '' = the session
    address    TEXT NOT NULL DEFAULT ''   -- the client's address, hashed; '' = unknown
);
CREATE TABLE IF NOT EXISTS votes (
    reply_id   TEXT NOT NULL REFERENCES replies(id),
    voter      TEXT NOT NULL,
    label      INTEGER NOT NULL,   -- 1 thumbs up, 0 thumbs down
    revision   INTEGER NOT NULL,   -- bumped on every change; a round marks only what it read
    trained_in TEXT,               -- version whose round used this revision; NULL while waiting
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    held_out   INTEGER NOT NULL DEFAULT 0,  -- 1: this revision is kept out of training for the gate
    PRIMARY KEY (reply_id, voter)
);
CREATE INDEX IF NOT EXISTS votes_waiting ON votes (trained_in);
CREATE TABLE IF NOT EXISTS picks (
    pair_id    TEXT NOT NULL,      -- one comparison: two replies to the same message
    voter      TEXT NOT NULL,
    reply_a    TEXT NOT NULL REFERENCES replies(id),
    reply_b    TEXT NOT NULL REFERENCES replies(id),
    choice     TEXT NOT NULL,      -- a | b | neither ("both bad")
    revision   INTEGER NOT NULL,   -- bumped on every change of mind; a round marks only what it read
    trained_in TEXT,               -- as votes.trained_in
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    held_out   INTEGER NOT NULL DEFAULT 0,  -- as votes.held_out
    PRIMARY KEY (pair_id, voter)
);
CREATE TABLE IF NOT EXISTS events (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    at         REAL NOT NULL,
    kind       TEXT NOT NULL,      -- reply | vote | retract | mark | pick | mark_picks
    body       TEXT NOT NULL       -- JSON: the row as written (see _log)
);
CREATE TABLE IF NOT EXISTS store_meta (
    key        TEXT PRIMARY KEY,   -- origin (this store's id in event files), exported_seq, hub_repo, identity_key
    value      TEXT NOT NULL
);
"""


# The version a "mark" event names for votes (picks) kept out of training for the gate (its "gate votes"; see
# gate/holdout.py): the event files' format. In the tables they are `held_out`; stores before 2026-12 kept this
# value in `trained_in`, and opening one moves it.
KEPT_FOR_GATE = "held-out"


def waiting_condition(table: str = "") -> str:
    """The SQL condition of a vote (pick) that waits: neither trained on nor kept for the gate; `table` is the
    alias a query gives the votes or picks table."""
    prefix = f"{table}." if table else ""
    return f"{prefix}trained_in IS NULL AND {prefix}held_out = 0"


class VoteError(TrainerError, ValueError):
    """A vote that cannot be recorded; the message is fit to show the visitor."""


REPLY_COLUMNS = "id, session, prompt, completion, version, stopped, created_at, voter_id, address"


@dataclass(frozen=True)
class Event:
    """One change to the store, as the outbox and the event files carry it."""

    origin: str   # the store that wrote it (a fresh store gets a new one)
    seq: int      # its order within that store
    at: float
    kind: str
    body: dict


class VoteStore:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        check_local_disk(self.path.parent)  # UnsafeDataDir on a bucket mount, before SQLite writes a byte there
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)
            columns = {row["name"] for row in db.execute("PRAGMA table_info(replies)")}
            for column in ("voter_id", "address"):  # a store from before voters were kept
                if column not in columns:
                    db.execute(f"ALTER TABLE replies ADD COLUMN {column} TEXT NOT NULL DEFAULT ''")
            for table in ("votes", "picks"):  # a store from before held_out: the gate's marker was in trained_in
                if "held_out" not in {row["name"] for row in db.execute(f"PRAGMA table_info({table})")}:
                    db.execute(f"ALTER TABLE {table} ADD COLUMN held_out INTEGER NOT NULL DEFAULT 0")
                db.execute(f"UPDATE {table} SET held_out = 1, trained_in = NULL WHERE trained_in = ?",
                           (KEPT_FOR_GATE,))
        with self._write() as db:
            if self._meta(db, "origin") is None:
                self._set_meta(db, "origin", uuid.uuid4().hex[:12])
                self._log_existing_rows(db)
            if self._meta(db, "identity_key") is None:  # never pushed: see serve/voters.py
                self._set_meta(db, "identity_key", secrets.token_hex(32))
            self.origin = self._meta(db, "origin")
            self.identity_key = self._meta(db, "identity_key")

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # A connection per call: sqlite3 connections must not cross threads, and Gradio runs
        # handlers on a pool of them.
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.row_factory = sqlite3.Row  # rows are read by column name
        try:
            db.execute("PRAGMA busy_timeout=30000")
            db.execute("PRAGMA foreign_keys=ON")
            yield db
        finally:
            db.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    # -- the outbox -------------------------------------------------------------------------------

    @staticmethod
    def _meta(db: sqlite3.Connection, key: str) -> str | None:
        row = db.execute("SELECT value FROM store_meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row["value"]

    @staticmethod
    def _set_meta(db: sqlite3.Connection, key: str, value: str) -> None:
        db.execute("INSERT INTO store_meta VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                   (key, value))

    def meta(self, key: str) -> str | None:
        with self._connect() as db:
            return self._meta(db, key)

    def set_meta(self, key: str, value: str) -> None:
        with self._write() as db:
            self._set_meta(db, key, value)

    @staticmethod
    def _log(db: sqlite3.Connection, kind: str, body: dict) -> None:
        db.execute("INSERT INTO events (at, kind, body) VALUES (?, ?, ?)", (time.time(), kind, json.dumps(body)))

    def _log_vote_row(self, db: sqlite3.Connection, reply_id: str, voter: str) -> None:
        row = db.execute("SELECT label, revision, created_at, updated_at FROM votes WHERE reply_id = ? AND voter = ?",
                         (reply_id, voter)).fetchone()
        self._log(db, "vote", {"reply_id": reply_id, "voter": voter, **dict(row)})

    def _log_pick_row(self, db: sqlite3.Connection, row: sqlite3.Row) -> None:
        self._log(db, "pick", {key: row[key] for key in ("pair_id", "voter", "reply_a", "reply_b", "choice", "revision",
                                                         "created_at", "updated_at")})

    def _log_existing_rows(self, db: sqlite3.Connection) -> None:
        """A store made before the outbox existed: its rows become events once, so they reach the Hub too."""
        for row in db.execute(f"SELECT {REPLY_COLUMNS} FROM replies ORDER BY created_at").fetchall():
            self._log(db, "reply", self._reply_body(row))
        for row in db.execute("SELECT * FROM votes ORDER BY updated_at").fetchall():
            self._log_vote_row(db, row["reply_id"], row["voter"])
            if row["trained_in"] is not None or row["held_out"]:
                self._log(db, "mark", {"version": row["trained_in"] or KEPT_FOR_GATE,
                                       "votes": [[row["reply_id"], row["voter"], row["revision"]]]})
        for row in db.execute("SELECT * FROM picks ORDER BY updated_at").fetchall():
            self._log_pick_row(db, row)
            if row["trained_in"] is not None or row["held_out"]:
                self._log(db, "mark_picks", {"version": row["trained_in"] or KEPT_FOR_GATE,
                                             "picks": [[row["pair_id"], row["voter"], row["revision"]]]})

    @staticmethod
    def _mark(db: sqlite3.Connection, table: str, version: str, keys: list[list]) -> list[list]:
        """Mark the revisions `keys` ([id, voter, revision]) of `table` (votes, picks) as trained on by `version`,
        or as kept for the gate (`version` KEPT_FOR_GATE); returns the keys that still matched."""
        column = "held_out = 1" if version == KEPT_FOR_GATE else "trained_in = ?"
        key = "reply_id" if table == "votes" else "pair_id"
        params = () if version == KEPT_FOR_GATE else (version,)
        return [k for k in keys if db.execute(
            f"UPDATE {table} SET {column} WHERE {key} = ? AND voter = ? AND revision = ?", (*params, *k)).rowcount]

    @staticmethod
    def _reply_body(row: tuple | sqlite3.Row) -> dict:
        """A reply's event body from its REPLY_COLUMNS values (a row as read, or as about to be written)."""
        body = dict(zip(REPLY_COLUMNS.split(", "), row, strict=True))
        return {**body, "prompt": json.loads(body["prompt"]), "stopped": bool(body["stopped"])}

    def events_after(self, seq: int, limit: int | None = None) -> list[Event]:
        """This store's own events after `seq`, in order."""
        query = "SELECT seq, at, kind, body FROM events WHERE seq > ? ORDER BY seq"
        params: tuple = (seq,)
        if limit is not None:
            query += " LIMIT ?"
            params = (seq, limit)
        with self._connect() as db:
            rows = db.execute(query, params).fetchall()
        return [Event(self.origin, row["seq"], row["at"], row["kind"], json.loads(row["body"])) for row in rows]

    def last_event_seq(self) -> int:
        with self._connect() as db:
            return db.execute("SELECT COALESCE(MAX(seq), 0) AS seq FROM events").fetchone()["seq"]

    def apply_events(self, events: list[Event]) -> int:
        """Replay another store's events (in their order) into this one, in one transaction; returns how many.

        They are not logged again here: they are already in the files they came from. Replaying every
        event of a store into an empty one gives the same replies and votes, row for row.
        """
        with self._write() as db:
            for event in events:
                b = event.body
                if event.kind == "reply":
                    db.execute(f"INSERT OR IGNORE INTO replies ({REPLY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                               (b["id"], b["session"], json.dumps(b["prompt"]), b["completion"], b["version"],
                                int(b["stopped"]), b["created_at"], b.get("voter_id", ""), b.get("address", "")))
                elif event.kind == "vote":
                    db.execute("INSERT OR REPLACE INTO votes (reply_id, voter, label, revision, created_at, "
                               "updated_at) VALUES (?, ?, ?, ?, ?, ?)",
                               (b["reply_id"], b["voter"], b["label"], b["revision"], b["created_at"],
                                b["updated_at"]))
                elif event.kind == "retract":
                    db.execute("DELETE FROM votes WHERE reply_id = ? AND voter = ?", (b["reply_id"], b["voter"]))
                elif event.kind == "mark":
                    self._mark(db, "votes", b["version"], b["votes"])
                elif event.kind == "pick":
                    db.execute("INSERT OR REPLACE INTO picks (pair_id, voter, reply_a, reply_b, choice, revision, "
                               "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                               (b["pair_id"], b["voter"], b["reply_a"], b["reply_b"], b["choice"], b["revision"],
                                b["created_at"], b["updated_at"]))
                elif event.kind == "mark_picks":
                    self._mark(db, "picks", b["version"], b["picks"])
                else:
                    raise ValueError(f"unknown event kind {event.kind!r} (from store {event.origin})")
        return len(events)

    # -- replies and votes ------------------------------------------------------------------------

    def add_reply(self, reply: StoredReply) -> None:
        row = (reply.id, reply.session, json.dumps(reply.prompt), reply.completion, reply.version,
               int(reply.stopped), reply.created_at or time.time(), reply.voter_id, reply.address)
        with self._write() as db:
            db.execute(f"INSERT INTO replies ({REPLY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", row)
            self._log(db, "reply", self._reply_body(row))

    def get_reply(self, reply_id: str) -> StoredReply | None:
        with self._connect() as db:
            row = db.execute(f"SELECT {REPLY_COLUMNS} FROM replies WHERE id = ?", (reply_id,)).fetchone()
        return None if row is None else StoredReply(**self._reply_body(row))

    def vote(self, reply_id: str, voter: str, liked: bool | None) -> str:
        """Record, change or retract `voter`'s vote on a reply; returns what happened.

        `liked=None` retracts; the same thumb as the standing vote retracts too.
        """
        if liked is not None and not isinstance(liked, bool):
            raise VoteError(f"a vote is thumbs up (True), down (False) or a retraction (None); got {liked!r}")
        with self._write() as db:
            owner = db.execute("SELECT session FROM replies WHERE id = ?", (reply_id,)).fetchone()
            if owner is None:
                raise VoteError("That reply is unknown or still being written; vote once it has finished.")
            if owner["session"] != voter:
                raise VoteError("You can only vote on replies written in your own chat.")
            row = db.execute("SELECT label FROM votes WHERE reply_id = ? AND voter = ?",
                             (reply_id, voter)).fetchone()
            if liked is None or (row is not None and bool(row["label"]) == liked):
                if row is None:
                    return "nothing to retract"
                db.execute("DELETE FROM votes WHERE reply_id = ? AND voter = ?", (reply_id, voter))
                self._log(db, "retract", {"reply_id": reply_id, "voter": voter})
                return "retracted"
            now = time.time()
            db.execute(
                """INSERT INTO votes (reply_id, voter, label, revision, created_at, updated_at)
                   VALUES (?, ?, ?, 1, ?, ?)
                   ON CONFLICT (reply_id, voter) DO UPDATE SET
                     label = excluded.label, revision = votes.revision + 1, trained_in = NULL, held_out = 0,
                     updated_at = excluded.updated_at""",
                (reply_id, voter, int(liked), now, now))
            self._log_vote_row(db, reply_id, voter)
            return "changed" if row is not None else "recorded"

    def waiting_voters(self) -> list[tuple[bool, str, str]]:
        """(label, voter identity, address) of every waiting vote, oldest first: what caps are counted on,
        without reading prompts."""
        with self._connect() as db:
            rows = db.execute(f"""SELECT v.label, COALESCE(NULLIF(r.voter_id, ''), v.voter) AS voter, r.address
                                 FROM votes v JOIN replies r ON r.id = v.reply_id
                                 WHERE {waiting_condition("v")} ORDER BY v.updated_at""").fetchall()
        return [(bool(row["label"]), row["voter"], row["address"]) for row in rows]

    def trained_by_voter(self, versions: list[str]) -> list[tuple[str, str, int]]:
        """(voter identity, address, votes and picks) that the rounds of `versions` trained on."""
        if not versions:
            return []
        marks = ", ".join("?" * len(versions))
        with self._connect() as db:
            rows = db.execute(f"""
                SELECT voter, address, COUNT(*) AS count FROM (
                    SELECT COALESCE(NULLIF(r.voter_id, ''), v.voter) AS voter, r.address AS address
                    FROM votes v JOIN replies r ON r.id = v.reply_id WHERE v.trained_in IN ({marks})
                    UNION ALL
                    SELECT COALESCE(NULLIF(r.voter_id, ''), p.voter), r.address
                    FROM picks p JOIN replies r ON r.id = p.reply_a WHERE p.trained_in IN ({marks}))
                GROUP BY voter, address""", (*versions, *versions)).fetchall()
        return [(row["voter"], row["address"], row["count"]) for row in rows]

    def waiting_counts(self) -> tuple[int, int]:
        """(thumbs up, thumbs down) among votes no published round has used yet."""
        with self._connect() as db:
            return self._label_counts(db, waiting_condition())

    def votes_per_hour(self) -> list[tuple[float, bool, int]]:
        """(hour start as a Unix time, label, count) for the dashboard."""
        with self._connect() as db:
            rows = db.execute("SELECT CAST(updated_at / 3600 AS INTEGER) * 3600 AS hour, label, COUNT(*) AS count "
                              "FROM votes GROUP BY hour, label ORDER BY hour").fetchall()
        return [(float(row["hour"]), bool(row["label"]), row["count"]) for row in rows]

    def counts_by_version(self) -> dict[str, tuple[int, int]]:
        """(thumbs up, thumbs down) on the replies each version wrote, in order of first vote: its like share."""
        with self._connect() as db:
            rows = db.execute("SELECT r.version, SUM(v.label) AS up, COUNT(*) - SUM(v.label) AS down FROM votes v "
                              "JOIN replies r ON r.id = v.reply_id GROUP BY r.version "
                              "ORDER BY MIN(v.updated_at)").fetchall()
        return {row["version"]: (int(row["up"]), int(row["down"])) for row in rows}

    def total_counts(self) -> tuple[int, int]:
        with self._connect() as db:
            return self._label_counts(db, "1")

    @staticmethod
    def _label_counts(db: sqlite3.Connection, where: str) -> tuple[int, int]:
        counts = {row["label"]: row["count"] for row in db.execute(
            f"SELECT label, COUNT(*) AS count FROM votes WHERE {where} GROUP BY label").fetchall()}
        return counts.get(1, 0), counts.get(0, 0)

    def votes(self, waiting: bool, limit: int | None = None) -> list[Vote]:
        """Waiting votes (oldest first), or already-trained ones (newest first) for replay."""
        where = waiting_condition("v") if waiting else "v.trained_in IS NOT NULL"
        return self._select(where, (), "ASC" if waiting else "DESC", limit)

    def gate_votes(self) -> list[Vote]:
        """Votes kept out of training for the gate."""
        return self._select("v.held_out = 1", (), "ASC", None)

    def all_votes(self, newest: int | None = None) -> list[Vote]:
        """Every vote, oldest first; with `newest`, only that many of the latest (read as few, not sliced)."""
        if newest is None:
            return self._select("1", (), "ASC", None)
        return self._select("1", (), "DESC", newest)[::-1]

    def _select(self, where: str, params: tuple, order: str, limit: int | None) -> list[Vote]:
        query = f"""SELECT v.reply_id, v.voter, v.label, v.revision, r.prompt, r.completion, r.version, v.updated_at,
                           r.voter_id, r.address
                    FROM votes v JOIN replies r ON r.id = v.reply_id
                    WHERE {where} ORDER BY v.updated_at {order}"""
        if limit is not None:
            query += " LIMIT ?"
            params = (*params, limit)
        with self._connect() as db:
            rows = db.execute(query, params).fetchall()
        return [Vote(**{**dict(r), "label": bool(r["label"]), "prompt": json.loads(r["prompt"])}) for r in rows]

    def keep_for_gate(self, votes: list[Vote]) -> int:
        """Mark the revisions read as gate votes: no round trains on them."""
        return self.mark_trained(votes, KEPT_FOR_GATE)

    def mark_trained(self, votes: list[Vote], version: str) -> int:
        """Mark the revisions a round read as used by `version`; returns how many still matched."""
        with self._write() as db:
            marked = self._mark(db, "votes", version, [[v.reply_id, v.voter, v.revision] for v in votes])
            if marked:
                self._log(db, "mark", {"version": version, "votes": marked})
        return len(marked)

    # -- picks: two replies to one message, the better one chosen --------------------------------------

    def pick(self, pair_id: str, reply_a: str, reply_b: str, voter: str, choice: str) -> str:
        """Record or change `voter`'s pick between two stored replies to the same message; returns what happened.

        A change of mind replaces the pick (and it waits for training again); the same pick again changes nothing.
        """
        if choice not in PICK_CHOICES:
            raise VoteError(f"A pick is one of {', '.join(PICK_CHOICES)}; got {choice!r}.")
        with self._write() as db:
            rows = {row["id"]: row for row in db.execute(
                "SELECT id, session, prompt FROM replies WHERE id IN (?, ?)", (reply_a, reply_b)).fetchall()}
            if reply_a == reply_b or len(rows) != 2:
                raise VoteError("Both replies must have finished before you pick one; wait for them to end.")
            if any(row["session"] != voter for row in rows.values()):
                raise VoteError("You can only pick between replies written in your own chat.")
            if rows[reply_a]["prompt"] != rows[reply_b]["prompt"]:
                raise VoteError("A pick compares two replies to the same message.")
            row = db.execute("SELECT choice, reply_a, reply_b FROM picks WHERE pair_id = ? AND voter = ?",
                             (pair_id, voter)).fetchone()
            if row is not None and (row["reply_a"], row["reply_b"]) != (reply_a, reply_b):
                raise VoteError("That comparison holds other replies.")
            if row is not None and row["choice"] == choice:
                return "unchanged"
            now = time.time()
            db.execute(
                """INSERT INTO picks (pair_id, voter, reply_a, reply_b, choice, revision, created_at, updated_at)
                   VALUES (?, ?, ?, ?, ?, 1, ?, ?)
                   ON CONFLICT (pair_id, voter) DO UPDATE SET
                     choice = excluded.choice, revision = picks.revision + 1, trained_in = NULL, held_out = 0,
                     updated_at = excluded.updated_at""",
                (pair_id, voter, reply_a, reply_b, choice, now, now))
            self._log_pick_row(db, db.execute("SELECT * FROM picks WHERE pair_id = ? AND voter = ?",
                                              (pair_id, voter)).fetchone())
            return "changed" if row is not None else "recorded"

    def picks(self, waiting: bool, limit: int | None = None) -> list[Pick]:
        """Waiting picks (oldest first), or already-trained ones (newest first) for replay."""
        where = waiting_condition("p") if waiting else "p.trained_in IS NOT NULL"
        return self._select_picks(where, (), "ASC" if waiting else "DESC", limit)

    def gate_picks(self) -> list[Pick]:
        return self._select_picks("p.held_out = 1", (), "ASC", None)

    def all_picks(self, newest: int | None = None) -> list[Pick]:
        """Every pick, oldest first; with `newest`, only that many of the latest."""
        if newest is None:
            return self._select_picks("1", (), "ASC", None)
        return self._select_picks("1", (), "DESC", newest)[::-1]

    def waiting_pick_counts(self) -> tuple[int, int]:
        """(picks of a better reply, "both bad" picks) that no published round has used yet."""
        with self._connect() as db:
            counts = {row["neither"]: row["count"] for row in db.execute(
                f"SELECT choice = 'neither' AS neither, COUNT(*) AS count FROM picks WHERE {waiting_condition()} "
                "GROUP BY neither").fetchall()}
        return counts.get(0, 0), counts.get(1, 0)

    def _select_picks(self, where: str, params: tuple, order: str, limit: int | None) -> list[Pick]:
        query = f"""SELECT p.pair_id, p.voter, p.choice, p.revision, a.prompt, a.completion AS completion_a,
                           b.completion AS completion_b, a.version AS version_a, b.version AS version_b,
                           p.updated_at, a.voter_id, a.address
                    FROM picks p JOIN replies a ON a.id = p.reply_a JOIN replies b ON b.id = p.reply_b
                    WHERE {where} ORDER BY p.updated_at {order}"""
        if limit is not None:
            query += " LIMIT ?"
            params = (*params, limit)
        with self._connect() as db:
            rows = db.execute(query, params).fetchall()
        return [Pick(**{**dict(r), "prompt": json.loads(r["prompt"])}) for r in rows]

    def keep_picks_for_gate(self, picks: list[Pick]) -> int:
        return self.mark_picks_trained(picks, KEPT_FOR_GATE)

    def mark_picks_trained(self, picks: list[Pick], version: str) -> int:
        """Mark the pick revisions a round read as used by `version`; returns how many still matched."""
        with self._write() as db:
            marked = self._mark(db, "picks", version, [[p.pair_id, p.voter, p.revision] for p in picks])
            if marked:
                self._log(db, "mark_picks", {"version": version, "picks": marked})
        return len(marked)
