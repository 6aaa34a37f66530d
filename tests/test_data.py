"""Pure data shaping, tested without a model: rows, class weights, the history budget."""

import random

import pytest

from trainer.data import (
    PromptTooLong,
    balanced_sample,
    class_weights,
    ends_turn,
    fit_history,
    fit_row,
    kto_rows,
    labelled_sample,
    stratified_batches,
)
from trainer.store.votes import Vote


def words(messages) -> int:
    return sum(len(m["content"].split()) for m in messages)


def turn(i: int) -> list[dict]:
    return [{"role": "user", "content": f"question {i} " * 5}, {"role": "assistant", "content": f"answer {i} " * 5}]


def test_kto_rows_are_trl_conversational_unpaired_rows():
    prompt = [{"role": "system", "content": "be harsh"}, {"role": "user", "content": "my paper"}]
    votes = [Vote("r1", "a", True, 1, prompt, "Reject.", "base", 0.0),
             Vote("r2", "a", False, 1, prompt, "Lovely!", "v0001", 0.0)]
    rows = kto_rows(votes)
    assert rows == [{"prompt": prompt, "completion": [{"role": "assistant", "content": "Reject."}], "label": True,
                     "ends_turn": True},
                    {"prompt": prompt, "completion": [{"role": "assistant", "content": "Lovely!"}], "label": False,
                     "ends_turn": True}]
    rows[0]["prompt"][0]["content"] = "changed"
    assert prompt[0]["content"] == "be harsh", "rows must not alias the votes' prompts"


@pytest.mark.parametrize("up,down", [(4, 4), (1, 9), (9, 1), (3, 5), (100, 7)])
def test_class_weights_keep_trl_ratio_between_1_and_4_over_3(up, down):
    desirable, undesirable = class_weights(up, down)
    assert 1 <= desirable * up / (undesirable * down) <= 4 / 3
    assert min(desirable, undesirable) == 1.0


def test_class_weights_are_capped():
    """One liked reply among 19 disliked ones gets the cap, not 19 times the weight of each of them."""
    assert class_weights(1, 19, cap=2.0) == (2.0, 1.0)
    assert class_weights(19, 1, cap=2.0) == (1.0, 2.0)
    assert class_weights(3, 4, cap=2.0) == (4 / 3, 1.0)


def test_balanced_sample_draws_both_labels_repeatably():
    rows = [{"id": i, "label": i % 3 == 0} for i in range(60)]
    first = balanced_sample(rows, 9, seed=1)
    assert len(first) == 9 and sum(r["label"] for r in first) == 5
    assert balanced_sample(rows, 9, seed=1) == first and balanced_sample(rows, 9, seed=2) != first
    assert len({r["id"] for r in first}) == 9
    assert balanced_sample(rows[:2], 8, seed=0) == [rows[0], rows[1]]  # fewer rows than asked: all of them


def test_anchors_matched_to_a_taste_come_from_the_rows_it_likes_best():
    """With `liked`, thumbs-up anchors come from the 3 x wanted rows it scores highest, thumbs-down ones from the
    lowest; the pool still varies the draw."""
    rows = [{"completion": f"reply {i}", "label": i % 2 == 0, "score": i} for i in range(60)]
    score = lambda row: row["score"] / 60  # noqa: E731
    draws = [labelled_sample(rows, 4, 2, random.Random(seed), score) for seed in range(8)]
    for drawn in draws:
        assert [r["label"] for r in drawn] == [True, False, True, False, True, True]
        assert all(r["score"] >= 60 - 2 * 12 for r in drawn if r["label"]), "the 12 best-liked of 30"
        assert all(r["score"] < 2 * 6 for r in drawn if not r["label"]), "the 6 least liked of 30"
    assert len({tuple(r["score"] for r in drawn) for drawn in draws}) > 1
    uniform = labelled_sample(rows, 4, 2, random.Random(0))
    assert len(uniform) == 6 and {r["label"] for r in uniform} == {True, False}


def test_class_weights_need_both_labels():
    with pytest.raises(ValueError, match="both labels"):
        class_weights(5, 0)


def test_history_fits_whole_turns_oldest_first_and_keeps_system():
    turns = turn(1) + turn(2) + turn(3)
    everything = fit_history("sys", turns, "new", words, budget=1000)
    assert everything == [{"role": "system", "content": "sys"}, *turns, {"role": "user", "content": "new"}]
    cut = fit_history("sys", turns, "new", words, budget=1 + 40 + 1)  # room for two turns
    assert cut == [{"role": "system", "content": "sys"}, *turn(2), *turn(3), {"role": "user", "content": "new"}]
    minimal = fit_history("sys", turns, "new", words, budget=2)
    assert minimal == [{"role": "system", "content": "sys"}, {"role": "user", "content": "new"}]


