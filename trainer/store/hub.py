"""Votes and versions kept on the Hugging Face Hub, so that they outlive the disk (a Space's is wiped at
every restart, rebuild and settings change).

    dataset repo HUB_REPO (private)
      events/<process>-<part>.jsonl    the vote store's changes, append-only, one set of files per process
      versions/v0001/ ...              every published version, rejected ones too (their meta.json says so)
      versions/CURRENT, history.jsonl  the serving pointer and every publish and pointer move

Pushing is huggingface_hub's `CommitScheduler` over DATA_DIR (only the paths above; the live SQLite
database never goes up): every HUB_PUSH_SECONDS (5 minutes, the scheduler's default), each push first
writes the store's new events into this process's event file; a publish, a pointer move or a round's
marks ask for a push within PUSH_COALESCE_SECONDS, so a round's version, its serving and its marks go
up in one commit, seconds after they happen.

The commit budget: the Hub lets a repo take about 128 commits an hour. A push that would make more than
HUB_MAX_COMMITS_PER_HOUR (30) commits in the last hour is put off to the next one, and a 429 answer puts
every push off until its Retry-After has passed. Nothing is lost by a push put off or failed: the
outbox is in SQLite and the next push takes everything. At SIGTERM (a Space restart) the app first ends
its replies, then flushes once, outside the budget, waiting out a Retry-After that fits its time.

Restoring: a DATA_DIR that never synced with HUB_REPO (a fresh disk) first reads the repo: the events
are replayed into the vote store (`VoteStore.apply_events`), the versions and pointer adopted, and the
app serves the version CURRENT names. If the Hub cannot be read then, the app still serves and takes
votes, and retries; only a round waits, since a version numbered before the history is known could
take the name of one already on the Hub. No HUB_REPO or no token: local only, said in the status.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable

from huggingface_hub import CommitScheduler, HfApi, snapshot_download
from huggingface_hub.errors import HfHubHTTPError

from ..config import HubSettings
from ..contracts import HubStatus, TrainerError
from .events import EVENTS_FOLDER, EventWriter, event_files, read_events
from .versions import VersionStore
from .votes import VoteStore

log = logging.getLogger(__name__)

REPO_TYPE = "dataset"
# What goes up, relative to DATA_DIR: never the database, staging folders or temporary files.
PUSHED = [f"{EVENTS_FOLDER}/*.jsonl", "versions/v*", "versions/CURRENT", "versions/history.jsonl"]
SYNCED_KEY = "hub_repo"      # store_meta: the repo this store has read (restored from) and pushes to
PUSHED_KEY = "pushed_seq"    # store_meta: events written before the last successful push
RETRY_SECONDS = (5.0, 300.0)  # first and longest wait between attempts to read the Hub at start or connect
# A push asked for (publish, pointer move, marks) waits this long for the others of its round to join it.
PUSH_COALESCE_SECONDS = 10.0
HOUR = 3600.0
RATE_LIMITED_SECONDS = 60.0  # the wait after a 429 that names none (no Retry-After)


class HubConflict(TrainerError, RuntimeError):
    """DATA_DIR and HUB_REPO both hold versions of their own: syncing would mix two histories."""


def hub_api(settings: HubSettings) -> HfApi:
    return HfApi(endpoint=settings.endpoint or None, token=settings.token or None)


def pull(settings: HubSettings, data_dir: Path, votes: VoteStore, versions: VersionStore) -> tuple[int, int]:
    """Read HUB_REPO into the local stores (creating the repo if it does not exist); returns (events, versions).

    Events already in this store (its own origin) are skipped; versions are adopted only when one
    side has none (HubConflict otherwise). Raises on any Hub error, with the local stores untouched.
    """
    api = hub_api(settings)
    # Creating first proves the token can write, and tells an empty repo from one we may not read.
    repo_id = api.create_repo(settings.repo, repo_type=REPO_TYPE, private=settings.private, exist_ok=True).repo_id
    with tempfile.TemporaryDirectory(prefix=".hub-pull-", dir=data_dir) as tmp:
        folder = Path(snapshot_download(repo_id, repo_type=REPO_TYPE, local_dir=Path(tmp) / "snapshot",
                                        allow_patterns=PUSHED, endpoint=settings.endpoint or None,
                                        token=settings.token or None))
        events = [e for e in read_events(event_files(folder)) if e.origin != votes.origin]
        remote_versions = folder / "versions"
        if remote_versions.is_dir() and versions.names() and any(remote_versions.glob("v*")):
            raise HubConflict(f"DATA_DIR has versions of its own and {repo_id} has others; pull into a fresh "
                              "DATA_DIR, or set another HUB_REPO")
        adopted = versions.adopt(remote_versions) if remote_versions.is_dir() else 0
        votes.apply_events(events)
    votes.set_meta(SYNCED_KEY, settings.repo)
    return len(events), adopted


def push(settings: HubSettings, data_dir: Path, votes: VoteStore, versions: VersionStore) -> str:
    """Everything the Hub lacks, in one commit (the command line's `push`; the app pushes on schedule).

    A store that never read HUB_REPO reads it first (HubConflict if both hold versions of their own),
    so a push never writes over versions it does not know. Returns the commit's URL (or a note that
    nothing changed).
    """
    if votes.meta(SYNCED_KEY) != settings.repo:
        pull(settings, data_dir, votes, versions)
    writer = EventWriter(votes, data_dir)
    writer.write()
    written = writer.exported_seq
    api = hub_api(settings)
    info = api.upload_folder(repo_id=settings.repo, repo_type=REPO_TYPE, folder_path=data_dir, allow_patterns=PUSHED,
                             commit_message="python -m trainer push")
    votes.set_meta(PUSHED_KEY, str(written))
    return str(info)


class HubSync:
    """This process's link to HUB_REPO: restore at start, scheduled pushes, status, flush at exit."""

    def __init__(self, settings: HubSettings, data_dir: Path, votes: VoteStore, versions: VersionStore):
        self.settings, self.data_dir, self.votes, self.versions = settings, Path(data_dir), votes, versions
        self.writer = EventWriter(votes, self.data_dir)
        self.scheduler = None
        self._status = HubStatus(repo=settings.repo)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.ready = threading.Event()  # set once the Hub's history is in the local stores (or there is no Hub)
        self.connected = threading.Event()  # set once the scheduler runs
        self.commits: list[float] = []  # when this process's pushes made a commit
        self._not_before = 0.0  # no push before this time (a 429's Retry-After)
        self._final = False     # the SIGTERM flush: outside the budget
        self._soon: threading.Timer | None = None

    # -- start ---------------------------------------------------------------------------------------------

    def start(self, on_restored: Callable[[], None] = lambda: None) -> None:
        """Restore if this store never read HUB_REPO, then push on schedule; all in the background after a
        first attempt here. `on_restored` runs (on the background thread) if the restore happens later."""
        if not self.settings.repo:
            self._set(state="off", detail="no HUB_REPO: votes and versions are kept on this disk only")
            self.ready.set()
            return
        if not self.settings.token:
            self._set(state="local-only", detail=f"no HF_TOKEN to write {self.settings.repo}: votes and versions "
                                                 "are kept on this disk only")
            self.ready.set()
            return
        if self.votes.meta(SYNCED_KEY) == self.settings.repo or self._restore():
            self.ready.set()
            self._thread = threading.Thread(target=self._connect, name="hub-connect", daemon=True)
        else:
            self._thread = threading.Thread(target=self._restore_later, args=(on_restored,), name="hub-restore",
                                            daemon=True)
        self._thread.start()

    def _restore(self) -> bool:
        self._set(state="restoring", detail="reading the votes and versions kept on the Hub")
        started = time.perf_counter()
        try:
            events, versions = pull(self.settings, self.data_dir, self.votes, self.versions)
        except HubConflict as err:
            self._set(state="local-only", detail=str(err))
            self._stopping.set()  # nothing to retry: a person has to choose
            self.ready.set()
            return False
        except Exception as err:
            self._set(state="restoring", detail=f"the Hub could not be read ({_short(err)}); retrying. Chat and "
                                                "votes go on; a round waits for it")
            log.warning("restoring from %s failed: %s", self.settings.repo, err)
            return False
        log.info("restored %d events and %d versions from %s in %.1f s", events, versions, self.settings.repo,
                 time.perf_counter() - started)
        self._set(state="connecting", detail="", restored_events=events, restored_versions=versions)
        return True

    def _restore_later(self, on_restored: Callable[[], None]) -> None:
        for wait in _backoff():
            if self._stopping.wait(wait):
                return
            if self._restore():
                self.ready.set()
                on_restored()
                self._connect()
                return

    def _connect(self) -> None:
        """Start the scheduler; its constructor creates the repo, so it is retried while the Hub is away."""
        for wait in _backoff(first=0.0):
            if self._stopping.wait(wait):
                return
            try:
                self.scheduler = _Scheduler(
                    sync=self, repo_id=self.settings.repo, repo_type=REPO_TYPE, folder_path=self.data_dir,
                    every=self.settings.push_seconds / 60, private=self.settings.private, allow_patterns=PUSHED,
                    hf_api=hub_api(self.settings))
                self.connected.set()
                return
            except Exception as err:
                self._set(state="retrying", detail=f"cannot reach {self.settings.repo}: {_short(err)}")
                log.warning("cannot reach %s: %s", self.settings.repo, err)

    # -- pushing -------------------------------------------------------------------------------------------

    def _push(self, push: Callable[[], object]) -> object:
        """One push: put off (None) while rate-limited or over the hour's budget; else the new events into
        this process's file, then the scheduler's upload (None when no file changed: no commit)."""
        now = time.time()
        if not self._final:
            if now < self._not_before:
                return None
            recent = self.commits_last_hour(now)
            if recent >= self.settings.max_commits_per_hour:
                self._set(state="waiting", detail=f"{recent} commits in the last hour, the most "
                                                  "HUB_MAX_COMMITS_PER_HOUR allows; the next push takes everything")
                return None
        self.writer.write()
        written = self.writer.exported_seq
        try:
            info = push()
        except Exception as err:
            wait = _retry_after(err)
            if wait is not None:
                self._not_before = time.time() + wait
                self._set(state="retrying", detail=f"the Hub asked to wait ({_short(err)}); pushing again in "
                                                   f"{wait:.0f} s, nothing is lost")
            else:
                self._set(state="retrying", detail=f"last push failed ({_short(err)}); retrying every "
                                                   f"{self.settings.push_seconds:.0f} s, nothing is lost")
            raise
        if info is not None:
            with self._lock:
                self.commits.append(now)
        self.votes.set_meta(PUSHED_KEY, str(written))
        self._set(state="synced", detail="", last_push_at=time.time())
        return info

    def commits_last_hour(self, now: float | None = None) -> int:
        now = time.time() if now is None else now
        with self._lock:
            self.commits = [t for t in self.commits if now - t < HOUR]
            return len(self.commits)

    def push_soon(self) -> None:
        """Push within PUSH_COALESCE_SECONDS, in the background (a publish, a pointer move, a round's marks):
        asks made meanwhile join the same commit."""
        if self.scheduler is None or self._stopping.is_set():
            return
        with self._lock:
            if self._soon is not None and self._soon.is_alive():
                return
            self._soon = threading.Timer(PUSH_COALESCE_SECONDS, self._trigger)
            self._soon.daemon = True
            self._soon.start()

    def _trigger(self) -> None:
        if self.scheduler is not None and not self._stopping.is_set():
            self.scheduler.trigger()

    def flush(self, timeout: float = 30.0) -> bool:
        """Write and push everything now, outside the budget, waiting up to `timeout` s (a Retry-After that fits
        in it too); whether it reached the Hub."""
        deadline = time.monotonic() + timeout
        self.writer.write()
        if self._status.state == "connecting":  # its first attempt is under way: give it the time
            self.connected.wait(timeout)
        if self.scheduler is None:
            return False
        self._final = True
        try:
            while True:
                wait = self._not_before - time.time()
                if wait > deadline - time.monotonic():
                    log.warning("final push to %s: the Hub asks to wait %.0f s, more than the %.0f s left",
                                self.settings.repo, wait, deadline - time.monotonic())
                    return False
                if wait > 0:
                    time.sleep(wait)
                try:
                    self.scheduler.trigger().result(max(0.1, deadline - time.monotonic()))
                    return True
                except Exception as err:
                    if _retry_after(err) is None:
                        log.warning("final push to %s failed: %s", self.settings.repo, err)
                        return False
        finally:
            self._final = False

    def close(self, timeout: float = 30.0) -> None:
        self._stopping.set()
        if self._soon is not None:
            self._soon.cancel()
        if self.scheduler is not None:
            self.flush(timeout)
            self.scheduler.stop()
        self._set(state="stopped" if self.settings.repo and self.settings.token else self._status.state)

    # -- status --------------------------------------------------------------------------------------------

    def status(self) -> HubStatus:
        with self._lock:
            status = dataclasses.replace(self._status)
        if status.state != "off":
            status.events_waiting = self.votes.last_event_seq() - int(self.votes.meta(PUSHED_KEY) or 0)
            status.commits_last_hour = self.commits_last_hour()
        return status

    def _set(self, **changes) -> None:
        with self._lock:
            self._status = dataclasses.replace(self._status, **changes)


class _Scheduler(CommitScheduler):
    """huggingface_hub's scheduler, with our events written before each push and its outcome recorded."""

    def __init__(self, *, sync: HubSync, **kwargs):
        self.sync = sync  # before the parent starts its thread, which pushes at once
        super().__init__(**kwargs)

    def push_to_hub(self):
        return self.sync._push(super().push_to_hub)


def _backoff(first: float | None = None):
    wait = RETRY_SECONDS[0] if first is None else first
    while True:
        yield wait
        wait = min(max(wait * 2, RETRY_SECONDS[0]), RETRY_SECONDS[1])


def _retry_after(err: BaseException) -> float | None:
    """Seconds a 429 answer asks to wait (its Retry-After, else RATE_LIMITED_SECONDS); None for any other error."""
    response = getattr(err, "response", None)
    if not isinstance(err, HfHubHTTPError) or response is None or response.status_code != 429:
        return None
    try:
        return max(0.0, float(response.headers.get("Retry-After", RATE_LIMITED_SECONDS)))
    except ValueError:
        return RATE_LIMITED_SECONDS


def _short(err: Exception) -> str:
    return f"{type(err).__name__}: {str(err).splitlines()[0][:160] if str(err) else ''}"

