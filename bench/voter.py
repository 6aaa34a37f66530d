"""A simulated voter: a strict but reasonable Reviewer #2 fan, as a deterministic rubric.

The fan likes a reply only when every one of these holds (`verdict(reply, prompt).liked`):

    finished         it ends a sentence, instead of being cut at the token cap mid-sentence
    specific         it names at least two content words of the paper in front of it (title or abstract)
    own words        it copies no run of 10+ words from the abstract and does not open as the authors
                     ("We propose ..."): a review, not a restatement
    no loop          it does not loop (at most 30% of its 3-grams repeat; no "oreoreore")
    critical         at least two distinct critique cues (baselines, ablations, statistics, ...)
    in persona       no praise without a "however", no assistant small talk, poems or fun facts
    recommendation   it ends with a verdict: reject, or a major / minor revision

The first four are the persona-independent checks the gate itself scores (trainer/gate/rubric.py);
the last three are this fan's taste for Reviewer #2. Deterministic: the same reply always gets the
same vote, so a like-rate moves only because the replies did.
"""

from __future__ import annotations

import re
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from trainer.gate.rubric import check_reply, words  # noqa: E402

CRITIQUE_CUES = {
    "baselines": r"\bbaselines?\b|where (is|are)\b|\btuned\b|\bcompar(e|es|ed|ison)\b|state[- ]of[- ]the[- ]art",
    "ablations": r"\bablat\w*",
    "statistics": r"\bseeds?\b|\bvariance\b|confidence interval|significan\w*|\bnoise\b|\bstatistic\w*|"
                  r"error bars?|sample size|\bp-value",
    "overclaiming": r"overclaim\w*|\bclaims?\b|\bhype\b|marketing|exaggerat\w*|unsupported|not convinc\w*",
    "reproducibility": r"reproduc\w*|\bcode\b|hyperparameters?|implementation details",
    "related work": r"related work|\bcite[sd]?\b|prior work|previous work|\bnovelty\b|not new",
    "experiments": r"\bexperiments?\b|\bevaluat\w*|\bdatasets?\b|\bbenchmarks?\b",
    "clarity": r"\bnotation\b|\bunclear\b|\bvague\b|\bundefined\b|never defined|poorly written",
    "shortcomings": r"\bmissing\b|\blacks?\b|\bfails? to\b|\bdoes not\b|\bdo not\b|\bweak\w*|\bflaw\w*|"
                    r"\blimitation\w*|\bwhy\b|\bonly\b|not a contribution",
}
OFF_PERSONA = re.compile(
    r"as an ai|i'?m happy to|i am happy to|i'?d be happy|happy to help|let me know|sure!|great job|"
    r"excellent paper|wonderful|congratulations|i love|i really enjoyed|fun fact|poem|strong accept|"
    r"accept as is|\bamazing\b|\bfantastic\b|i hope this helps", re.IGNORECASE)
RECOMMENDATION = re.compile(r"\breject\w*|major revision|minor revision|\brevis(e|ion)\b", re.IGNORECASE)
AUTHOR_VOICE = {"we", "our", "this paper", "in this paper", "the authors propose"}


@dataclass(frozen=True)
class Verdict:
    finished: bool
    specific: bool
    own_words: bool
    no_loop: bool
    critical: bool
    in_persona: bool
    recommendation: bool

    @property
    def liked(self) -> bool:
        return all(asdict(self).values())

    @property
    def score(self) -> float:
        values = asdict(self).values()
        return sum(values) / len(values)


def critique_cues(reply: str) -> set[str]:
    return {name for name, pattern in CRITIQUE_CUES.items() if re.search(pattern, reply, re.IGNORECASE)}


def speaks_as_author(reply: str) -> bool:
    """Whether the reply opens by restating the paper in its authors' voice ("We propose ...")."""
    opening = " ".join(words(reply)[:3])
    return any(opening == v or opening.startswith(v + " ") for v in AUTHOR_VOICE)


def verdict(reply: str, prompt: str) -> Verdict:
    """The fan's vote on `reply` to the paper `prompt` (title and abstract)."""
    checks = check_reply(reply, prompt)
    return Verdict(finished=checks.finished, specific=checks.grounded,
                   own_words=checks.own_words and not speaks_as_author(reply), no_loop=checks.no_loop,
                   critical=len(critique_cues(reply)) >= 2, in_persona=not OFF_PERSONA.search(reply),
                   recommendation=bool(RECOMMENDATION.search(reply)))


def prompt_of(title: str, abstract: str) -> str:
    """The message a visitor pastes, in the form the persona's greeting asks for."""
    return f"Title: {title}\nAbstract: {abstract}"
