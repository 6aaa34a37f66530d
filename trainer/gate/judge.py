"""The gate at work: a round's candidate and the serving version scored on the same gate rows.

`Gate.judge` samples both versions' replies to the round's probe messages through the decode loop,
from the copies that would serve (probes.py), scores those same copies on the held-out rows, and
applies the rule (rule.py). Row scores are remembered per adapter
(memo.py), so the serving version is scored only on rows it has not been scored on. The scoring
models are built on trees private to the trainer's thread: the tree chat runs never gets pause hooks.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from pathlib import Path
from typing import Callable

import torch

from ..config import AppSettings
from ..contracts import EarlyStopScore, GateReport, ProbeReply, ReplySampler, Scores, ServedCopy
from ..data import kto_rows, pick_rows
from ..model.base import BaseModel, twin
from ..model.memory import release_free_memory
from ..store.versions import BASE
from ..store.votes import VoteStore
from .evaluate import evaluate
from .holdout import seed_eval_replies, seed_eval_rows, seed_probe_messages
from .memo import ScoreMemo, adapter_digest
from .probes import draw_probe_messages, sample_probe_replies
from .reply_classifier import ReplyClassifier
from .rule import check, looks_worse, scores_of, undecided

# A second look draws papers and seeds of their own: the round's draw number plus this.
SECOND_LOOK_DRAW = 1_000_003


def score(base: BaseModel, make_model: Callable[[], torch.nn.Module] | None, version: str, rows: list[dict],
          probe_replies: list[ProbeReply], beta: float, memo: ScoreMemo | None = None) -> Scores:
    """A version's scores: `make_model()` builds it (None: the base itself), only if `memo` lacks a row.
    The model must not be a tree chat runs."""
    memo = ScoreMemo() if memo is None else memo
    build = functools.cache(make_model) if make_model is not None else None  # built once, if at all
    result = evaluate(base, build, rows, version, beta=beta, known=memo.rows)
    return scores_of(result, probe_replies)


class Gate:
    """Judges candidates for one app: knows its gate rows, probe messages, what each adapter scored, and the
    server whose decode loop samples the probe replies."""

    def __init__(self, settings: AppSettings, base: BaseModel, votes: VoteStore, server: ReplySampler):
        self.settings, self.base, self.votes, self.server = settings, base, votes, server
        self._seed_rows: list[dict] | None = None
        self._seed_eval_replies: list[tuple[str, bool]] | None = None
        self._probe_pool: list[str] | None = None
        self._memos: dict[str, ScoreMemo] = {}  # by adapter digest (BASE for the base)
        # The serving version's probe replies sampled ahead of a round, by (version, draw, messages).
        self._prepared: dict[tuple, list[ProbeReply]] = {}

    def seed_rows(self) -> list[dict]:
        if self._seed_rows is None:
            self._seed_rows = seed_eval_rows(self.settings.gate, self.settings.persona.system_prompt)
        return self._seed_rows

    def rows(self) -> list[dict]:
        """The gate rows: the seed eval rows, then every gate vote, then every gate pick (as a liked and a
        disliked row of one prompt: a held-out pair)."""
        return self.seed_rows() + kto_rows(self.votes.gate_votes()) + pick_rows(self.votes.gate_picks())

    def reply_classifier(self) -> ReplyClassifier | None:
        """The classifier the probe replies are read with (GATE_CLASSIFIER), fit on every held-out labelled
        reply: the whole seed eval split (not only the GATE_SEED_ROWS scored), the gate votes and the gate picks;
        None when off or without both labels."""
        if not self.settings.gate.classifier:
            return None
        if self._seed_eval_replies is None:
            self._seed_eval_replies = seed_eval_replies(self.settings.gate)
        held_out = kto_rows(self.votes.gate_votes()) + pick_rows(self.votes.gate_picks())
        return ReplyClassifier.fit(self._seed_eval_replies + [(r["completion"][-1]["content"], r["label"])
                                                              for r in held_out])

    def early_stop_rows(self, rows: list[dict]) -> list[dict]:
        """The gate rows a round scores itself on every few steps (GATE_EARLY_STOP_ROWS, to keep rounds short):
        the newest gate votes, up to half of them, so that a round stops where the voters' taste peaks and
        not only the seed set's; seed eval rows fill the rest, and give AUC both labels."""
        count, seed = self.settings.gate.early_stop_rows, len(self.seed_rows())
        votes = rows[seed:][-(count // 2):] if count >= 2 else []
        return rows[:min(seed, count - len(votes))] + votes

    def early_stop_scorer(self, rows: list[dict]) -> Callable[[torch.nn.Module, int, torch.dtype | None],
                                                              EarlyStopScore] | None:
        """A round's early-stopping score (train/early_stopping.py) on `early_stop_rows(rows)`: AUC, margin, KL and
        pair accuracy of the adapter being trained, under the round's autocast; None without both labels (AUC
        needs them)."""
        scored = self.early_stop_rows(rows)
        if len({r["label"] for r in scored}) < 2:
            return None

        def score(model: torch.nn.Module, step: int, autocast: torch.dtype | None) -> EarlyStopScore:
            result = evaluate(self.base, model, scored, f"step {step}", beta=self.settings.beta, autocast=autocast)
            return EarlyStopScore(step, result.auc, result.margin, result.kl, result.pair_accuracy)
        return score

    def probe_messages(self, draw: int) -> list[str]:
        """The round's probe messages, a new draw of GATE_PROBE_PROMPTS per `draw`: from the seed eval split (no
        round trains on it) and the persona's probe_prompts; for a persona without seed data, from its
        probe_prompts, its examples and the messages of the gate votes (visitors' messages kept out of
        training)."""
        if self._probe_pool is None:
            self._probe_pool = seed_probe_messages(self.settings.gate)
        persona = self.settings.persona
        pool = self._probe_pool + list(persona.probe_prompts)
        if not self._probe_pool:
            pool += list(persona.examples) + [vote.prompt[-1]["content"] for vote in self.votes.gate_votes()
                                              if vote.prompt and vote.prompt[-1]["role"] == "user"]
        return draw_probe_messages(pool, self.settings.gate.probe_prompts, draw)

    def probe_replies(self, versions: list[ServedCopy], draws: list[int],
                      cancel: Callable[[], bool] | None = None) -> list[list[ProbeReply]]:
        """The versions' sampled replies to the probe messages of each of `draws` (looks), in one batch: a list per
        version, draw after draw."""
        gate = self.settings.gate
        return sample_probe_replies(self.server, versions, self.settings.persona.system_prompt,
                                    [(draw, self.probe_messages(draw)) for draw in draws], gate.probe_samples,
                                    gate.probe_tokens or None, gate.max_repetition, cancel)

    def prepare(self, draw: int, cancel: Callable[[], bool] | None = None) -> bool:
        """Sample the serving version's probe replies for the round of `draw` ahead of it, and for every further
        look it may take (GATE_SECOND_LOOK, GATE_MAX_LOOKS): they do not depend on the candidate, so the round's
        gate then samples the candidate's alone (half the batch, and the decode loop's time is per step). Draws
        are sampled in look order and each is kept as soon as it is done. Whether it sampled; False when already
        prepared or probes are off. Raises SamplingCancelled once `cancel()` says so (a round is due: it samples
        what it lacks itself)."""
        gate = self.settings.gate
        if gate.probe_prompts <= 0 or gate.probe_samples <= 0:
            return False
        serving = self.server.current
        draws = self.look_draws(draw)
        keys = [(serving.name, d, tuple(self.probe_messages(d))) for d in draws]
        self._prepared = {key: replies for key, replies in self._prepared.items() if key in keys}
        missing = [(d, key) for d, key in zip(draws, keys) if key not in self._prepared]
        for d, key in missing:
            self._prepared[key] = self.probe_replies([serving], [d], cancel)[0]
        return bool(missing)

    def judge(self, candidate_dir: Path, serving: str, serving_dir: Path | None, rows: list[dict],
              draw: int = 0) -> GateReport:
        """Score the candidate adapter beside the serving version (`serving_dir` None: the base) on `rows`, and on
        their sampled replies to the probe messages of `draw` (a round's number)."""
        beta = self.settings.beta
        memos = {}

        def memo(path: Path | None) -> ScoreMemo:
            key = BASE if path is None else adapter_digest(path)
            memos[key] = self._memos.get(key) or ScoreMemo()
            return memos[key]

        current = self.server.current
        serving_copy = current if current.name == serving else self.server.load(serving, serving_dir)
        candidate_copy = self.server.load("candidate", candidate_dir)
        candidate_twin = serving_twin = None
        try:
            started = time.perf_counter()
            replies = self._sampled(candidate_copy, serving_copy, draw, self.reply_classifier())
            sampled = time.perf_counter()
            # Scored on twins of the copies that serve (merged, CHAT_DTYPE): what visitors get, and 2-5x
            # faster than an fp32 PEFT tree here; the twin is private, so chat's tree never gets pause hooks.
            candidate_twin = functools.partial(twin, candidate_copy.model)
            serving_twin = None if serving_dir is None else functools.partial(twin, serving_copy.model)
            candidate = score(self.base, candidate_twin, "candidate", rows, replies[0], beta, memo(candidate_dir))
            serving_scores = score(self.base, serving_twin, serving, rows, replies[1], beta, memo(serving_dir))
        finally:
            del candidate_copy, serving_copy, candidate_twin, serving_twin
            release_free_memory()
        scored = time.perf_counter()
        # Kept: the candidate's (the next gate's serving version if it passes) and the serving version's.
        self._memos = memos
        report = check(candidate, serving_scores, len(rows), self.settings.gate)
        per_look = len(self.probe_messages(draw)) * self.settings.gate.probe_samples
        looks = -(-len(replies[0]) // per_look) if per_look else 0
        return dataclasses.replace(report, probe_s=sampled - started, score_s=scored - sampled,
                                   second_look=looks > 1, looks=looks)

    def look_draws(self, draw: int) -> list[int]:
        """The draws of every look the gate of round `draw` may take, in order (GATE_SECOND_LOOK, GATE_MAX_LOOKS)."""
        gate = self.settings.gate
        looks = max(gate.max_looks, 2) if gate.second_look else 1
        return [draw + look * SECOND_LOOK_DRAW for look in range(looks)]

    def is_prepared(self, draw: int) -> bool:
        """Whether the serving version's probe replies for `draw` and its further looks' are sampled (prepare)."""
        draws = self.look_draws(draw)
        prepared = {key[:2] for key in list(self._prepared)}  # the loop thread may be adding one
        return all((self.server.current.name, d) in prepared for d in draws)

    def _sampled(self, candidate: ServedCopy, serving: ServedCopy, draw: int,
                 classifier: ReplyClassifier | None = None) -> list[list[ProbeReply]]:
        """Probe replies of the candidate and of the serving version (from their serving copies; the serving
        version's from `prepare` when it sampled those draws). With GATE_SECOND_LOOK, GATE_LOOKS_AT_ONCE draws
        (looks) are sampled in one batch; more while the candidate looks worse: after a single look, beyond the
        noise or not (rule.looks_worse); after more, while it looks worse without a verdict (rule.undecided), up
        to GATE_MAX_LOOKS draws in all."""
        gate = self.settings.gate
        if gate.probe_prompts <= 0 or gate.probe_samples <= 0:
            return [[], []]
        draws = self.look_draws(draw)

        def read(replies: list[ProbeReply]) -> list[ProbeReply]:
            if classifier is None:
                return replies
            return [dataclasses.replace(r, liked=classifier.probability(r.text)) for r in replies]

        def both(first: int) -> list[list[ProbeReply]]:
            """The looks from `first` on, GATE_LOOKS_AT_ONCE of them (fewer at the last), in one batch."""
            batch = draws[first:first + max(1, gate.looks_at_once)]
            prepared = [self._prepared.get((serving.name, d, tuple(self.probe_messages(d)))) for d in batch]
            if all(replies is not None for replies in prepared):
                return [read(self.probe_replies([candidate], batch)[0]), read([r for rs in prepared for r in rs])]
            return [read(replies) for replies in self.probe_replies([candidate, serving], batch)]

        per_look = len(self.probe_messages(draw)) * gate.probe_samples
        replies = both(0)
        # A second look whenever a single one looks worse: 16 pairs are too few even for a verdict beyond the
        # noise (8 of 8 against 0 has no spread to read). Later ones only while no rule has decided (rule.undecided).
        while len(replies[0]) < len(draws) * per_look and (
                looks_worse(*replies, gate) if len(replies[0]) <= per_look else undecided(*replies, gate)):
            more = both(-(-len(replies[0]) // per_look))
            replies = [replies[0] + more[0], replies[1] + more[1]]
        return replies