def test_history_never_starts_with_an_orphan_reply():
    turns = [{"role": "assistant", "content": "greeting " * 3}] + turn(1)
    messages = fit_history("sys", turns, "new", words, budget=1000)
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]


def test_history_refuses_a_message_that_cannot_fit():
    with pytest.raises(PromptTooLong, match="too long for the prompt budget of 3 tokens"):
        fit_history("sys tem", [], "a b c", words, budget=3)


def test_history_budget_with_the_real_chat_template(tokenizer):
    def count(messages):
        return len(tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_dict=True)["input_ids"])

    turns = sum((turn(i) for i in range(30)), [])
    messages = fit_history("You are Reviewer #2.", turns, "Review this.", count, budget=200)
    assert count(messages) <= 200 and messages[0]["role"] == "system" and messages[-1]["content"] == "Review this."
    assert messages[1] == turns[2 * (30 - (len(messages) - 2) // 2)], "the newest turns are the ones kept"


def labelled(n_liked: int, n_disliked: int) -> list[dict]:
    """Rows listed as a balanced sample lists them: every liked row, then every disliked one."""
    return [{"id": i, "label": i < n_liked} for i in range(n_liked + n_disliked)]


@pytest.mark.parametrize("liked,disliked,batch", [(128, 128, 8), (4, 36, 4), (2, 22, 4), (1, 7, 2), (20, 3, 4),
                                                  (5, 5, 4), (1, 1, 8)])
def test_stratified_batches_put_both_labels_in_every_batch(liked, disliked, batch):
    ordered = stratified_batches(labelled(liked, disliked), batch, seed=3)
    assert len(ordered) % batch == 0
    assert {r["id"] for r in ordered} == set(range(liked + disliked)), "every row is read at least once"
    for start in range(0, len(ordered), batch):
        labels = {r["label"] for r in ordered[start:start + batch]}
        assert labels == {True, False}, f"batch {start // batch} holds one label only"
    assert stratified_batches(labelled(liked, disliked), batch, seed=3) == ordered
    if liked == disliked and liked % (batch // 2) == 0:
        assert len(ordered) == liked + disliked, "balanced rows are not repeated"
        assert all(sum(r["label"] for r in ordered[i:i + batch]) == batch // 2 for i in range(0, len(ordered), batch))


def test_stratified_batches_of_one_label_are_a_shuffle():
    rows = labelled(0, 12)
    ordered = stratified_batches(rows, 4, seed=1)
    assert sorted(r["id"] for r in ordered) == list(range(12)) and ordered != rows


def test_a_reply_ends_its_turn_when_it_ends_a_sentence():
    assert ends_turn("The baselines are untuned and the seeds unreported. Recommendation: reject.")
    assert not ends_turn("The baselines are untuned and the seeds unreported, and the ablations of the")
    assert ends_turn("Reject.") and ends_turn(""), "a short reply, or none, ended too"


def test_a_row_too_long_for_training_loses_its_oldest_turns_never_its_reply():
    system = {"role": "system", "content": "be harsh"}
    reply = [{"role": "assistant", "content": "word " * 30 + "Reject."}]
    history = [m for i in range(4) for m in turn(i)]
    row = {"prompt": [system, *history, {"role": "user", "content": "the new paper " * 3}], "completion": reply,
           "label": True}
    assert fit_row(row, words, 1000) is row, "a row that fits is unchanged"
    fitted = fit_row(row, words, 82)  # system 2 + 4 turns of 20 words + message 9 + reply 31: two turns must go
    assert fitted["completion"] == reply and fitted["prompt"][0] == system
    assert fitted["prompt"][1:] == [*turn(2), *turn(3), row["prompt"][-1]] and words(fitted["prompt"] + reply) <= 82
    alone = fit_row(row, words, 36)  # not even the new message fits whole: its start is kept
    assert alone["completion"] == reply and [m["role"] for m in alone["prompt"]] == ["system", "user"]
    assert words(alone["prompt"] + reply) <= 36 and alone["prompt"][1]["content"].startswith("the new")
    pair = {"prompt": row["prompt"], "chosen": reply, "rejected": [{"role": "assistant", "content": "No."}]}
    assert fit_row(pair, words, 82)["prompt"] == fitted["prompt"], "the longer reply of a pair decides"
