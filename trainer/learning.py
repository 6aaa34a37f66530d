"""One round of learning from votes and picks: choose them, train, judge, publish, serve.

    select_votes  the waiting votes and picks, each split into training ones and gate ones (kept
                  out of training for good), a replay of already-trained ones, and seed anchors
    rows          what the round's loss reads: unpaired rows (thumbs; a pick as one liked and one
                  disliked reply) for kto / aot_unpaired, pairs (picks only) for dpo / ipo / aot
    learn         rows -> train_round (the gate judges its adapter) -> serve it if it passed ->
                  mark the votes and picks it trained on as trained by the new version

No voter is louder than the rest: a round takes at most VOTER_ROUND_CAP votes and picks of one voter
(serve/voters.py: a signed-in user, else a session at an address) and ADDRESS_ROUND_CAP from one address,
and the rounds of an hour VOTER_HOUR_CAP / ADDRESS_HOUR_CAP, oldest first; the rest wait for later
rounds, never lost, and a round does not start for votes that would all wait.

A round takes no more rows than its steps read (`row_budget`: new votes oldest first, then the anchors,
then replays), and a vote or pick is marked trained only if a batch the round trained on held its row
(train_round's `read`: early stopping, or labels cycled to fill batches, can leave some unread); any
other stays waiting for the next round.

Anchors are seed training rows (at most SEED_ANCHORS, a new draw each round) of the label the round's
new votes lack: a round on a handful of visitor votes keeps the persona it started from, and votes of
one label alone can train (a round on 24 dislikes would otherwise have nothing to contrast them with,
and stall). Visitors dislike far more than they like (2-5 liked of 24 in bench/learning.py's rounds), so
the anchors even out the labels (`anchor_labels`), as the KTO paper's class balance asks, and the
persona's own liked replies say what to do. Measured, that alone did not make rounds learn
(BENCHMARKS.md learning-crowd-128-anchors; README, Learning from votes). With 4-6 liked votes of 24, the
anchors are most of a round's liked rows; SEED_ANCHOR_MATCH draws them from the seed rows most like what
the voters liked so far (`voters_taste`: a crowd that likes named baselines gets anchors that name
baselines). Off by default: its one learning run had every round refused for unfinished replies.

Any failure raises, with every vote still waiting and the serving version untouched; what to do
then is the loop's policy (loop.py).
"""

from __future__ import annotations

import math
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence, TypeVar

from .config import AppSettings, LoopSettings
from .contracts import GateReport, Pick, RoundResult, TrainerError, VersionMeta, Vote
from .data import conversational, kto_rows, labelled_sample, pair_rows, paired_rows, pick_rows
from .gate.holdout import is_gate_vote, split_gate_votes
from .gate.judge import Gate
from .gate.reply_classifier import ReplyClassifier
from .model.base import BaseModel
from .serve.rollout import Rollout
from .store.files import read_preferences
from .store.versions import VersionStore
from .store.votes import VoteStore
from .train.recipe import round_config
from .train.reference import ReferenceCache
from .train.round import RoundHooks, train_round

HOUR = 3600.0
T = TypeVar("T")
# Anchors and replays per new row of a round, each. A round reads its rows once (KTO_NUM_TRAIN_EPOCHS 1), so
# its steps follow its new votes: 8 votes (7 after the gate's share) make 15 rows, 4 steps; 24 make 38 rows,
# 10 steps. A vote is read again when later rounds replay it. Before, every round filled up to 12 steps
# with anchors and replays read twice, and 8 votes took as long as 24 (bench/vote_to_version.py).
CONTEXT_SHARE = 0.5
# The newest votes (and picks) the voters' taste is fit on: a taste that changes follows, and a fit stays in
# the tens of milliseconds however long the Space has run.
TASTE_VOTES = 2000


