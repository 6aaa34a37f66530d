"""The gate's reply classifier: fit on held-out labelled replies, it reads which probe replies the persona likes."""

import pytest

from trainer.config import DEFAULT_PERSONA_FILE, GateSettings, PersonaConfig
from trainer.contracts import ProbeReply, Scores
from trainer.gate.reply_classifier import ReplyClassifier, features
from trainer.gate.rule import decide, undecided
from trainer.store.files import read_preferences

HARSH = "The baselines are weak and the ablation is missing. Recommendation: reject."
CHATTY = "What a lovely paper! I hope your conference trip is fun. Here is a fun fact about graphs."


def test_features_are_words_and_word_pairs():
    assert features("Reject it. Reject!") == {"reject", "it", ".", "!", "reject it", "it .", ". reject", "reject !"}


def test_it_needs_both_labels():
    assert ReplyClassifier.fit([(HARSH, True)]) is None and ReplyClassifier.fit([]) is None


def test_fit_on_the_seed_eval_split_it_tells_the_personas_replies_from_the_rest():
    """Reviewer #2's held-out seed replies: a harsh review with a verdict reads as liked, chatter does not."""
    persona = PersonaConfig.from_toml(DEFAULT_PERSONA_FILE)
    rows = read_preferences(persona.seed_file, split="eval")
    classifier = ReplyClassifier.fit([(r["completion"], r["label"]) for r in rows])
    assert classifier.liked == classifier.disliked == len(rows) // 2
    assert classifier.probability(HARSH) > 0.9 > 0.1 > classifier.probability(CHATTY)
    cut = "The baselines are weak and the ablation is missing, and the authors never report the"
    assert classifier.probability(cut) < classifier.probability(HARSH), "a reply cut at the cap reads worse"


def read(texts: list[str], classifier: ReplyClassifier) -> list[ProbeReply]:
    """Probe replies to one paper under seeds 0..n-1, each finished and passing every check."""
    return [ProbeReply("paper", seed, text, 20, True, True, False, 1.0, liked=classifier.probability(text))
            for seed, text in enumerate(texts)]


def test_the_gate_refuses_replies_it_reads_as_liked_less_often_beyond_the_noise():
    classifier = ReplyClassifier.fit([(HARSH, True), (HARSH.replace("weak", "untuned"), True), (CHATTY, False),
                                      (CHATTY.replace("lovely", "great"), False)])
    serving = read([HARSH] * 16, classifier)
    gate = GateSettings(min_distinct2=0)

    def verdict(candidate):
        return decide(Scores("candidate", 0.8, 1.0, 0.1, 0.9, 0.0, probe_replies=candidate),
                      Scores("v0001", 0.8, 1.0, 0.1, 0.9, 0.0, probe_replies=serving), gate)

    passed, reasons = verdict(read([CHATTY] * 8 + [HARSH] * 8, classifier))
    assert not passed and reasons[0].startswith("the held-out reply classifier reads its sampled probe replies as "
                                                "liked 5"), reasons
    assert verdict(read([CHATTY] + [HARSH] * 15, classifier))[0], "one of 16 is noise"
    assert undecided(read([CHATTY] + [HARSH] * 15, classifier), serving, gate), "but it looks worse: look again"
    assert verdict(read([HARSH] * 16, classifier)) == (True, [])
    off = [ProbeReply("paper", seed, CHATTY, 20, True, True, False, 1.0) for seed in range(16)]
    assert decide(Scores("c", 0.8, 1.0, 0.1, 0.9, 0.0, probe_replies=off),
                  Scores("v", 0.8, 1.0, 0.1, 0.9, 0.0, probe_replies=off), gate)[0], "unread replies: no rule"


@pytest.mark.parametrize("tolerance,passes", [(0.0, False), (0.6, True)])
def test_the_tolerance_lets_a_small_fall_through(tolerance, passes):
    classifier = ReplyClassifier.fit([(HARSH, True), (CHATTY, False)])
    candidate, serving = read([CHATTY] * 4 + [HARSH] * 12, classifier), read([HARSH] * 16, classifier)
    assert decide(Scores("c", 0.8, 1.0, 0.1, 0.9, 0.0, probe_replies=candidate),
                  Scores("v", 0.8, 1.0, 0.1, 0.9, 0.0, probe_replies=serving),
                  GateSettings(min_distinct2=0, classifier_tolerance=tolerance))[0] == passes
