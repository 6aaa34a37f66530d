"""The in-process trainer thread: wakes on enough new votes (or "train now"), runs a round, swaps it in.

A round runs on the daemon thread, yields to chat between micro-steps, publishes a version,
moves the `CURRENT` pointer and swaps the new version into serving. Any failure is caught,
shown in the status and leaves the serving version and every vote as they were; the loop then
waits for new votes (or an admin) before it tries again, instead of failing in a tight loop.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import asdict, dataclass

from .config import AppSettings
from .data import kto_rows
from .model import BaseModel
from .rounds import RoundHooks, RoundResult, train_round
from .serving import Server
from .versions import VersionStore
from .votes import VoteStore

log = logging.getLogger(__name__)


class NotEnoughVotes(ValueError):
    """A round was asked for without votes of both labels waiting."""


@dataclass
class TrainerStatus:
    state: str = "idle"               # idle | training | stopped
    step: int = 0
    total_steps: int = 0
    rounds: int = 0
    last_version: str | None = None
    last_round_seconds: float | None = None
    last_error: str | None = None
    last_swap_ms: float | None = None


class TrainerLoop:
    def __init__(self, settings: AppSettings, base: BaseModel, server: Server, votes: VoteStore,
                 versions: VersionStore):
        self.settings = settings
        self.base = base
        self.server = server
        self.votes = votes
        self.versions = versions
        self._status = TrainerStatus()
        self._status_lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._requested = False
        self._round_lock = threading.Lock()
        self._failed_waiting: int | None = None  # waiting-vote count when the last round failed
        self._thread: threading.Thread | None = None

    # -- control ---------------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="trainer", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._update(state="stopped")

    def request_round(self) -> str:
        """Ask for a round now ("train now"); raises NotEnoughVotes when it could not train."""
        up, down = self.votes.waiting_counts()
        if up == 0 or down == 0:
            raise NotEnoughVotes(f"A round needs waiting votes of both kinds; waiting: {up} up, {down} down.")
        self._requested = True
        self._wake.set()
        return f"Round requested on {up + down} waiting votes ({up} up, {down} down)."

    def status(self) -> TrainerStatus:
        with self._status_lock:
            return TrainerStatus(**asdict(self._status))

    # -- the thread ------------------------------------------------------------------------------

    def ready(self) -> bool:
        up, down = self.votes.waiting_counts()
        if up == 0 or down == 0:
            return False
        if self._requested:
            return True
        waiting = up + down
        if self._failed_waiting is not None and waiting <= self._failed_waiting:
            return False  # the last round on these votes failed; wait for news
        return waiting >= self.settings.loop.min_votes

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(self.settings.loop.poll_seconds)
            self._wake.clear()
            if self._stopping.is_set():
                break
            try:
                if self.ready():
                    self.run_round()
            except Exception:  # the thread must outlive any round; run_round records the error
                log.exception("trainer loop iteration failed")

    def run_round(self) -> RoundResult | None:
        """Run one round on the waiting votes and serve it; returns None if it failed (see status)."""
        with self._round_lock:
            self._requested = False
            new = self.votes.votes(waiting=True)
            replay = self.votes.votes(waiting=False, limit=self.settings.loop.replay_votes)
            self._update(state="training", step=0, total_steps=0, last_error=None)
            started = time.time()
            try:
                parent = self.versions.get(self.versions.current())
                result = train_round(
                    self.base, kto_rows(new + replay), parent, self.settings, self.versions,
                    meta={"votes": [f"{v.reply_id}:{v.voter}" for v in new],
                          "replayed_votes": [f"{v.reply_id}:{v.voter}" for v in replay]},
                    hooks=RoundHooks(progress=lambda step, total: self._update(step=step, total_steps=total),
                                     yield_to_chat=self._yield_to_chat))
                served = self.server.load(result.version, self.versions.get(result.version).path)
                self.versions.set_current(result.version, reason="round")
                pause = self.server.swap(served)
                self.votes.mark_trained(new, result.version)
            except Exception as err:
                log.exception("round failed")
                self._failed_waiting = len(new)
                self._update(state="idle", last_error=f"{type(err).__name__}: {err}",
                             last_round_seconds=time.time() - started)
                return None
            self._failed_waiting = None
            with self._status_lock:
                self._status.rounds += 1
            self._update(state="idle", last_version=result.version, last_round_seconds=time.time() - started,
                         last_swap_ms=pause * 1e3)
            return result

    def _yield_to_chat(self) -> None:
        self.server.wait_idle(self.settings.loop.max_yield_seconds)

    def _update(self, **changes) -> None:
        with self._status_lock:
            for key, value in changes.items():
                setattr(self._status, key, value)