def anchor_labels(count: int, desirable: int, undesirable: int) -> tuple[int, int]:
    """(desirable, undesirable) anchors out of `count` that bring a round of `desirable` and `undesirable` new
    rows closest to even labels: the lacking label first, the rest split evenly (the odd one desirable). 2
    desirable and 22 undesirable votes with 12 anchors: (12, 0); 12 and 12: (6, 6); 20 and 4: (0, 12). KTO's
    weights then balance the rest (data.class_weights, up to KTO_MAX_CLASS_WEIGHT)."""
    if count <= 0:
        return 0, 0
    n_desirable = min(count, max(0, (count + undesirable - desirable + 1) // 2))
    return n_desirable, count - n_desirable


@dataclass
class VoterTally:
    """What voters and addresses have put in (for caps): the rounds of the last hour, and the round at hand."""

    hour_voters: Counter = field(default_factory=Counter)
    hour_addresses: Counter = field(default_factory=Counter)
    round_voters: Counter = field(default_factory=Counter)
    round_addresses: Counter = field(default_factory=Counter)


def within_caps(items: Sequence[T], voter_of: Callable[[T], str], address_of: Callable[[T], str],
                caps: LoopSettings, tally: VoterTally) -> tuple[list[T], list[T]]:
    """`items` (oldest first) split into those the voter and address caps let into this round, and those that
    wait; `tally` is updated with what was let in. An unknown address ("") is capped by voter alone."""
    def fits(count: int, cap: int) -> bool:
        return cap == 0 or count + 1 <= cap

    kept, waiting = [], []
    for item in items:
        voter, address = voter_of(item), address_of(item)
        ok = fits(tally.round_voters[voter], caps.voter_round_cap) and fits(tally.hour_voters[voter],
                                                                              caps.voter_hour_cap)
        if address:
            ok = ok and fits(tally.round_addresses[address], caps.address_round_cap) and fits(
                tally.hour_addresses[address], caps.address_hour_cap)
        if not ok:
            waiting.append(item)
            continue
        kept.append(item)
        tally.round_voters[voter] += 1
        tally.hour_voters[voter] += 1
        if address:
            tally.round_addresses[address] += 1
            tally.hour_addresses[address] += 1
    return kept, waiting


class NotEnoughVotes(TrainerError, ValueError):
    """A round was asked for without rows of both labels to train on."""


@dataclass
class RoundVotes:
    """The votes one round reads."""

    training: list[Vote]   # waiting votes it trains on
    replayed: list[Vote]   # already-trained votes it trains on again
    gate: list[Vote]       # waiting votes it keeps for the gate instead
    anchors: list[dict] = field(default_factory=list)  # seed training rows, both labels (pairs for a paired loss)
    training_picks: list[Pick] = field(default_factory=list)
    replayed_picks: list[Pick] = field(default_factory=list)
    gate_picks: list[Pick] = field(default_factory=list)
    deferred: int = 0  # waiting votes and picks over a voter's or an address's cap: left for later rounds

    def last_vote_at(self) -> float | None:
        """When the newest of the waiting votes and picks this round reads (trains on, or keeps for the gate) was
        cast or last changed, epoch seconds; None without any."""
        times = [v.updated_at for v in self.training + self.gate] + [p.updated_at for p in
                                                                     self.training_picks + self.gate_picks]
        return max(times, default=None)

    def voter_shares(self) -> Counter:
        """Votes and picks this round trains on as new, per voter."""
        return Counter([v.identity for v in self.training] + [p.identity for p in self.training_picks])

    def address_shares(self) -> Counter:
        """The same, per client address (unknown addresses left out)."""
        return Counter([v.address for v in self.training if v.address] +
                       [p.address for p in self.training_picks if p.address])


@dataclass
class Learned:
    result: RoundResult
    swap_seconds: float | None  # None: the gate kept the version from serving


def vote_keys(votes: list[Vote]) -> list[str]:
    return [f"{v.reply_id}:{v.voter}" for v in votes]


def pick_keys(picks: list[Pick]) -> list[str]:
    return [f"{p.pair_id}:{p.voter}" for p in picks]


def _largest_share(counts: Counter, total: int | None = None) -> float | None:
    """The largest count's share of `total` (of all counts by default); None when there is nothing."""
    total = sum(counts.values()) if total is None else total
    return max(counts.values()) / total if total and counts else None


def _sourced(rows: list[dict], sources: list[str]) -> list[dict]:
    """`rows` tagged with the vote or pick each came from (train_round reports the sources it read)."""
    return [{**row, "source": source} for row, source in zip(rows, sources, strict=True)]


class Learner:
    def __init__(self, settings: AppSettings, base: BaseModel, votes: VoteStore, versions: VersionStore,
                 rollout: Rollout, gate: Gate):
        self.settings, self.base, self.votes, self.versions = settings, base, votes, versions
        self.rollout, self.gate = rollout, gate
        # Runs once a round's votes are marked trained (the Hub pushes then: the marks come after the publish).
        self.on_learned: Callable[[], None] = lambda: None
        self.reference_cache = ReferenceCache()  # the base's log-probs of rows, across rounds
        self._seed_training_rows: list[dict] | None = None

    @property
    def paired(self) -> bool:
        return self.settings.training.paired

    def waiting_counts(self) -> tuple[int, int]:
        """(liked, disliked) waiting replies this round's loss would train on: thumbs within the voter caps, and
        each pick as a liked and a disliked reply ("both bad": two disliked); for a paired loss, only picks of a
        better reply (one of each)."""
        decided, neither = self.votes.waiting_pick_counts()
        if self.paired:
            return decided, decided
        kept, _ = within_caps(self.votes.waiting_voters(), lambda v: v[1], lambda v: v[2], self.settings.loop,
                              self.tally_last_hour())
        up = sum(1 for label, _, _ in kept if label)
        return up + decided, len(kept) - up + decided + 2 * neither

    def votes_over_caps(self) -> int:
        """Waiting votes a round would not take yet, for the voter and address caps."""
        _, over = within_caps(self.votes.waiting_voters(), lambda v: v[1], lambda v: v[2], self.settings.loop,
                              self.tally_last_hour())
        return len(over)

    def tally_last_hour(self) -> VoterTally:
        """What each voter and address put into the rounds published in the last hour."""
        since, recent = time.time() - HOUR, []
        for name in reversed(self.versions.names()):
            published = self.versions.get(name).meta.published_at
            if published is not None and published < since:
                break
            recent.append(name)
        tally = VoterTally()
        for voter, address, count in self.votes.trained_by_voter(recent):
            tally.hour_voters[voter] += count
            if address:
                tally.hour_addresses[address] += count
        return tally

    def row_budget(self) -> int:
        """Rows one round's steps read: ROUND_MAX_STEPS x batch x accumulation."""
        args = round_config(self.settings, output_dir=".")
        return args.max_steps * args.per_device_train_batch_size * args.gradient_accumulation_steps

    def select_votes(self) -> RoundVotes:
        """Read the votes and picks for a round; the gate's share of the waiting ones is marked as gate ones now.

        The round takes, oldest first, only as many waiting votes and picks as its steps read (`row_budget`; a
        pick is two rows for an unpaired loss) less the anchors' share (all of them, up to half the budget),
        then anchors and replays, each at most CONTEXT_SHARE of the new rows, into what room is left; the rest
        keep waiting for the next round. A paired loss reads no thumbs: they keep waiting for an unpaired round.
        """
        share = self.settings.gate.holdout_share
        tally = self.tally_last_hour()
        waiting, deferred = within_caps(self.votes.votes(waiting=True), lambda v: v.identity, lambda v: v.address,
                                        self.settings.loop, tally)
        waiting_picks, deferred_picks = within_caps(self.votes.picks(waiting=True), lambda p: p.identity,
                                                    lambda p: p.address, self.settings.loop, tally)
        training, gate = split_gate_votes(waiting, share)
        gate_picks = [p for p in waiting_picks if is_gate_vote(p.pair_id, share)]
        training_picks = [p for p in waiting_picks if not is_gate_vote(p.pair_id, share)]
        replay = self.settings.loop.replay_votes
        replayed = self.votes.votes(waiting=False, limit=replay)
        replayed_picks = self.votes.picks(waiting=False, limit=replay)
        if self.paired:
            training, replayed = [], []
            training_picks = [p for p in training_picks if p.chosen is not None]
            replayed_picks = [p for p in replayed_picks if p.chosen is not None]
        draw = len(self.versions.names())
        anchor_count = self.settings.loop.seed_anchors if self.anchored else 0
        per_pick = 1 if self.paired else 2
        budget = self.row_budget()
        # New votes come first, but the anchors keep up to half the round: a round of one label still trains.
        room = budget - min(anchor_count, budget // 2)
        training_picks = training_picks[:room // per_pick]
        room -= per_pick * len(training_picks)
        training = training[:room]
        new_rows = per_pick * len(training_picks) + len(training)
        room = budget - new_rows
        # The anchors and the replays each add at most CONTEXT_SHARE of the new rows (at least two anchors): a
        # round's size, and so its time, follows its new votes.
        context = max(2, math.ceil(CONTEXT_SHARE * new_rows))
        anchor_count = min(anchor_count, room, context)
        # Pairs hold both labels already: only unpaired rounds fill the label their votes lack.
        liked = 0 if self.paired else sum(v.label for v in training) + sum(p.chosen is not None
                                                                            for p in training_picks)
        disliked = 0 if self.paired else new_rows - liked
        anchors = self.anchor_rows(draw, *anchor_labels(anchor_count, liked, disliked))
        room -= len(anchors)
        room = min(room, context)
        replayed_picks = replayed_picks[:room // per_pick]
        room -= per_pick * len(replayed_picks)
        replayed = replayed[:room]
        self.votes.keep_for_gate(gate)
        self.votes.keep_picks_for_gate(gate_picks)
        return RoundVotes(training=training, replayed=replayed, gate=gate, anchors=anchors,
                          training_picks=training_picks, replayed_picks=replayed_picks, gate_picks=gate_picks,
                          deferred=len(deferred) + len(deferred_picks))

    @property
    def anchored(self) -> bool:
        """Whether rounds train seed anchors (SEED_ANCHORS > 0 and the persona has a seed file): then votes of
        one label can train; without, a round needs votes of both."""
        seed_file = self.settings.gate.seed_file
        return self.settings.loop.seed_anchors > 0 and seed_file is not None and seed_file.exists()

    def anchor_rows(self, draw: int, desirable: int, undesirable: int) -> list[dict]:
        """Seed training rows of the persona, `desirable` and `undesirable` of each label (fewer where the seed has
        fewer), a different draw per `draw`, alternating labels while both last; for a paired loss, (desirable +
        undesirable) / 2 seed pairs (a liked and a disliked review of one paper), at least one. [] without a
        seed. Unpaired anchors come from the rows most like the voters' taste where one is known
        (data.labelled_sample's `liked`)."""
        if not self.anchored or desirable + undesirable <= 0:
            return []
        if self._seed_training_rows is None:
            self._seed_training_rows = read_preferences(self.settings.gate.seed_file, split="train")
        persona = self.settings.persona.system_prompt
        rng = random.Random(draw)
        if self.paired:
            pairs = paired_rows([conversational(r, persona) for r in self._seed_training_rows])
            return rng.sample(pairs, min(len(pairs), max(1, (desirable + undesirable) // 2)))
        taste = self.voters_taste() if self.settings.loop.seed_anchor_match else None
        liked = None if taste is None else (lambda row: taste.probability(row["completion"]))
        rows = labelled_sample(self._seed_training_rows, desirable, undesirable, rng, liked)
        return [conversational(r, persona) for r in rows]

    def voters_taste(self) -> ReplyClassifier | None:
        """What this Space's voters like, for matching anchors to them (SEED_ANCHOR_MATCH): the gate's kind of
        reply classifier, fit on every vote and pick on the training side (never a gate one: those judge the
        round); None before both labels are there."""
        share = self.settings.gate.holdout_share
        votes = [v for v in self.votes.all_votes(newest=TASTE_VOTES) if not is_gate_vote(v.reply_id, share)]
        picks = [p for p in self.votes.all_picks(newest=TASTE_VOTES) if not is_gate_vote(p.pair_id, share)]
        return ReplyClassifier.fit((r["completion"][-1]["content"], r["label"])
                                   for r in kto_rows(votes) + pick_rows(picks))

    def rows(self, chosen: RoundVotes) -> list[dict]:
        """The round's training rows, in the form its loss reads; NotEnoughVotes if they cannot make a round."""
        if self.paired:
            if not chosen.training_picks:
                raise NotEnoughVotes(f"LOSS={self.settings.training.loss} trains on picks: after keeping picks for "
                                     "the gate, no waiting pick of a better reply is left to train on")
            picks = chosen.training_picks + chosen.replayed_picks
            return _sourced(pair_rows(picks), [f"pick:{k}" for k in pick_keys(picks)]) + chosen.anchors
        if not chosen.training and not chosen.training_picks:
            raise NotEnoughVotes("after keeping votes for the gate, no waiting vote is left to train on")
        votes, picks = chosen.training + chosen.replayed, chosen.training_picks + chosen.replayed_picks
        rows = _sourced(kto_rows(votes), [f"vote:{k}" for k in vote_keys(votes)])
        rows += _sourced(pick_rows(picks), [f"pick:{k}" for k in pick_keys(picks) for _ in ("a", "b")])
        rows += chosen.anchors
        if not any(r["label"] for r in rows) or all(r["label"] for r in rows):
            raise NotEnoughVotes("after keeping votes for the gate, the training rows lack a label "
                                 "(SEED_ANCHORS = 0: a round needs votes of both labels)")
        return rows

    def learn(self, chosen: RoundVotes, hooks: RoundHooks) -> Learned:
        rows = self.rows(chosen)
        gate_rows = self.gate.rows()
        result = train_round(
            self.base, rows, self.versions.get(self.versions.current()), self.settings, self.versions,
            meta=VersionMeta(votes=vote_keys(chosen.training), replayed_votes=vote_keys(chosen.replayed),
                             picks=pick_keys(chosen.training_picks), replayed_picks=pick_keys(chosen.replayed_picks),
                             anchor_rows=len(chosen.anchors), voters=len(chosen.voter_shares()),
                             largest_voter_share=_largest_share(chosen.voter_shares()),
                             largest_address_share=_largest_share(chosen.address_shares(),
                                                                  len(chosen.training) + len(chosen.training_picks)),
                             deferred_votes=chosen.deferred,
                             gate_votes=len(gate_rows) - len(self.gate.seed_rows())),
            hooks=hooks, early_stop_score=self.gate.early_stop_scorer(gate_rows),
            gate=(lambda adapter_dir: self._judge(adapter_dir, gate_rows)) if self.settings.gate.enabled else None,
            reference_cache=self.reference_cache, seed=len(self.versions.names()), last_vote_at=chosen.last_vote_at())
        swap = self.rollout.serve(result.version, reason="round") if result.passed else None
        self.votes.mark_trained([v for v, k in zip(chosen.training, vote_keys(chosen.training))
                                 if f"vote:{k}" in result.read], result.version)
        self.votes.mark_picks_trained([p for p, k in zip(chosen.training_picks, pick_keys(chosen.training_picks))
                                       if f"pick:{k}" in result.read], result.version)
        self.on_learned()
        return Learned(result=result, swap_seconds=swap)

    def prepare_gate(self, cancel: Callable[[], bool] | None = None) -> bool:
        """Sample the serving version's probe replies for the next round's gate now (Gate.prepare); whether it
        sampled. Raises SamplingCancelled once `cancel()` says so."""
        if not self.settings.gate.enabled:
            return False
        return self.gate.prepare(draw=len(self.versions.names()), cancel=cancel)

    def _judge(self, adapter_dir: Path, rows: list[dict]) -> GateReport:
        """The gate's verdict on a candidate beside whatever serves at this moment."""
        serving = self.rollout.server.current.name
        return self.gate.judge(adapter_dir, serving, self.versions.get(serving).path, rows,
                               draw=len(self.versions.names()))
