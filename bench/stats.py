"""Intervals for bench/learning.py: a seeded bootstrap over papers, pure Python.

Sampled replies to one paper are correlated (same prompt, same version), so the unit of a measurement
is the paper, not the reply: `paper_means` averages a value over each paper's replies, and
`bootstrap` resamples those paper means (a cluster bootstrap) and returns the mean with a percentile
interval. Two measurements of the same papers differ by paper; `paired_difference` bootstraps the
mean of the per-paper differences, which is narrower than comparing two separate intervals since it
cancels what makes one paper easy or hard for every version.

2000 resamples with a fixed seed: the same numbers always give the same interval, so a rerun of a
table changes only where the replies changed.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

RESAMPLES = 2000
SEED = 0
LEVEL = 0.95


@dataclass(frozen=True)
class Estimate:
    """A mean and its percentile bootstrap interval at LEVEL."""

    mean: float
    lo: float
    hi: float

    def contains(self, value: float) -> bool:
        return self.lo <= value <= self.hi


def paper_means(values: Iterable[tuple[str, float]]) -> dict[str, float]:
    """Each paper's mean of (paper, value) pairs, in first-seen order."""
    sums: dict[str, list[float]] = {}
    for paper, value in values:
        sums.setdefault(paper, []).append(float(value))
    return {paper: sum(v) / len(v) for paper, v in sums.items()}


def bootstrap(means: Sequence[float], resamples: int = RESAMPLES, seed: int = SEED, level: float = LEVEL) -> Estimate:
    """The mean of `means` (one per paper) with a percentile bootstrap interval over papers."""
    if not means:
        raise ValueError("bootstrap needs at least one paper")
    n = len(means)
    rng = random.Random(seed)
    resampled = sorted(sum(rng.choices(means, k=n)) / n for _ in range(resamples))
    tail = (1 - level) / 2
    lo = resampled[int(tail * resamples)]
    hi = resampled[min(resamples - 1, int((1 - tail) * resamples))]
    return Estimate(sum(means) / n, lo, hi)


def paired_difference(before: Mapping[str, float], after: Mapping[str, float], **kwargs) -> Estimate:
    """Mean of after - before over the papers both measured, with a bootstrap interval over those papers."""
    shared = [paper for paper in after if paper in before]
    return bootstrap([after[paper] - before[paper] for paper in shared], **kwargs)
