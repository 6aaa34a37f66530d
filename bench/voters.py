"""Simulated voters for bench/learning.py: distinct, deterministic tastes of a Reviewer #2 fan.

A voter is a function `(reply, title, abstract) -> Judgement`: it likes a reply when every one of its
checks holds, and scores it by the share of its checks that hold. The tastes:

    numbers      the reviewer read this paper and shows it with the paper's facts:
        quotes         quotes a figure of the title or abstract (two or more characters, such as "28.4"
                       or "2014") or a name from it, spelt as the paper spells it: an acronym or CamelCase
                       word (BLEU, ImageNet, CIFAR) or a word the abstract capitalises mid-sentence
                       (Transformer, Atari), of three letters at least
        verdict        gives a verdict somewhere: reject, accept, or a major / minor revision
        finished       ends a sentence (trainer/gate/rubric.py `finished`)
        no_loop        does not loop (trainer/gate/rubric.py `loops`)
    verdict      the reviewer is brief and decided:
        short          90 words at most
        verdict_last   its last sentence gives the verdict ("Recommendation: reject.", "I recommend
                       rejection.")
        one_verdict    exactly one sentence gives a verdict, with at most one "Recommendation:" /
                       "Verdict:" / "Decision:" label: no verdict piled on verdict
        finished       ends a sentence
        no_loop        does not loop (a short loop can end on one verdict too)
    baselines    the reviewer asks for the experiment that is missing:
        control        names a baseline, ablation, comparison, control or statistical check (seeds,
                       variance, significance, confidence intervals, error bars, p-values)
        specific       uses a content word of the abstract: a critique of this paper, not of any paper
        in_persona     no assistant small talk ("happy to help", "let me know"), and no praise unless a
                       "however" or "but" follows it
        finished       ends a sentence
        no_loop        does not loop
    kind_fan     a fan of another persona, Professor Kind (personas/kind.toml), for the second persona's curve:
        warm           praises something (lovely, great, impressive, valuable, well done, ...)
        specific       uses a content word of the abstract: praise of this paper, not of any paper
        gentle         no rejection, no "major revision", no harsh words (flawed, fatal, worthless, ...)
        congratulates  its last sentence congratulates the authors (congratulations, well done, bravo, kudos)
        short          150 words at most
        finished       ends a sentence
        no_loop        does not loop
    rubric_fan   the voter of bench/voter.py, with its seven checks (the gate's four reply checks plus
                 critique cues, persona and a recommendation); kept for continuity with older tables

Only rubric_fan builds on the gate's reply checks as a whole (trainer/gate/rubric.py: finished,
grounded, own words, no loop); the other three share at most "finished" and "no loop" with them, as any
reader would. CROWD is the three of them: under `--voter crowd` they take turns, reply by reply.
Deterministic: the same reply always gets the same judgement, so a like-rate moves only because the
replies did.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import voter as bench_voter  # noqa: E402
from trainer.gate.rubric import content_words, finished, loops, words  # noqa: E402


@dataclass(frozen=True)
class Judgement:
    """One voter's view of one reply: the vote it would cast, its share of checks passed, and the checks."""

    liked: bool
    score: float
    checks: dict[str, bool]


Voter = Callable[[str, str, str], Judgement]


def judged(checks: dict[str, bool]) -> Judgement:
    return Judgement(liked=all(checks.values()), score=sum(checks.values()) / len(checks), checks=checks)


# -- shared cues ---------------------------------------------------------------------------------------

VERDICT = re.compile(r"\b(reject(s|ed|ion)?|accept(s|ed|ance)?|(major|minor) revisions?|revise and resubmit)\b",
                     re.IGNORECASE)
VERDICT_LABEL = re.compile(r"\b(recommendation|verdict|decision)\s*:", re.IGNORECASE)
SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]*_]*\s+|\n+")


def sentences(text: str) -> list[str]:
    return [s.strip() for s in SENTENCE_END.split(text.strip()) if s and s.strip()]


# -- numbers -------------------------------------------------------------------------------------------

NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
# Hyphens split a token, so "CIFAR-10" gives the name CIFAR and the figure 10.
NAME = re.compile(r"[A-Za-z][A-Za-z0-9]*")


def figures(text: str) -> set[str]:
    return {n for n in NUMBER.findall(text) if len(n) >= 2}


def is_acronym(token: str) -> bool:
    """BLEU, ImageNet, LoRA, CASP14: two capitals, or a capital and a digit."""
    capitals = sum(c.isupper() for c in token)
    return capitals >= 2 or (capitals >= 1 and any(c.isdigit() for c in token))


def names(title: str, abstract: str) -> set[str]:
    """The paper's proper names: acronyms of title and abstract, and the abstract's words capitalised
    mid-sentence. Title Case makes every title word capitalised, so only its acronyms count. Case is kept,
    so that the common word "zero" does not quote "AlphaGo Zero"."""
    found = {t for t in NAME.findall(title) if is_acronym(t)}
    for sentence in sentences(abstract):
        tokens = NAME.findall(sentence)
        found |= {t for t in tokens if is_acronym(t)}
        found |= {t for t in tokens[1:] if t[0].isupper()}
    return {t for t in found if len(t) >= 3}


def quotable(title: str, abstract: str) -> set[str]:
    """What a reply can quote from the paper: its figures and its names."""
    return figures(f"{title} {abstract}") | names(title, abstract)


