"""The gate at work: a round's candidate and the serving version scored on the same gate rows.

`Gate.judge` scores the candidate adapter beside the serving version (held-out preferences, and
greedy replies to held-out probe prompts) and applies the rule (rule.py). Scores are remembered
per adapter (memo.py), so the serving version is scored only on rows it has not been scored on. Models are
built on trees private to the trainer's thread: the tree chat runs never gets pause hooks.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Callable

import torch

from ..config import AppSettings, GateSettings
from ..contracts import GateReport, Scores
from ..data import kto_rows, pick_rows
from ..serve.model import BaseModel, twin, with_adapter
from ..store.versions import BASE
from ..store.votes import VoteStore
from ..train.yielding import attached
from .evaluate import evaluate
from .holdout import seed_eval_rows, seed_probe_messages
from .memo import ScoreMemo, adapter_digest
from .rule import check, scores_of


@torch.inference_mode()
def probe_replies(base: BaseModel, model: torch.nn.Module, prompts: list[list[dict]], max_new_tokens: int) -> list[str]:
    """Greedy replies to fixed prompts: deterministic, so two versions are compared like for like."""
    replies = []
    with attached(model):
        for messages in prompts:
            inputs = base.tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                                        return_dict=True).to(base.device)
            output = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False,
                                    pad_token_id=base.tokenizer.pad_token_id)
            replies.append(base.tokenizer.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True))
    return replies


def score(base: BaseModel, make_model: Callable[[], torch.nn.Module] | None, version: str, rows: list[dict],
          prompts: list[list[dict]], settings: GateSettings, beta: float, memo: ScoreMemo | None = None) -> Scores:
    """A version's scores: `make_model()` builds it (None: the base itself), only if `memo` lacks a row
    or the probe replies. The model must not be a tree chat runs."""
    memo = ScoreMemo() if memo is None else memo
    build = functools.cache(make_model) if make_model is not None else None  # built once, if at all
    probes = json.dumps([prompts, settings.probe_tokens])
    if probes not in memo.replies:
        memo.replies[probes] = probe_replies(base, build() if build is not None else twin(base.model), prompts,
                                             settings.probe_tokens)
    result = evaluate(base, build, rows, version, beta=beta, known=memo.rows)
    return scores_of(result, memo.replies[probes], [messages[-1]["content"] for messages in prompts])


class Gate:
    """Judges candidates for one app: knows its gate rows, probe prompts, and what each adapter scored."""

    def __init__(self, settings: AppSettings, base: BaseModel, votes: VoteStore):
        self.settings, self.base, self.votes = settings, base, votes
        self._seed_rows: list[dict] | None = None
        self._probe_messages: list[str] | None = None
        self._memos: dict[str, ScoreMemo] = {}  # by adapter digest (BASE for the base)

    def seed_rows(self) -> list[dict]:
        if self._seed_rows is None:
            self._seed_rows = seed_eval_rows(self.settings.gate, self.settings.persona.system_prompt)
        return self._seed_rows

    def rows(self) -> list[dict]:
        """The gate rows: the seed eval rows, then every gate vote, then every gate pick (as a liked and a
        disliked row of one prompt: a held-out pair)."""
        return self.seed_rows() + kto_rows(self.votes.gate_votes()) + pick_rows(self.votes.gate_picks())

    def early_stop_rows(self, rows: list[dict]) -> list[dict]:
        """The gate rows a round scores itself on every few steps (GATE_EARLY_STOP_ROWS, to keep rounds short):
        the newest gate votes, up to half of them, so that a round stops where the voters' taste peaks and
        not only the seed set's; seed eval rows fill the rest, and give AUC both labels."""
        count, seed = self.settings.gate.early_stop_rows, len(self.seed_rows())
        votes = rows[seed:][-(count // 2):] if count >= 2 else []
        return rows[:min(seed, count - len(votes))] + votes

    def probe_prompts(self) -> list[list[dict]]:
        """Prompts no round trains on: the seed eval split's (one per paper), else the persona's examples."""
        persona, count = self.settings.persona, self.settings.gate.probe_prompts
        if self._probe_messages is None:
            self._probe_messages = seed_probe_messages(self.settings.gate, count) or persona.examples[:count]
        return [[{"role": "system", "content": persona.system_prompt}, {"role": "user", "content": m}]
                for m in self._probe_messages]

    def judge(self, candidate_dir: Path, serving: str, serving_dir: Path | None, rows: list[dict]) -> GateReport:
        """Score the candidate adapter beside the serving version (`serving_dir` None: the base) on `rows`."""
        gate, beta = self.settings.gate, self.settings.round_config(output_dir=".").beta
        prompts, memos = self.probe_prompts(), {}

        def memo(path: Path | None) -> ScoreMemo:
            key = BASE if path is None else adapter_digest(path)
            memos[key] = self._memos.get(key) or ScoreMemo()
            return memos[key]

        candidate = score(self.base, lambda: with_adapter(self.base, candidate_dir), "candidate", rows, prompts,
                          gate, beta, memo(candidate_dir))
        serving_scores = score(self.base, None if serving_dir is None else (lambda: with_adapter(self.base,
                                                                                                 serving_dir)),
                               serving, rows, prompts, gate, beta, memo(serving_dir))
        # Kept: the candidate's (the next gate's serving version if it passes) and the serving version's.
        self._memos = memos
        return check(candidate, serving_scores, len(rows), gate)
