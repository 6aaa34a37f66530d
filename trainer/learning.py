"""One round of learning from votes: choose the votes, train, judge, publish, serve.

    select_votes  the waiting votes, split into training votes and gate votes (kept out of
                  training for good), plus a replay of already-trained ones
    learn         rows -> train_round (the gate judges its adapter) -> serve it if it passed ->
                  mark the training votes as trained by the new version

Any failure raises, with every vote still waiting and the serving version untouched; what to do
then is the loop's policy (loop.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .config import AppSettings
from .contracts import GateReport, VersionMeta
from .data import kto_rows
from .gate.holdout import split_gate_votes
from .gate.judge import Gate
from .serve.model import BaseModel
from .serve.rollout import Rollout
from .store.versions import VersionStore
from .store.votes import Vote, VoteStore
from .train.reference import ReferenceCache
from .train.round import RoundHooks, RoundResult, train_round


class NotEnoughVotes(ValueError):
    """A round was asked for without votes of both labels to train on."""


@dataclass
class RoundVotes:
    """The votes one round reads."""

    training: list[Vote]   # waiting votes it trains on
    replayed: list[Vote]   # already-trained votes it trains on again
    gate: list[Vote]       # waiting votes it keeps for the gate instead


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
        self.reference_cache = ReferenceCache()  # the base's log-probs of rows, across rounds

    def select_votes(self) -> RoundVotes:
        """Read the votes for a round; the gate's share of the waiting ones is marked as gate votes now."""
        training, gate = split_gate_votes(self.votes.votes(waiting=True), self.settings.gate.holdout_share)
        replayed = self.votes.votes(waiting=False, limit=self.settings.loop.replay_votes)
        self.votes.keep_for_gate(gate)
        return RoundVotes(training=training, replayed=replayed, gate=gate)

    def learn(self, chosen: RoundVotes, hooks: RoundHooks) -> Learned:
        rows = kto_rows(chosen.training + chosen.replayed)
        if not any(r["label"] for r in rows) or all(r["label"] for r in rows):
            raise NotEnoughVotes("after keeping votes for the gate, the training votes lack a label")
        gate_rows = self.gate.rows()
        result = train_round(
            self.base, rows, self.versions.get(self.versions.current()), self.settings, self.versions,
            meta=VersionMeta(votes=vote_keys(chosen.training), replayed_votes=vote_keys(chosen.replayed),
                             gate_votes=len(gate_rows) - len(self.gate.seed_rows())),
            hooks=hooks, early_stop_rows=self.gate.early_stop_rows(gate_rows),
            gate=(lambda adapter_dir: self._judge(adapter_dir, gate_rows)) if self.settings.gate.enabled else None,
            reference_cache=self.reference_cache)
        swap = self.rollout.serve(result.version, reason="round") if result.passed else None
        self.votes.mark_trained(chosen.training, result.version)
        return Learned(result=result, swap_seconds=swap)

    def _judge(self, adapter_dir: Path, rows: list[dict]) -> GateReport:
        """The gate's verdict on a candidate beside whatever serves at this moment."""
        serving = self.rollout.server.current.name
        return self.gate.judge(adapter_dir, serving, self.versions.get(serving).path, rows)
