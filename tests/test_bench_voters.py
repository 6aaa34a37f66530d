"""bench/learning.py's measuring tools, without a model: the simulated voters on hand-written replies, the
bootstrap intervals, and the paper lists."""

import json
from pathlib import Path

import pytest

from bench import voter as bench_voter
from bench.papers import FRESH, TRAIN
from bench.stats import bootstrap, paired_difference, paper_means
from bench.voters import CROWD, VOTERS, baselines, judge_all, numbers, quotable, verdict

ROOT = Path(__file__).resolve().parent.parent
TITLE = "Attention Is All You Need"
ABSTRACT = ("We propose the Transformer, a network based solely on attention. It reaches 28.4 BLEU on WMT 2014 "
            "English-to-German and trains in a fraction of the time of recurrent models.")
SPEED = "The speed claim rests on one hardware setup and the BLEU gain on one language pair."
KIND = ("What a lovely idea: the Transformer trains in a fraction of the time. One suggestion: report a second "
        "language pair. Congratulations!")
BASELINE = "There is no baseline that trains the recurrent models for as long, and no ablation of the attention heads."

# Per voter: a reply it likes, and for each of its checks a reply that fails that check (and only that one).
CASES = {
    "numbers": ("The 28.4 BLEU on WMT 2014 is a single run with no error bars. Recommendation: reject.", {
        "quotes": "The attention results are a single run with no error bars and no analysis. Recommendation: reject.",
        "verdict": "The 28.4 BLEU on WMT 2014 is a single run with no error bars, and the speed claim is unmeasured.",
        "finished": "The 28.4 BLEU on WMT 2014 is a single run with no error bars. Recommendation: reject, unless the",
        "no_loop": "The 28.4 BLEU on WMT is weak. " * 8 + "Reject.",
    }),
    "verdict": (f"{SPEED} Recommendation: reject.", {
        "short": (f"{SPEED} The training cost is compared across different hardware, which makes the speed-up "
                  "meaningless. Nothing is said about how the learning rate schedule was tuned, and the warm-up looks "
                  "like a trick that hides instability. The BLEU differences to the convolutional systems are within "
                  "what reruns of the same system give, yet no seeds are reported. The attention visualizations are "
                  "cherry-picked and prove nothing about what the heads learn, and the related work section ignores "
                  "a decade of attention models in speech. Recommendation: reject."),
        "verdict_last": f"Recommendation: reject. {SPEED}",
        "one_verdict": "The speed claim rests on one hardware setup. Recommendation: reject. Recommendation: major "
                       "revision.",
        "finished": f"{SPEED} Recommendation: reject",
        "no_loop": "No baseline for the recurrent models. " * 8 + "Major revision.",
    }),
    "baselines": (f"{BASELINE} Major revision.", {
        "control": "The recurrent models are treated unfairly and the attention story is oversold. Major revision.",
        "specific": "There is no baseline and no ablation here, as in most submissions I read. Major revision.",
        "in_persona": "What an excellent paper: the attention idea is elegant and every recurrent baseline is beaten. "
                      "Accept.",
        "finished": BASELINE[:-len(" heads.")],
        "no_loop": "No baseline for the recurrent models. " * 8 + "Major revision.",
    }),
    "kind_fan": (KIND, {
        "warm": "The Transformer trains in a fraction of the time. One suggestion: report a second language pair. "
                "Congratulations!",
        "specific": "What a lovely idea. One suggestion: report a second experiment. Congratulations!",
        "gentle": "What a lovely idea: the Transformer trains fast, but the BLEU claim is flawed. Congratulations!",
        "congratulates": "Congratulations! What a lovely idea: the Transformer trains in a fraction of the time.",
        "short": ("What a lovely idea: the Transformer trains in a fraction of the time of recurrent models. The "
                  "writing is clear, the figures are easy to follow, and the attention visualisations invite the "
                  "reader to explore what each head learns. I especially enjoyed the discussion of positional "
                  "encodings, which many readers will find useful well beyond translation. The comparison with "
                  "convolutional systems is generous and fair, and the training details are given in enough depth "
                  "that a graduate student could reproduce the main table within a week. One gentle suggestion: a "
                  "second language pair, or a short study of how the number of heads changes quality, would make "
                  "the story even more convincing for readers outside machine translation. It would also help to "
                  "state the hardware budget of every baseline in one place, so that the speed comparison can be "
                  "read at a glance. Finally, a small appendix on failure cases would round off an already "
                  "delightful paper, and give newcomers a sense of where the method still struggles today. "
                  "Congratulations!"),
        "finished": KIND[:-len("Congratulations!")] + "Congratulations",
        "no_loop": "The Transformer is lovely. " * 10 + "Congratulations!",
    }),
}


@pytest.mark.parametrize("name", CASES)
def test_each_voter_likes_its_reply_and_names_each_failed_rule(name):
    liked, failing = CASES[name]
    voter = VOTERS[name]
    judgement = voter(liked, TITLE, ABSTRACT)
    assert judgement.liked and judgement.score == 1.0
    assert set(failing) == set(judgement.checks), "every rule of the voter has a reply failing it"
    for check, reply in failing.items():
        judgement = voter(reply, TITLE, ABSTRACT)
        assert not judgement.liked
        assert [c for c, ok in judgement.checks.items() if not ok] == [check], reply
        assert judgement.score == pytest.approx(1 - 1 / len(judgement.checks))


