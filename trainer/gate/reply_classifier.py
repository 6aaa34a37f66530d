"""Which replies the persona's held-out labels like: a small text classifier the gate reads probe replies with.

The reply checks (rubric.py) are the same for every persona: finished, grounded, in its own words, not
looping. They cannot see a reply that stays finished and grounded but stops being the persona. Two
learning runs served such versions (`learning-crowd-128-parent-lambda` round 2 and `-2` round 3): their
probe replies passed the checks about as often as the serving version's, while fresh voters of all three
tastes liked their replies 6-16 points less (no "Recommendation:", no critique). This classifier,
fit on the seed eval split alone, read those versions' sampled probe replies as liked 0.18 and 0.46 less
often than the serving version's (95% intervals below zero), and the one version that voters liked far
better (+26 and +48 points) 0.25 more often [+0.07, +0.42] (bench/gate_classifier.py replays them).

It is naive Bayes over the set of words and word pairs a reply contains (Laplace-smoothed likelihoods of
each feature's presence under each label; absent features are not counted), fit on the gate's held-out
labelled replies: the seed eval split of the persona (its own liked and disliked examples, none trained
on), the gate votes and the gate picks (the chosen reply liked, the rejected one and "both bad" disliked).
A persona without a seed set has only its gate votes and picks, so its classifier learns the crowd's taste
as held-out votes arrive. Pure Python: fitting a few hundred replies takes milliseconds.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from typing import Iterable

TOKEN = re.compile(r"[a-z]+|\d+|[^\sa-z\d]")


def features(text: str) -> set[str]:
    """The lowercased words, numbers and punctuation marks of `text`, and each adjacent pair of them."""
    tokens = TOKEN.findall(text.lower())
    return set(tokens) | {f"{a} {b}" for a, b in zip(tokens, tokens[1:])}


@dataclass(frozen=True)
class ReplyClassifier:
    """log P(liked | reply) / P(disliked | reply) as a sum over the reply's known features."""

    prior: float                # log of liked / disliked replies fit on
    weights: dict[str, float]   # per feature: log P(present | liked) - log P(present | disliked)
    liked: int                  # replies fit on, per label
    disliked: int

    @classmethod
    def fit(cls, replies: Iterable[tuple[str, bool]]) -> "ReplyClassifier | None":
        """Fit on (text, liked) pairs; None unless both labels are there (nothing to tell apart)."""
        counts = {True: Counter(), False: Counter()}
        totals = Counter()
        for text, liked in replies:
            counts[bool(liked)].update(features(text))
            totals[bool(liked)] += 1
        if not totals[True] or not totals[False]:
            return None
        vocabulary = set(counts[True]) | set(counts[False])
        weights = {f: math.log((counts[True][f] + 1) / (totals[True] + 2))
                   - math.log((counts[False][f] + 1) / (totals[False] + 2)) for f in vocabulary}
        return cls(math.log(totals[True] / totals[False]), weights, totals[True], totals[False])

    def probability(self, text: str) -> float:
        """P(liked) of a reply, in [0, 1]."""
        log_odds = self.prior + sum(self.weights.get(f, 0.0) for f in features(text))
        return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, log_odds))))
