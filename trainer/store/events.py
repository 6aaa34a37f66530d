"""Event files: the vote store's outbox written out as append-only JSONL, and read back in order.

    DATA_DIR/events/<started>-<process>-<part>.jsonl    one line per event, never rewritten

Each process appends to files of its own (a new part every PART_BYTES, so a scheduled upload of
a file that grew stays small); the Hub keeps every file any process wrote. A line carries its
store's `origin` and `seq`, so reading all files back gives each store's events exactly once and
in order, whatever the files' names, duplicates or truncated last lines (a process killed while
writing one).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from pathlib import Path
from typing import Iterable

from .votes import Event, VoteStore

log = logging.getLogger(__name__)

EVENTS_FOLDER = "events"
PART_BYTES = 4 * 1024 * 1024
EXPORTED_KEY = "exported_seq"  # store_meta: the last seq written to an event file and synced


class EventWriter:
    """Appends the store's new events to this process's event file; thread-safe, idempotent."""

    def __init__(self, votes: VoteStore, data_dir: Path):
        self.votes = votes
        self.folder = Path(data_dir) / EVENTS_FOLDER
        self._process = f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{uuid.uuid4().hex[:8]}"
        self._part = 0
        self._lock = threading.Lock()

    @property
    def exported_seq(self) -> int:
        return int(self.votes.meta(EXPORTED_KEY) or 0)

    def pending(self) -> int:
        """Events committed to the store but not yet in an event file."""
        return self.votes.last_event_seq() - self.exported_seq

    def write(self, batch: int = 5000) -> int:
        """Append every event not yet written, synced to disk before it counts as written; returns how many."""
        written = 0
        with self._lock:
            while events := self.votes.events_after(self.exported_seq, limit=batch):
                path = self._path()
                with open(path, "a", encoding="utf-8") as handle:
                    handle.write("".join(to_line(e) for e in events))
                    handle.flush()
                    os.fsync(handle.fileno())
                # A crash before this line writes the same events again into a later file: readers drop
                # the duplicates by (origin, seq).
                self.votes.set_meta(EXPORTED_KEY, str(events[-1].seq))
                written += len(events)
        return written

    def _path(self) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{self._process}-{self._part:04d}.jsonl"
        if path.exists() and path.stat().st_size >= PART_BYTES:
            self._part += 1
            path = self.folder / f"{self._process}-{self._part:04d}.jsonl"
        return path


def to_line(event: Event) -> str:
    return json.dumps({"origin": event.origin, "seq": event.seq, "at": event.at, "kind": event.kind,
                       "body": event.body}, ensure_ascii=False) + "\n"


def read_events(paths: Iterable[Path]) -> list[Event]:
    """Every event in the files, once each, in replay order: store by store (oldest store first), by seq."""
    seen: dict[tuple[str, int], Event] = {}
    for path in sorted(paths):
        lines = Path(path).read_text(encoding="utf-8").split("\n")
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                raw = json.loads(line)
                event = Event(raw["origin"], int(raw["seq"]), float(raw["at"]), raw["kind"], raw["body"])
            except (ValueError, KeyError, TypeError) as err:
                if number == len(lines):  # the last line of a file whose writer was killed mid-line
                    log.warning("skipping a truncated last line of %s: %s", path, err)
                    continue
                raise ValueError(f"{path}:{number} is not an event line: {err}") from None
            seen.setdefault((event.origin, event.seq), event)
    first_at: dict[str, float] = {}
    for event in seen.values():
        first_at[event.origin] = min(first_at.get(event.origin, event.at), event.at)
    return sorted(seen.values(), key=lambda e: (first_at[e.origin], e.origin, e.seq))


def event_files(folder: Path) -> list[Path]:
    return sorted(Path(folder).glob(f"{EVENTS_FOLDER}/*.jsonl"))
