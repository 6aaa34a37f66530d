"""Two replies, pick one: the app on localhost (tiny model) driven by gradio_client. A pick lands as a pair,
a change of mind replaces it, forged or early picks are refused; picks train a paired round; and a candidate the
gate kept out writes reply B of the next comparison, labelled as such."""

import dataclasses

import pytest
from gradio_client import Client

from trainer.config import TrainingSettings
from trainer.runtime import Runtime


def compare(client: Client, text: str) -> tuple:
    """Reply A, reply B and the note saying which versions wrote them."""
    a, b, note = client.predict(text, api_name="/compare")
    return a, b, note


@pytest.fixture
def app_url(settings, tiny_base, launch):
    def start(loss: str = "kto") -> tuple[Runtime, str]:
        settings.training = TrainingSettings(loss=loss)
        settings.chat = dataclasses.replace(settings.chat, temperature=1.0, max_new_tokens=6)  # two samples differ
        runtime = Runtime(settings, tiny_base)
        return runtime, launch(runtime)
    return start


def test_a_pick_through_gradio_client_lands_as_a_pair(app_url):
    runtime, url = app_url()
    client = Client(url, verbose=False)
    with pytest.raises(Exception, match="Ask for two replies first"):
        client.predict("a", api_name="/pick")
    a, b, note = compare(client, "Title: Paper 1. Abstract: We claim 1%.")
    assert "both from the serving version base, sampled twice" in note and a and b
    assert client.predict("a", api_name="/pick") == "Pick recorded."
    [pick] = runtime.votes.all_picks()
    assert (pick.chosen, pick.rejected) == (a, b), "the stored texts are the server's, in the order shown"
    assert pick.prompt[-1]["content"] == "Title: Paper 1. Abstract: We claim 1%."
    assert (pick.version_a, pick.version_b) == ("base", "base")
    assert client.predict("b", api_name="/pick") == "Pick changed."
    assert client.predict("b", api_name="/pick") == "Pick unchanged."
    with pytest.raises(Exception, match="one of a, b, neither"):
        client.predict("both", api_name="/pick")
    [pick] = runtime.votes.all_picks()
    assert (pick.chosen, pick.revision) == (b, 2)
    # Another visitor's client has no comparison of its own: it cannot pick on this one.
    with pytest.raises(Exception, match="Ask for two replies first"):
        Client(url, verbose=False).predict("a", api_name="/pick")
    assert len(runtime.votes.all_picks()) == 1
    # A pick counts as a liked and a disliked reply for the unpaired loss.
    assert runtime.learner.waiting_counts() == (1, 1) and client.predict(api_name="/status")["picks_waiting"] == 1


def test_picks_train_a_paired_round_and_a_kept_out_candidate_writes_reply_b(app_url, settings):
    runtime, url = app_url(loss="dpo")
    client = Client(url, verbose=False)
    for i in range(4):
        compare(client, f"Title: Paper {i}. Abstract: We claim {i}%.")
        client.predict("a" if i % 2 else "b", api_name="/pick")
    compare(client, "Title: Paper 9. Abstract: Both bad.")
    client.predict("neither", api_name="/pick")
    assert runtime.learner.waiting_counts() == (4, 4), "a paired loss reads the four picks of a better reply"
    result = runtime.loop.run_round()
    assert result is not None and result.meta.loss == "dpo" and len(result.meta.picks) == 4
    assert runtime.votes.waiting_pick_counts() == (0, 1), "'both bad' waits for an unpaired round"

    settings.gate.enabled, settings.gate.auc_tolerance = True, -1.0  # this gate refuses every candidate
    for i in range(4):
        compare(client, f"Title: Paper {i + 10}. Abstract: We claim more.")
        client.predict("a", api_name="/pick")
    rejected = runtime.loop.run_round()
    assert rejected is not None and not rejected.passed and runtime.server.current.name == "v0001"
    a, b, note = compare(client, "Title: Paper 20. Abstract: A candidate speaks.")
    assert "A from the serving version v0001, B from the candidate v0002" in note
    client.predict("b", api_name="/pick")
    newest = runtime.votes.picks(waiting=True)[-1]
    assert (newest.version_a, newest.version_b, newest.chosen) == ("v0001", "v0002", b)
