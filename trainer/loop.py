"""The in-process trainer thread: wakes on enough new votes (or "train now"), runs a round, swaps it in.

A round runs on the daemon thread, pauses for chat at every layer (yielding.py), publishes a version,
moves the `CURRENT` pointer and swaps the new version into serving. Any failure is caught,
shown in the status and leaves the serving version and every vote as they were; the loop then
waits for new votes (or an admin) before it tries again, instead of failing in a tight loop.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from .config import AppSettings
from .data import conversational, kto_rows
from .files import read_preferences
from .gate import GateReport, ScoreMemo, adapter_digest, check, held_out, score
from .memory import release_free_memory
from .model import BaseModel, with_adapter
from .rounds import ReferenceCache, RoundHooks, RoundResult, train_round
from .serving import Server
from .versions import BASE, VersionStore
from .votes import HELD_OUT, VoteStore

log = logging.getLogger(__name__)

# How long the trainer runs without yielding after chat has kept it waiting for MAX_YIELD_SECONDS.
TRAINER_TURN_SECONDS = 2.0


class NotEnoughVotes(ValueError):
    """A round was asked for without votes of both labels waiting."""


@dataclass
class TrainerStatus:
    state: str = "idle"               # idle | training | paused | stopped
    step: int = 0
    total_steps: int = 0
    rounds: int = 0
    last_version: str | None = None
    last_round_seconds: float | None = None
    last_error: str | None = None
    last_rejection: str | None = None  # why the gate kept the last round's version from serving
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
        self._serve_lock = threading.Lock()
        self._failed_waiting: int | None = None  # waiting-vote count when the last round failed
        self._paused = False
        self._seed_cache: list[dict] | None = None
        self._score_memos: dict[str, ScoreMemo] = {}  # by adapter digest: rows each has scored
        self._thread: threading.Thread | None = None
        self._turn_ends = 0.0
        self._reference_cache = ReferenceCache()

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

    def ready(self) -> bool:
        if self._paused:
            return False
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
        """Run one round on the waiting votes; serve it if the gate passes. None if it failed (see status)."""
        with self._round_lock:
            self._requested = False
            waiting = self.votes.votes(waiting=True)
            share = self.settings.gate.holdout_share
            held = [v for v in waiting if held_out(v.reply_id, share)]
            new = [v for v in waiting if not held_out(v.reply_id, share)]
            replay = self.votes.votes(waiting=False, limit=self.settings.loop.replay_votes)
            self.votes.mark_trained(held, HELD_OUT)
            self._update(state="training", step=0, total_steps=0, last_error=None)
            started = time.time()
            try:
                rows = kto_rows(new + replay)
                if not any(r["label"] for r in rows) or all(r["label"] for r in rows):
                    raise NotEnoughVotes("after holding out votes for the gate, the training votes lack a label")
                parent = self.versions.get(self.versions.current())
                evaluation_rows = self.held_out_rows()
                result = train_round(
                    self.base, rows, parent, self.settings, self.versions,
                    meta={"votes": [f"{v.reply_id}:{v.voter}" for v in new],
                          "replayed_votes": [f"{v.reply_id}:{v.voter}" for v in replay],
                          "held_out_votes": len(evaluation_rows) - len(self._seed_rows())},
                    hooks=RoundHooks(progress=lambda step, total: self._update(step=step, total_steps=total),
                                     yield_to_chat=self._yield_to_chat),
                    held_out=evaluation_rows[:self.settings.gate.early_stop_rows],
                    gate=(lambda adapter_dir: self.gate(adapter_dir, evaluation_rows))
                    if self.settings.gate.enabled else None,
                    reference_cache=self._reference_cache)
                pause = self._serve(result.version, reason="round") if result.passed else None
                self.votes.mark_trained(new, result.version)
            except Exception as err:
                log.exception("round failed")
                self._failed_waiting = len(new)
                self._update(state=self._resting_state(), last_error=f"{type(err).__name__}: {err}",
                             last_round_seconds=time.time() - started)
                return None
            self._failed_waiting = None
            with self._status_lock:
                self._status.rounds += 1
            rejection = None if result.passed else "; ".join(result.gate.reasons)
            self._update(state=self._resting_state(), last_version=result.version,
                         last_round_seconds=time.time() - started, last_rejection=rejection,
                         **({"last_swap_ms": pause * 1e3} if pause is not None else {}))
            return result

    def rollback(self, name: str) -> None:
        """Serve an earlier version (or "base") now; recorded in the version history.

        It does not wait for a round under way, which may still serve its own version when it
        ends: pause the trainer first to keep the rollback.
        """
        self._serve(name, reason="rollback")

    def _serve(self, name: str, reason: str) -> float:
        """Point CURRENT at `name` and swap it into serving; returns the longest swap's seconds.

        A version that serves merged is swapped in twice: first unmerged (no weights of its own), and
        merged once the old version's replies have ended. Its merged copy is then built after the old
        one is freed, not beside it, which would hold three copies of the adapted weights at once.
        """
        path = self.versions.get(name).path
        two_steps = self.server.merges and name != BASE and path is not None
        served = self.server.load(name, path, merged=not two_steps)  # built before the pointer moves
        with self._serve_lock:  # the pointer file and the serving reference always name the same version
            self.versions.set_current(name, reason=reason)
            pause = self.server.swap(served)
        if not two_steps:
            return pause
        del served
        self.server.wait_idle(self.settings.loop.max_yield_seconds)  # replies of the old version end: it is freed
        release_free_memory()  # its pages go back before the new copy takes as many
        merged = self.server.load(name, path)
        with self._serve_lock:
            if self.server.current.name != name:  # served something else meanwhile (a rollback): leave it
                return pause
            return max(pause, self.server.swap(merged))

    # -- held-out data and the gate --------------------------------------------------------------

    def _seed_rows(self) -> list[dict]:
        gate = self.settings.gate
        if self._seed_cache is None:
            rows = []
            if gate.seed_rows > 0 and gate.seed_file.exists():
                rows = [conversational(r, self.settings.persona.system_prompt)
                        for r in read_preferences(gate.seed_file, split="eval")[:gate.seed_rows]]
            self._seed_cache = rows
        return self._seed_cache

    def held_out_rows(self) -> list[dict]:
        """The seed eval rows plus every held-out vote: rows no round ever trains on."""
        return self._seed_rows() + kto_rows(self.votes.held_out_votes())

    def _probe_prompts(self) -> list[list[dict]]:
        persona = self.settings.persona
        return [[{"role": "system", "content": persona.system_prompt}, {"role": "user", "content": example}]
                for example in persona.examples[:self.settings.gate.probe_prompts]]

    def gate(self, adapter_dir: Path, rows: list[dict]) -> GateReport:
        """Score the adapter in `adapter_dir` beside the serving version on `rows`; the report says if it may serve."""
        gate, beta = self.settings.gate, self.settings.round_config(output_dir=".").beta
        prompts, memos = self._probe_prompts(), {}

        def memo(path: Path | None) -> ScoreMemo:
            key = BASE if path is None else adapter_digest(path)
            memos[key] = self._score_memos.get(key) or ScoreMemo()
            return memos[key]

        candidate = score(self.base, lambda: with_adapter(self.base, adapter_dir), "candidate", rows, prompts, gate,
                          beta, memo(adapter_dir))
        serving = self.server.current
        path = None if serving.name == BASE else self.versions.get(serving.name).path
        # Scored on a tree of its own: the one chat runs must not get the trainer's pause hooks.
        serving_scores = score(self.base, None if path is None else (lambda: with_adapter(self.base, path)),
                               serving.name, rows, prompts, gate, beta, memo(path))
        # Kept: the candidate's (the next gate's serving version if it passes) and the serving version's.
        self._score_memos = memos
        return check(candidate, serving_scores, len(rows), gate)

    def _resting_state(self) -> str:
        return "paused" if self._paused else "idle"

    def _yield_to_chat(self) -> None:
        if time.monotonic() < self._turn_ends:
            return
        if not self.server.wait_idle(self.settings.loop.max_yield_seconds):
            # Chat kept the cores busy for the whole cap: take a turn, so that rounds still end.
            self._turn_ends = time.monotonic() + TRAINER_TURN_SECONDS

    def _update(self, **changes) -> None:
        with self._status_lock:
            for key, value in changes.items():
                setattr(self._status, key, value)
