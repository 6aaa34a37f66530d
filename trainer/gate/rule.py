"""The rule a round's candidate must pass to serve, and the measures it uses.

Visitors' votes are noisy and can be malicious, so a candidate is scored beside the serving
version on the same gate rows (see holdout.py): AUC of implicit rewards liked vs disliked, mean
margin, KL to the base, and rewards/accuracy on the held-out pairs among them. Both versions also
answer the same held-out probe messages under the same seeds, sampled as chat samples
(probes.py). The candidate is refused for unfinished replies, looping replies, replies that pass
fewer reply checks (rubric.py), replies the held-out reply classifier reads as liked less often
(reply_classifier.py), or replies longer than GATE_MAX_LENGTH_RATIO times the serving version's,
only when it is worse than the serving version beyond the noise of that many samples: the 95% interval
of the paired differences (normal approximation) lies wholly on the worse side of the tolerance. An
absolute limit never refuses a candidate for what the serving version does too. The candidate serves
only if every check passes; otherwise it is kept, marked rejected, with the reasons. Pure: scores in,
verdict out.
"""

from __future__ import annotations

import torch

from ..config import GateSettings
from ..contracts import GateReport, ProbeReply, Scores
from .evaluate import EvalResult
from .rubric import repetition


def distinct_n(texts: list[str], n: int = 2) -> float:
    """Unique word n-grams over all word n-grams of the replies (1.0 = no n-gram repeats)."""
    grams = [tuple(words[i:i + n]) for words in (t.split() for t in texts) for i in range(len(words) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def quantiles(values: list[float], points: int = 21) -> list[float]:
    if not values:
        return []
    return torch.quantile(torch.tensor(values, dtype=torch.float64),
                          torch.linspace(0, 1, points, dtype=torch.float64)).tolist()


def scores_of(result: EvalResult, probe_replies: list[ProbeReply]) -> Scores:
    """A version's scores: its evaluation on the gate rows, and its sampled replies to the probe messages."""
    texts = [r.text for r in probe_replies]
    return Scores(result.version, result.auc, result.margin, result.kl, distinct_n(texts),
                  max((repetition(t) for t in texts), default=0.0),
                  mean_checks(probe_replies) if probe_replies else None,
                  quantiles(result.rewards_desirable), quantiles(result.rewards_undesirable), result.pair_accuracy,
                  quantiles(result.pair_log_ratios), quantiles(result.base_pair_log_ratios), list(probe_replies))


# Two-sided 95% interval of a mean, normal approximation: replies are few, and the rule errs towards serving.
Z95 = 1.96


def paired_excess(candidate: list[float], serving: list[float]) -> tuple[float, float]:
    """Mean and lower 95% bound of (candidate - serving) over paired values; (0, 0) with no pairs."""
    diffs = [c - s for c, s in zip(candidate, serving, strict=True)]
    if not diffs:
        return 0.0, 0.0
    mean = sum(diffs) / len(diffs)
    spread = (sum((d - mean) ** 2 for d in diffs) / (len(diffs) - 1)) ** 0.5 if len(diffs) > 1 else 0.0
    return mean, mean - Z95 * spread / len(diffs) ** 0.5


def worse_beyond_noise(candidate: list[float], serving: list[float], tolerance: float = 0.0) -> bool:
    """Whether the whole 95% interval of the candidate's excess (of something bad) over the serving version's
    lies above `tolerance`: worse beyond the tolerance and the noise."""
    return paired_excess(candidate, serving)[1] > tolerance


def probe_measures(ours: list[ProbeReply], theirs: list[ProbeReply],
                   settings: GateSettings) -> dict[str, tuple[list[float], list[float], float]]:
    """The probe rules' paired values, by rule: (the candidate's badness, the serving version's, the tolerance of
    the mean excess). Unfinished and looping replies count 1, reply checks count negated, and length is compared
    with the serving version's times GATE_MAX_LENGTH_RATIO (absent when that is 0)."""
    measures = {"unfinished": ([not r.finished for r in ours], [not r.finished for r in theirs], 0.0),
                "loops": ([r.loops for r in ours], [r.loops for r in theirs], 0.0),
                "checks": ([-r.checks for r in ours], [-r.checks for r in theirs], settings.rubric_tolerance)}
    if settings.max_length_ratio > 0:
        measures["length"] = ([r.tokens for r in ours], [settings.max_length_ratio * r.tokens for r in theirs], 0.0)
    if all(r.liked is not None for r in ours + theirs):  # read by the reply classifier (GATE_CLASSIFIER)
        measures["liked"] = ([-r.liked for r in ours], [-r.liked for r in theirs], settings.classifier_tolerance)
    return measures


def probe_reasons(candidate: Scores, serving: Scores, settings: GateSettings) -> list[str]:
    """Reasons from the paired probe replies: unfinished, looping, failing checks, read as liked less often, or
    drifting longer."""
    ours, theirs = candidate.probe_replies, serving.probe_replies
    if not ours or [(r.message, r.seed) for r in ours] != [(r.message, r.seed) for r in theirs]:
        return []  # no replies, or not the same requests: nothing to compare pair by pair
    n, version = len(ours), serving.version
    worse = {rule for rule, (a, b, tolerance) in probe_measures(ours, theirs, settings).items()
             if worse_beyond_noise(a, b, tolerance)}
    reasons = []
    if "unfinished" in worse:
        reasons.append(f"{sum(not r.finished for r in ours)} of its {n} sampled probe replies are unfinished, against "
                       f"{sum(not r.finished for r in theirs)} of the serving {version}'s (beyond the noise)")
    if "loops" in worse:
        reasons.append(f"{sum(r.loops for r in ours)} of its {n} sampled probe replies loop, against "
                       f"{sum(r.loops for r in theirs)} of the serving {version}'s (beyond the noise)")
    if "checks" in worse:
        reasons.append(f"its replies to held-out prompts pass {mean_checks(ours):.0%} of the reply checks, below the "
                       f"serving {version}'s {mean_checks(theirs):.0%} minus {settings.rubric_tolerance:.0%} "
                       "(beyond the noise)")
    if "liked" in worse:
        reasons.append(f"the held-out reply classifier reads its sampled probe replies as liked {mean_liked(ours):.0%} "
                       f"of the time, against the serving {version}'s {mean_liked(theirs):.0%}"
                       f"{f' minus {settings.classifier_tolerance:.0%}' if settings.classifier_tolerance else ''} "
                       "(beyond the noise)")
    if "length" in worse:
        reasons.append(f"its sampled probe replies are {mean_tokens(ours):.0f} tokens long on average, over "
                       f"{settings.max_length_ratio}x the serving {version}'s {mean_tokens(theirs):.0f} "
                       "(beyond the noise)")
    return reasons


def looks_worse(ours: list[ProbeReply], theirs: list[ProbeReply], settings: GateSettings) -> bool:
    """Whether the candidate's probe replies are worse than the serving version's by the point estimate of any
    probe rule (more unfinished or looping replies, fewer checks passed beyond the tolerance, longer beyond the
    ratio), whether or not beyond the noise: then the gate takes a second look (GATE_SECOND_LOOK) before it
    decides. 16 pairs cannot tell 45% unfinished from 74% (a version that passed so served replies cut at
    the cap twice as often); 32 can."""
    if not ours or len(ours) != len(theirs):
        return False
    measures = probe_measures(ours, theirs, settings).values()
    return any(paired_excess(a, b)[0] > tolerance for a, b, tolerance in measures)


def undecided(ours: list[ProbeReply], theirs: list[ProbeReply], settings: GateSettings) -> bool:
    """Whether the candidate looks worse (looks_worse) by some rule, yet no rule finds it worse beyond the noise:
    then more pairs can still decide (GATE_MAX_LOOKS). 32 pairs read 19 unfinished replies against 12 as noise
    (round 2 of the learning-crowd-128-parent-lambda run; voters then liked that version 9 points less); at the
    same rates 64 pairs do not."""
    if not looks_worse(ours, theirs, settings):
        return False
    measures = probe_measures(ours, theirs, settings).values()
    return not any(worse_beyond_noise(a, b, tolerance) for a, b, tolerance in measures)


def mean_tokens(replies: list[ProbeReply]) -> float:
    return sum(r.tokens for r in replies) / len(replies) if replies else 0.0


def mean_liked(replies: list[ProbeReply]) -> float:
    return sum(r.liked or 0.0 for r in replies) / len(replies) if replies else 0.0


def mean_checks(replies: list[ProbeReply]) -> float:
    return sum(r.checks for r in replies) / len(replies) if replies else 0.0


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
    reasons += probe_reasons(candidate, serving, settings)
    if candidate.kl > settings.max_kl and candidate.kl > serving.kl:  # moving back towards the base is fine
        reasons.append(f"KL to the base {candidate.kl:.3f} is over the cap {settings.max_kl} (and above the serving "
                       f"{serving.version}'s {serving.kl:.3f})")
    if candidate.probe_replies and candidate.distinct2 < settings.min_distinct2 and \
            candidate.distinct2 < serving.distinct2:
        reasons.append(f"distinct-2 {candidate.distinct2:.2f} of its probe replies is under {settings.min_distinct2} "
                       f"(and under the serving {serving.version}'s {serving.distinct2:.2f})")
    return not reasons, reasons


def check(candidate: Scores, serving: Scores, rows: int, settings: GateSettings) -> GateReport:
    passed, reasons = decide(candidate, serving, settings)
    return GateReport(passed=passed, reasons=reasons, candidate=candidate, serving=serving, rows=rows)
