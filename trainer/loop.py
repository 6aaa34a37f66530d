"""The learning loop: a daemon thread that wakes on enough new votes (or "train now") and runs a round.

Its policy: a round starts when MIN_VOTES votes wait (of both labels, unless seed anchors supply
the other label: SEED_ANCHORS), or an admin asks;
never while paused; and after a failed round not again until new votes (or an admin) arrive,
instead of failing in a tight loop. A round pauses for chat at every layer (model/yielding.py),
and after MAX_YIELD_SECONDS of steady chat shares the cores with it (serve/core_sharing.py) so that rounds
still end. Any failure is caught and shown in the status, with the serving version and every vote as they were.
What a round does is learning.py's.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from typing import Callable

from .config import LoopSettings
from .contracts import LoopStatus, RoundResult, TrainerError
from .learning import Learner, NotEnoughVotes
from .serve.server import SamplingCancelled, Server
from .store.votes import VoteStore
from .train.round import RoundHooks

log = logging.getLogger(__name__)


class RoundHeld(TrainerError, RuntimeError):
    """A round cannot start yet, for a reason the message gives (e.g. the Hub's history is not read yet)."""


class LearningLoop:
    def __init__(self, settings: LoopSettings, learner: Learner, votes: VoteStore, server: Server,
                 hold: Callable[[], str | None] = lambda: None):
        self.settings, self.learner, self.votes, self.server = settings, learner, votes, server
        self.hold = hold  # a reason no round may start now, or None
        self._status = LoopStatus()
        self._status_lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._requested = False
        self._round_lock = threading.Lock()
        self._failed_waiting: int | None = None  # what waited after the last round, if it failed
        self._last_gate_seconds: float | None = None  # the last round's gate: part of the next one's expected time
        self._paused = False
        self._thread: threading.Thread | None = None

    # -- control ---------------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="learning-loop", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._update(state="stopped")

    def wake(self) -> None:
        """Look at the waiting votes now rather than at the next poll (a vote or pick arrived)."""
        self._wake.set()

    def request_round(self) -> str:
        """Ask for a round now ("train now"); raises NotEnoughVotes when it could not train."""
        held = self.hold()
        if held:
            raise RoundHeld(f"No round can start yet: {held}.")
        up, down = self.learner.waiting_counts()
        if not self.can_train(up, down):
            raise NotEnoughVotes(f"A round needs waiting votes{self._labels_needed()}; waiting: {up} up, {down} down.")
        self._requested = True
        self._wake.set()
        return f"Round requested on {up + down} waiting votes ({up} up, {down} down)."

    def pause(self) -> str:
        self._paused = True
        if self.status().state != "training":  # a round under way shows "training" until it ends
            self._update(state="paused")
        return "Trainer paused: no new round starts until it is resumed (a round under way finishes)."

    def resume(self) -> str:
        self._paused = False
        if self.status().state == "paused":
            self._update(state="idle")
        self._wake.set()
        return "Trainer resumed."

    def status(self) -> LoopStatus:
        with self._status_lock:
            return dataclasses.replace(self._status)

    # -- policy ----------------------------------------------------------------------------------

    def can_train(self, up: int, down: int) -> bool:
        """Whether waiting votes of these labels can make a round: both labels, or any with seed anchors."""
        return up + down > 0 if self.learner.anchored else up > 0 and down > 0

    def _labels_needed(self) -> str:
        return "" if self.learner.anchored else " of both kinds"

    def ready(self) -> bool:
        """Whether a round should start now."""
        if self._paused or self.hold():
            return False
        up, down = self.learner.waiting_counts()
        if not self.can_train(up, down):
            return False
        if self._requested:
            return True
        waiting = up + down
        if self._failed_waiting is not None and waiting <= self._failed_waiting:
            return False  # the last round on these votes failed; wait for news
        return waiting >= self.settings.min_votes

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(self.settings.poll_seconds)
            self._wake.clear()
            if self._stopping.is_set():
                break
            try:
                if self.ready():
                    self.run_round()
                else:
                    self._prepare_gate()
            except Exception:  # the thread must outlive any round; run_round records the error
                log.exception("learning loop iteration failed")

    def run_round(self) -> RoundResult | None:
        """Run one round on the waiting votes, on this thread. None if it failed (see the status)."""
        with self._round_lock:
            self._requested = False
            chosen = self.learner.select_votes()
            self._update(state="training", step=0, total_steps=0, last_error=None, seconds_left=None)
            started = time.time()
            hooks = RoundHooks(progress=self._progress_tracker(), yield_to_chat=self._yield_to_chat)
            try:
                learned = self.learner.learn(chosen, hooks)
            except Exception as err:
                log.exception("round failed")
                self._failed_waiting = sum(self.learner.waiting_counts())
                self._update(state=self._resting_state(), last_error=f"{type(err).__name__}: {err}",
                             last_round_seconds=time.time() - started, seconds_left=None)
                return None
            self._failed_waiting = None
            result = learned.result
            with self._status_lock:
                self._status.rounds += 1
            rejection = None if result.passed else "; ".join(result.gate.reasons)
            swap = {} if learned.swap_seconds is None else {"last_swap_ms": learned.swap_seconds * 1e3}
            timings = result.meta.timings
            if timings is not None and timings.gate_s:
                self._last_gate_seconds = timings.gate_s
            self._update(state=self._resting_state(), last_version=result.version, seconds_left=None,
                         last_round_seconds=time.time() - started, last_rejection=rejection, **swap)
            return result

    def _progress_tracker(self) -> Callable[[int, int], None]:
        """The round's progress hook: shows its step, and the time it expects to need to its verdict, from the
        mean time of its own steps so far and the last round's gate (none before the first: training only)."""
        first: list[tuple[int, float]] = []

        def progress(step: int, total: int) -> None:
            now = time.monotonic()
            if not first:
                first.append((step, now))
            begun, began_at = first[0]
            left = None
            if step > begun:
                left = (total - step) * (now - began_at) / (step - begun) + (self._last_gate_seconds or 0.0)
            self._update(step=step, total_steps=total, seconds_left=left)
        return progress

    def _prepare_gate(self) -> None:
        """While nobody chats, sample the serving version's probe replies for the next round's gate (Gate.prepare),
        so that a round's time from its last vote to its verdict holds only what depends on the new votes.
        Given up as soon as a round is due: the round samples what it lacks itself."""
        if self._paused or self.server.generating:
            return

        def due() -> bool:
            return self._stopping.is_set() or self._requested or (self._wake.is_set() and self.ready())

        try:
            if self.learner.prepare_gate(cancel=due):
                log.info("gate prepared: the serving version's probe replies for the next round are sampled")
        except SamplingCancelled:
            pass

    def _resting_state(self) -> str:
        return "paused" if self._paused else "idle"

    def _yield_to_chat(self) -> None:
        if self.server.cores is not None:
            self.server.cores.training_pause()

    def _update(self, **changes) -> None:
        with self._status_lock:
            for key, value in changes.items():
                setattr(self._status, key, value)