def quoted(reply: str, title: str, abstract: str) -> set[str]:
    said = figures(reply) | set(NAME.findall(reply))
    return quotable(title, abstract) & said


def numbers(reply: str, title: str, abstract: str) -> Judgement:
    """Quotes the paper's figures or names, gives a verdict, ends a sentence, does not loop."""
    return judged({"quotes": bool(quoted(reply, title, abstract)), "verdict": bool(VERDICT.search(reply)),
                   "finished": finished(reply), "no_loop": not loops(reply)})


# -- verdict -------------------------------------------------------------------------------------------

MAX_WORDS = 90


def verdict(reply: str, title: str, abstract: str) -> Judgement:
    """Short, finished, not looping, and closes on exactly one verdict."""
    said = sentences(reply)
    with_verdict = [s for s in said if VERDICT.search(s)]
    return judged({"finished": finished(reply), "short": len(words(reply)) <= MAX_WORDS,
                   "verdict_last": bool(said) and bool(VERDICT.search(said[-1])),
                   "one_verdict": len(with_verdict) == 1 and len(VERDICT_LABEL.findall(reply)) <= 1,
                   "no_loop": not loops(reply)})


# -- baselines -----------------------------------------------------------------------------------------

CONTROL = re.compile(
    r"\bbaselines?\b|\bablat\w*|\bcompar(e|es|ed|ing|ison|isons)\b|\bcontrols?\b|\bcontrolled\b|\bseeds?\b|"
    r"\bvariance\b|\bsignifican\w*|confidence intervals?|error bars?|\bstandard deviations?\b|\bp-values?\b|"
    r"statistical tests?", re.IGNORECASE)
SMALL_TALK = re.compile(
    r"as an ai|happy to help|i'?m happy to|i am happy to|i'?d be happy|let me know|i hope this helps|feel free|"
    r"great question|\bsure!|fun fact|\bpoem\b", re.IGNORECASE)
PRAISE = re.compile(
    r"\bgreat\b|\bexcellent\b|\bimpressive\b|\bbrilliant\b|\bwonderful\b|\bamazing\b|\bfantastic\b|"
    r"congratulations|\bi (really )?(love|enjoyed)\b|\bstrong accept\b|\bwell[- ]written\b|\belegant\b", re.IGNORECASE)
# Praise is in persona only when a turn follows it: "The idea is elegant; however, ..."
TURN = re.compile(r"\bhowever\b|\bbut\b", re.IGNORECASE)


def in_persona(reply: str) -> bool:
    if SMALL_TALK.search(reply):
        return False
    praise = PRAISE.search(reply)
    return praise is None or TURN.search(reply, praise.end()) is not None


def baselines(reply: str, title: str, abstract: str) -> Judgement:
    """Asks for a missing baseline or control, about this paper, in persona, finished, not looping."""
    return judged({"control": bool(CONTROL.search(reply)),
                   "specific": bool(content_words(abstract) & content_words(reply)),
                   "in_persona": in_persona(reply), "finished": finished(reply), "no_loop": not loops(reply)})


# -- kind_fan ------------------------------------------------------------------------------------------

WARM = re.compile(
    r"\blove\b|\blovely\b|\bgreat\b|\bexcellent\b|\bimpressive\b|\bwonderful\b|\bfascinating\b|\belegant\b|"
    r"\bvaluable\b|\bclever\b|\bpromising\b|\bwell done\b|\bnice\b|\bappreciate\b|\benjoyed\b|\bthoughtful\b|"
    r"\bcommend\w*|\bstrong\b|\bexciting\b|\binspiring\b|\bbeautiful\w*|\bremarkable\b|\bbrilliant\b|\bgood\b",
    re.IGNORECASE)
HARSH = re.compile(r"\breject\w*|\bmajor revisions?\b|\bflawed\b|\bfatal\b|\bworthless\b|\bsloppy\b|"
                   r"\bunacceptable\b|\bterrible\b|\bpoor(ly)?\b", re.IGNORECASE)
CONGRATULATES = re.compile(r"congratulat\w*|\bwell done\b|\bbravo\b|\bkudos\b", re.IGNORECASE)
KIND_MAX_WORDS = 150


def kind_fan(reply: str, title: str, abstract: str) -> Judgement:
    """Warm about this paper, gentle, short, finished, not looping, and closing on congratulations."""
    said = sentences(reply)
    return judged({"warm": bool(WARM.search(reply)), "specific": bool(content_words(abstract) & content_words(reply)),
                   "gentle": not HARSH.search(reply),
                   "congratulates": bool(said) and bool(CONGRATULATES.search(said[-1])),
                   "short": len(words(reply)) <= KIND_MAX_WORDS, "finished": finished(reply),
                   "no_loop": not loops(reply)})


# -- rubric_fan ----------------------------------------------------------------------------------------

def rubric_fan(reply: str, title: str, abstract: str) -> Judgement:
    """bench/voter.py's fan: the gate's reply checks plus its taste for Reviewer #2."""
    return judged(asdict(bench_voter.verdict(reply, bench_voter.prompt_of(title, abstract))))


VOTERS: dict[str, Voter] = {"numbers": numbers, "verdict": verdict, "baselines": baselines, "rubric_fan": rubric_fan,
                            "kind_fan": kind_fan}
CROWD = ("numbers", "verdict", "baselines")


def judge_all(reply: str, title: str, abstract: str) -> dict[str, Judgement]:
    """Every voter's judgement of one reply."""
    return {name: voter(reply, title, abstract) for name, voter in VOTERS.items()}
