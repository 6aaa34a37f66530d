"""What makes a generated reply a reply at all, whatever the persona: checks on its text, pure.

A version can order held-out votes well (AUC) and still write worse replies: cut off at the token
cap, naming nothing from the message it answers, parroting the message back, or looping. The gate
scores each version's replies to the same held-out prompts with these checks (judge.py) and keeps
a candidate whose replies score worse than the serving version's from serving. bench/voter.py
builds the simulated voter's taste on the same checks plus the persona's own.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass

from ..data import FINISHED

# Words too common to show that a reply is about the message in front of it.
STOPWORDS = frozenset("""
about above after again against also among another because been before being below between both
could does doing down during each either enough every from further have having here into itself just
many might more most much must never only other ought over same shall should since some such than that
their them then there these they this those though through under until upon very what when where which
while whom whose will with within without would your yours paper papers work works study show shows shown
using used uses based propose proposes proposed present presents introduce introduces approach approaches
method methods result results model models task tasks data than make makes made well like first second
three there here able learn learns learning train trained training network networks simple new novel
""".split())

WORD = re.compile(r"[A-Za-z][A-Za-z0-9\-']+")


def words(text: str) -> list[str]:
    return [w.lower() for w in WORD.findall(text)]


def content_words(text: str) -> set[str]:
    """The words of a text that can name what it is about (4+ letters, not stopwords), plural "s" off."""
    return {w[:-1] if w.endswith("s") and not w.endswith("ss") else w
            for w in words(text) if len(w) >= 4 and w not in STOPWORDS}


def finished(reply: str) -> bool:
    """Whether the reply ends a sentence, rather than stopping mid-sentence at the token cap."""
    return bool(FINISHED.search(reply.strip())) and len(words(reply)) >= 8


def named_from_prompt(reply: str, prompt: str) -> set[str]:
    """The prompt's content words the reply uses: how specific it is to the message it answers."""
    return content_words(prompt) & content_words(reply)


def longest_copied_run(reply: str, prompt: str) -> int:
    """The longest run of consecutive words the reply copies from the prompt (parroting)."""
    source, target = words(prompt), words(reply)
    runs: dict[int, int] = {}
    best = 0
    for word in target:  # longest common substring over words, one row of the table at a time
        current = {}
        for j, other in enumerate(source):
            if word == other:
                current[j] = runs.get(j - 1, 0) + 1
                best = max(best, current[j])
        runs = current
    return best


def repetition(text: str, n: int = 3) -> float:
    """Share of a reply's word n-grams that occur more than once in it (a looping reply nears 1)."""
    items = text.split()
    grams = [tuple(items[i:i + n]) for i in range(len(items) - n + 1)]
    if not grams:
        return 0.0
    counts: dict[tuple, int] = {}
    for g in grams:
        counts[g] = counts.get(g, 0) + 1
    return sum(c for c in counts.values() if c > 1) / len(grams)


def loops(text: str, max_repetition: float = 0.3) -> bool:
    """Whether a reply loops: over `max_repetition` of its word 3-grams repeat, or (for loops without spaces,
    such as "oreoreore") it compresses to under 30% of its bytes; written replies compress to 50-60% with zlib."""
    data = text.strip().encode()
    return repetition(text) > max_repetition or (len(data) >= 80 and len(zlib.compress(data)) / len(data) < 0.3)


@dataclass(frozen=True)
class ReplyChecks:
    """The persona-independent checks of one reply to one prompt; `score` is the share passed."""

    finished: bool       # ends a sentence instead of running into the token cap
    grounded: bool       # names at least two content words of the prompt
    own_words: bool      # copies no run of 10 or more words from the prompt
    no_loop: bool        # does not loop (see `loops`)

    @property
    def score(self) -> float:
        return (self.finished + self.grounded + self.own_words + self.no_loop) / 4


def check_reply(reply: str, prompt: str) -> ReplyChecks:
    return ReplyChecks(finished=finished(reply), grounded=len(named_from_prompt(reply, prompt)) >= 2,
                       own_words=longest_copied_run(reply, prompt) < 10, no_loop=not loops(reply))


def rubric_score(replies: list[str], prompts: list[str]) -> float:
    """Mean check score of replies to their prompts (0 when there are none)."""
    if not replies:
        return 0.0
    return sum(check_reply(r, p).score for r, p in zip(replies, prompts, strict=True)) / len(replies)
