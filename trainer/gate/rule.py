"""The rule a round's candidate must pass to serve, and the degeneration measures it uses.

Visitors' votes are noisy and can be malicious, so a candidate is scored beside the serving
version on the same gate rows (see holdout.py): AUC of implicit rewards liked vs disliked, mean
margin, KL to the base, and rewards/accuracy on the held-out pairs among them. A few held-out prompts are answered greedily: the replies must pass the
reply checks (rubric.py: finished, about the prompt, in their own words, not looping) about as
often as the serving version's do, and must not degenerate (few distinct bigrams, looping n-grams).
The candidate serves only if every configured check passes; otherwise it is kept, marked
rejected, with the reasons. Pure: scores in, verdict out.
"""

from __future__ import annotations

import torch

from ..config import GateSettings
from ..contracts import GateReport, Scores
from .evaluate import EvalResult
from .rubric import repetition, rubric_score


def distinct_n(texts: list[str], n: int = 2) -> float:
    """Unique word n-grams over all word n-grams of the replies (1.0 = no n-gram repeats)."""
    grams = [tuple(words[i:i + n]) for words in (t.split() for t in texts) for i in range(len(words) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def quantiles(values: list[float], points: int = 21) -> list[float]:
    if not values:
        return []
    return torch.quantile(torch.tensor(values, dtype=torch.float64),
                          torch.linspace(0, 1, points, dtype=torch.float64)).tolist()


def scores_of(result: EvalResult, probe_replies: list[str], probe_messages: list[str]) -> Scores:
    """A version's scores: its evaluation on the gate rows, and its replies to the probe messages
    (reply checks and degeneration)."""
    return Scores(result.version, result.auc, result.margin, result.kl, distinct_n(probe_replies),
                  max((repetition(r) for r in probe_replies), default=0.0),
                  rubric_score(probe_replies, probe_messages) if probe_replies else None,
                  quantiles(result.rewards_liked), quantiles(result.rewards_disliked), result.pair_accuracy,
                  quantiles(result.pair_log_ratios), quantiles(result.base_pair_log_ratios))


def decide(candidate: Scores, serving: Scores, settings: GateSettings) -> tuple[bool, list[str]]:
    """Which checks the candidate fails (none = it serves)."""
    reasons = []
    if candidate.auc < serving.auc - settings.auc_tolerance:
        reasons.append(f"held-out AUC {candidate.auc:.3f} is below the serving {serving.version}'s "
                       f"{serving.auc:.3f} minus {settings.auc_tolerance}")
    if candidate.pair_accuracy is not None and serving.pair_accuracy is not None and \
            candidate.pair_accuracy < serving.pair_accuracy - settings.pair_tolerance:
        reasons.append(f"rewards/accuracy on held-out pairs {candidate.pair_accuracy:.3f} is below the serving "
                       f"{serving.version}'s {serving.pair_accuracy:.3f} minus {settings.pair_tolerance}")
    if candidate.rubric is not None and serving.rubric is not None and \
            candidate.rubric < serving.rubric - settings.rubric_tolerance:
        reasons.append(f"its replies to held-out prompts pass {candidate.rubric:.0%} of the reply checks, below the "
                       f"serving {serving.version}'s {serving.rubric:.0%} minus {settings.rubric_tolerance:.0%}")
    if candidate.kl > settings.max_kl and candidate.kl > serving.kl:  # moving back towards the base is fine
        reasons.append(f"KL to the base {candidate.kl:.3f} is over the cap {settings.max_kl} (and above the serving "
                       f"{serving.version}'s {serving.kl:.3f})")
    if candidate.distinct2 < settings.min_distinct2:
        reasons.append(f"distinct-2 {candidate.distinct2:.2f} of probe replies is under {settings.min_distinct2}")
    if candidate.repetition > settings.max_repetition:
        reasons.append(f"a probe reply repeats {candidate.repetition:.0%} of its 3-grams "
                       f"(limit {settings.max_repetition:.0%})")
    return not reasons, reasons


def check(candidate: Scores, serving: Scores, rows: int, settings: GateSettings) -> GateReport:
    passed, reasons = decide(candidate, serving, settings)
    return GateReport(passed=passed, reasons=reasons, candidate=candidate, serving=serving, rows=rows)
