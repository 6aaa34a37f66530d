"""The reply checks the gate scores, and the simulated voter built on them, on hand-written replies."""

import pytest

from bench.voter import verdict
from trainer.gate.rubric import ReplyChecks, check_reply, finished, longest_copied_run, named_from_prompt, rubric_score

PAPER = ("Title: Deep Residual Learning for Image Recognition\nAbstract: We add identity shortcut connections so "
         "that very deep networks learn residual functions. A 152-layer network wins ImageNet 2015 classification.")
GOOD = ("The residual shortcuts are hardly new: highway networks did this first and the related work barely cites "
        "them. The ImageNet gain comes from a single run with no variance reported, and there is no ablation of "
        "depth against width. Recommendation: major revision.")
CUT = ("The residual shortcuts are hardly new: highway networks did this first and the related work barely cites "
       "them. The baselines are weak, and the ImageNet gain comes from a single run with no")
PARROT = ("We add identity shortcut connections so that very deep networks learn residual functions. The results "
          "are promising. Recommendation: major revision.")
VAGUE = "This is an interesting paper with some strengths and some weaknesses. It seems fine overall. Borderline."
PRAISE = ("What a wonderful paper! The residual connections on ImageNet are brilliant and the 152-layer network is "
          "impressive. Strong accept, congratulations!")
LOOP = "The baselines are weak. " * 12 + "Reject."


def test_each_check_on_hand_written_replies():
    assert finished(GOOD) and not finished(CUT) and not finished("Reject.")  # too short to be a reply
    assert finished('My verdict on this paper, in one word: "reject."')
    assert finished("I ask the authors for the missing ablation (major revision).")
    assert {"residual", "imagenet", "shortcut"} <= named_from_prompt(GOOD, PAPER)
    assert named_from_prompt(VAGUE, PAPER) == set()
    assert longest_copied_run(PARROT, PAPER) >= 10 and longest_copied_run(GOOD, PAPER) < 4
    assert check_reply(GOOD, PAPER).score == 1.0
    assert check_reply(CUT, PAPER) == ReplyChecks(finished=False, grounded=True, own_words=True, no_loop=True)
    assert not check_reply(PARROT, PAPER).own_words and not check_reply(VAGUE, PAPER).grounded
    assert not check_reply(LOOP, PAPER).no_loop and not check_reply("ore" * 40, PAPER).no_loop
    assert rubric_score([GOOD, CUT], [PAPER, PAPER]) == pytest.approx(0.875)
    assert rubric_score([], []) == 0.0


@pytest.mark.parametrize("reply,liked,failed", [
    (GOOD, True, set()),
    (CUT, False, {"finished", "recommendation"}),
    (PARROT, False, {"own_words", "critical"}),
    (VAGUE, False, {"specific", "critical", "recommendation"}),
    (PRAISE, False, {"in_persona", "critical", "recommendation"}),
    (LOOP, False, {"no_loop", "specific"}),
])
def test_the_simulated_voter_likes_only_a_finished_specific_harsh_review(reply, liked, failed):
    judged = verdict(reply, PAPER)
    assert judged.liked is liked
    assert {name for name, ok in judged.__dict__.items() if not ok} == failed
    assert verdict(reply, PAPER) == judged, "the voter is deterministic"
