"""One round of learning from votes: choose the votes, train, judge, publish, serve.

    select_votes  the waiting votes, split into training votes and gate votes (kept out of
                  training for good), a replay of already-trained ones, and seed anchors
    learn         rows -> train_round (the gate judges its adapter) -> serve it if it passed ->
                  mark the training votes as trained by the new version

Anchors are seed training rows of both labels (SEED_ANCHORS, a new draw each round): a round on
a handful of visitor votes keeps the persona it started from, and votes of one label alone can
train (a round on 24 dislikes would otherwise have nothing to contrast them with, and stall).

Any failure raises, with every vote still waiting and the serving version untouched; what to do
then is the loop's policy (loop.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .config import AppSettings
from .contracts import GateReport, VersionMeta
from .data import balanced_sample, conversational, kto_rows
from .gate.holdout import split_gate_votes
from .gate.judge import Gate
from .serve.model import BaseModel
from .serve.rollout import Rollout
from .store.files import read_preferences
from .store.versions import VersionStore
from .store.votes import Vote, VoteStore
from .train.reference import ReferenceCache
from .train.round import RoundHooks, RoundResult, train_round


class NotEnoughVotes(ValueError):
    """A round was asked for without rows of both labels to train on."""


@dataclass
class RoundVotes:
    """The votes one round reads."""

    training: list[Vote]   # waiting votes it trains on
    replayed: list[Vote]   # already-trained votes it trains on again
    gate: list[Vote]       # waiting votes it keeps for the gate instead
    anchors: list[dict] = field(default_factory=list)  # seed training rows, both labels


@dataclass
class Learned:
    result: RoundResult
    swap_seconds: float | None  # None: the gate kept the version from serving


def vote_keys(votes: list[Vote]) -> list[str]:
    return [f"{v.reply_id}:{v.voter}" for v in votes]


class Learner:
    def __init__(self, settings: AppSettings, base: BaseModel, votes: VoteStore, versions: VersionStore,
                 rollout: Rollout, gate: Gate):
        self.settings, self.base, self.votes, self.versions = settings, base, votes, versions
        self.rollout, self.gate = rollout, gate
        # Runs once a round's votes are marked trained (the Hub pushes then: the marks come after the publish).
        self.on_learned: Callable[[], None] = lambda: None
        self.reference_cache = ReferenceCache()  # the base's log-probs of rows, across rounds
        self._seed_training_rows: list[dict] | None = None

    def select_votes(self) -> RoundVotes:
        """Read the votes for a round; the gate's share of the waiting ones is marked as gate votes now."""
        training, gate = split_gate_votes(self.votes.votes(waiting=True), self.settings.gate.holdout_share)
        replayed = self.votes.votes(waiting=False, limit=self.settings.loop.replay_votes)
        self.votes.keep_for_gate(gate)
        return RoundVotes(training=training, replayed=replayed, gate=gate,
                          anchors=self.anchor_rows(draw=len(self.versions.names())))

    def anchor_rows(self, draw: int) -> list[dict]:
        """SEED_ANCHORS seed training rows, half of each label, a different draw per `draw`."""
        count, seed_file = self.settings.loop.seed_anchors, self.settings.gate.seed_file
        if count <= 0 or not seed_file.exists():
            return []
        if self._seed_training_rows is None:
            self._seed_training_rows = read_preferences(seed_file, split="train")
        persona = self.settings.persona.system_prompt
        return [conversational(r, persona) for r in balanced_sample(self._seed_training_rows, count, seed=draw)]

    def learn(self, chosen: RoundVotes, hooks: RoundHooks) -> Learned:
        if not chosen.training:
            raise NotEnoughVotes("after keeping votes for the gate, no waiting vote is left to train on")
        rows = kto_rows(chosen.training + chosen.replayed) + chosen.anchors
        if not any(r["label"] for r in rows) or all(r["label"] for r in rows):
            raise NotEnoughVotes("after keeping votes for the gate, the training rows lack a label "
                                 "(SEED_ANCHORS = 0: a round needs votes of both labels)")
        gate_rows = self.gate.rows()
        result = train_round(
            self.base, rows, self.versions.get(self.versions.current()), self.settings, self.versions,
            meta=VersionMeta(votes=vote_keys(chosen.training), replayed_votes=vote_keys(chosen.replayed),
                             anchor_rows=len(chosen.anchors),
                             gate_votes=len(gate_rows) - len(self.gate.seed_rows())),
            hooks=hooks, early_stop_rows=self.gate.early_stop_rows(gate_rows),
            gate=(lambda adapter_dir: self._judge(adapter_dir, gate_rows)) if self.settings.gate.enabled else None,
            reference_cache=self.reference_cache)
        swap = self.rollout.serve(result.version, reason="round") if result.passed else None
        self.votes.mark_trained(chosen.training, result.version)
        self.on_learned()
        return Learned(result=result, swap_seconds=swap)

    def _judge(self, adapter_dir: Path, rows: list[dict]) -> GateReport:
        """The gate's verdict on a candidate beside whatever serves at this moment."""
        serving = self.rollout.server.current.name
        return self.gate.judge(adapter_dir, serving, self.versions.get(serving).path, rows)