def test_verdict_voter_refuses_repeated_recommendation_lines():
    reply = f"{SPEED}\nRecommendation: reject\nRecommendation: reject."
    assert verdict(reply, TITLE, ABSTRACT).checks["one_verdict"] is False
    assert verdict(f"{SPEED} I recommend rejection.", TITLE, ABSTRACT).liked


def test_baselines_voter_takes_praise_followed_by_a_turn_and_refuses_small_talk():
    turned = ("The attention idea is elegant; however, there is no baseline that trains the recurrent models as long. "
              "Major revision.")
    assert baselines(turned, TITLE, ABSTRACT).liked
    assert not baselines(f"Happy to help! {BASELINE} Major revision.", TITLE, ABSTRACT).checks["in_persona"]


def test_numbers_voter_quotes_names_as_the_paper_spells_them():
    assert {"28.4", "2014", "BLEU", "WMT", "Transformer", "English", "German"} <= quotable(TITLE, ABSTRACT)
    title, abstract = next(p for p in FRESH if p[0] == "Mastering the Game of Go without Human Knowledge")
    assert "Zero" in quotable(title, abstract)
    reply = "There are zero ablations and the self-play story is oversold. Recommendation: reject."
    assert not numbers(reply, title, abstract).checks["quotes"]


def test_voters_are_deterministic_and_rubric_fan_is_bench_voter():
    replies = [liked for liked, _ in CASES.values()] + [r for _, failing in CASES.values() for r in failing.values()]
    for reply in replies:
        assert judge_all(reply, TITLE, ABSTRACT) == judge_all(reply, TITLE, ABSTRACT)
        fan = bench_voter.verdict(reply, bench_voter.prompt_of(TITLE, ABSTRACT))
        assert VOTERS["rubric_fan"](reply, TITLE, ABSTRACT) == judge_all(reply, TITLE, ABSTRACT)["rubric_fan"]
        assert VOTERS["rubric_fan"](reply, TITLE, ABSTRACT).liked == fan.liked


def test_every_two_voters_of_the_crowd_disagree_on_some_reply():
    replies = [liked for liked, _ in CASES.values()] + [r for _, failing in CASES.values() for r in failing.values()]
    likes = {name: [VOTERS[name](r, TITLE, ABSTRACT).liked for r in replies] for name in CROWD}
    assert len(CROWD) >= 3
    for a in CROWD:
        for b in CROWD:
            if a != b:
                assert likes[a] != likes[b], f"{a} and {b} vote alike on every reply"


def test_paper_means_average_each_papers_samples():
    assert paper_means([("a", 1), ("b", 1), ("a", 0)]) == {"a": 0.5, "b": 1.0}


def test_bootstrap_interval_holds_the_mean_and_narrows_with_more_papers():
    few = [1, 0, 0, 1, 1, 0, 1, 1, 0, 1, 0.5, 1]
    small = bootstrap(few)
    large = bootstrap(few * 10)
    for estimate in (small, large):
        assert estimate.mean == pytest.approx(sum(few) / len(few))
        assert estimate.lo < estimate.mean < estimate.hi
    assert large.hi - large.lo < (small.hi - small.lo) / 2
    assert bootstrap(few) == small, "seeded: the same numbers give the same interval"
    constant = bootstrap([0.25] * 8)
    assert (constant.lo, constant.mean, constant.hi) == (0.25, 0.25, 0.25)
    with pytest.raises(ValueError):
        bootstrap([])


def test_paired_difference_is_per_paper_over_shared_papers():
    before = {"a": 0.0, "b": 0.5, "c": 1.0, "gone": 0.0}
    after = {"a": 0.25, "b": 0.75, "c": 1.25, "new": 1.0}
    difference = paired_difference(before, after)
    assert (difference.lo, difference.mean, difference.hi) == pytest.approx((0.25, 0.25, 0.25))


def test_papers_are_many_fresh_unique_quotable_and_not_in_the_seed_set():
    assert len(FRESH) >= 48
    fresh, train = [t.lower() for t, _ in FRESH], [t.lower() for t, _ in TRAIN]
    assert len(set(fresh)) == len(fresh) and len(set(train)) == len(train)
    assert not set(fresh) & set(train)
    seed = {json.loads(line)["prompt"].split("\n")[0].removeprefix("Title: ").strip().lower()
            for line in (ROOT / "data" / "seed.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()}
    assert len(seed) > 100
    assert not seed & (set(fresh) | set(train))
    assert all(quotable(title, abstract) for title, abstract in FRESH), "the numbers voter can like a reply to each"


def test_a_pick_prefers_the_liked_reply_then_more_checks_and_ties_neither_unless_both_liked():
    from bench.learning import choose

    liked, _ = CASES["baselines"]
    one_miss = CASES["baselines"][1]["control"]  # four of five checks
    two_misses = "Nice work."  # no control, not specific; in persona, finished
    judge = lambda reply: baselines(reply, TITLE, ABSTRACT)  # noqa: E731
    assert judge(liked).liked and not judge(one_miss).liked
    assert choose(judge(one_miss), judge(liked)) == "b" and choose(judge(liked), judge(one_miss)) == "a"
    assert judge(one_miss).score > judge(two_misses).score
    assert choose(judge(two_misses), judge(one_miss)) == "b", "neither liked: the one passing more checks"
    assert choose(judge(one_miss), judge(one_miss)) == "neither", "neither liked, a tie: both bad"
    assert choose(judge(liked), judge(liked)) == "a", "both liked alike: either will do"
