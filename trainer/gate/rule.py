"""The gate a new adapter must pass before it serves: held-out preferences, KL, and no degeneration.

Visitors' votes are noisy and can be malicious, so a round's candidate is scored beside the
serving version on the same held-out rows (the seed eval split plus votes no round trains on):
AUC of implicit rewards liked vs disliked, mean margin, KL to the base. A few fixed prompts are
answered greedily to catch degeneration (few distinct bigrams, looping n-grams). The candidate
serves only if every configured check passes; otherwise it is kept, marked rejected, with reasons.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch

from .config import GateSettings
from .evaluate import EvalResult, RowScore, evaluate
from .model import BaseModel, twin
from .yielding import attached


def held_out(reply_id: str, share: float) -> bool:
    """Whether a reply's votes are held out from training, decided by a stable hash of its id."""
    return int(hashlib.sha256(reply_id.encode()).hexdigest()[:8], 16) % 1000 < share * 1000


def distinct_n(texts: list[str], n: int = 2) -> float:
    """Unique word n-grams over all word n-grams of the replies (1.0 = no n-gram repeats)."""
    grams = [tuple(words[i:i + n]) for words in (t.split() for t in texts) for i in range(len(words) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def repetition(text: str, n: int = 3) -> float:
    """Share of a reply's word n-grams that occur more than once in it (a looping reply nears 1)."""
    words = text.split()
    grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
    if not grams:
        return 0.0
    counts: dict[tuple, int] = {}
    for g in grams:
        counts[g] = counts.get(g, 0) + 1
    return sum(c for c in counts.values() if c > 1) / len(grams)


def quantiles(values: list[float], points: int = 21) -> list[float]:
    if not values:
        return []
    return torch.quantile(torch.tensor(values, dtype=torch.float64),
                          torch.linspace(0, 1, points, dtype=torch.float64)).tolist()


@dataclass
class Scores:
    """One version's held-out figures, with reward quantiles for the dashboard's quantile plot."""

    version: str
    auc: float
    margin: float
    kl: float
    distinct2: float
    repetition: float
    liked_quantiles: list[float] = field(default_factory=list)
    disliked_quantiles: list[float] = field(default_factory=list)

    @classmethod
    def of(cls, result: EvalResult, replies: list[str]) -> "Scores":
        return cls(result.version, result.auc, result.margin, result.kl, distinct_n(replies),
                   max((repetition(r) for r in replies), default=0.0),
                   quantiles(result.rewards_liked), quantiles(result.rewards_disliked))


@dataclass
class GateReport:
    passed: bool
    reasons: list[str]
    candidate: Scores
    serving: Scores
    rows: int

    def to_dict(self) -> dict:
        return asdict(self)


def decide(candidate: Scores, serving: Scores, settings: GateSettings) -> tuple[bool, list[str]]:
    """The gate's rule, as data: which checks the candidate fails (none = it serves)."""
    reasons = []
    if candidate.auc < serving.auc - settings.auc_tolerance:
        reasons.append(f"held-out AUC {candidate.auc:.3f} is below the serving {serving.version}'s "
                       f"{serving.auc:.3f} minus {settings.auc_tolerance}")
    if candidate.kl > settings.max_kl:
        reasons.append(f"KL to the base {candidate.kl:.3f} is over the cap {settings.max_kl}")
    if candidate.distinct2 < settings.min_distinct2:
        reasons.append(f"distinct-2 {candidate.distinct2:.2f} of probe replies is under {settings.min_distinct2}")
    if candidate.repetition > settings.max_repetition:
        reasons.append(f"a probe reply repeats {candidate.repetition:.0%} of its 3-grams "
                       f"(limit {settings.max_repetition:.0%})")
    return not reasons, reasons


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


@dataclass
class ScoreMemo:
    """What one adapter scored before: per held-out row (see evaluate.row_key), and its probe replies.

    The version serving now was scored as the candidate of the round that made it, so the next
    gate runs it again only on held-out rows that arrived since.
    """

    rows: dict[bytes, RowScore] = field(default_factory=dict)
    replies: dict[str, list[str]] = field(default_factory=dict)  # by the probe prompts and length


def adapter_digest(path: Path) -> str:
    """An adapter's identity for ScoreMemo: the hash of its weights and config (a version's folder may be renamed)."""
    digest = hashlib.sha256()
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        digest.update((path / name).read_bytes())
    return digest.hexdigest()


def score(base: BaseModel, make_model: Callable[[], torch.nn.Module] | None, version: str, rows: list[dict],
          prompts: list[list[dict]], settings: GateSettings, beta: float, memo: ScoreMemo | None = None) -> Scores:
    """Held-out scores of a version: `make_model()` builds it (None: the base itself), only if `memo` lacks
    a row or the probe replies. The model must not be a tree chat runs."""
    memo = ScoreMemo() if memo is None else memo
    build = functools.cache(make_model) if make_model is not None else None  # built once, if at all
    probes = json.dumps([prompts, settings.probe_tokens])
    if probes not in memo.replies:
        memo.replies[probes] = probe_replies(base, build() if build is not None else twin(base.model), prompts,
                                             settings.probe_tokens)
    result = evaluate(base, build, rows, version, beta=beta, known=memo.rows)
    return Scores.of(result, memo.replies[probes])


def check(candidate: Scores, serving: Scores, rows: int, settings: GateSettings) -> GateReport:
    passed, reasons = decide(candidate, serving, settings)
    return GateReport(passed=passed, reasons=reasons, candidate=candidate, serving=serving, rows=rows)
