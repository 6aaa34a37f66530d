"""The running bot on a tiny random Llama: message checks, votes by row, admin, and the trainer thread."""

import time
import weakref

import pytest

import trainer.loop
from trainer.loop import NotEnoughVotes
from trainer.rounds import RoundHooks
from trainer.runtime import AdminError, ChatError, Runtime
from trainer.votes import VoteError


@pytest.fixture
def runtime(settings, tiny_base):
    runtime = Runtime(settings, tiny_base)
    yield runtime
    runtime.close()


def chat(runtime, session, text, key="alice"):
    for session in runtime.chat(session, text, key):
        pass
    return session


def wait_for(predicate, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


@pytest.mark.parametrize("text,message", [
    ("", "Please type a message"), ("   \n", "Please type a message"), (None, "Please type a message"),
    ("x" * 501, "501 characters; the limit is 500")])
def test_bad_messages_are_refused_and_lose_nothing(runtime, text, message):
    session = chat(runtime, runtime.new_session(), "First paper.")
    before = [dict(m) for m in session.turns]
    with pytest.raises(ChatError, match=message):
        chat(runtime, session, text)
    assert session.turns == before and len(session.reply_ids) == 1


def test_long_history_is_cut_to_the_budget(runtime):
    session = runtime.new_session()
    for i in range(12):
        session = chat(runtime, session, f"Paper {i}: " + "word " * 40)
    last = runtime.votes.get_reply(session.reply_ids[max(session.reply_ids)])
    assert runtime.server.count_tokens(last.prompt) <= runtime.settings.chat.prompt_token_budget
    assert last.prompt[0]["role"] == "system" and last.prompt[-1]["content"].startswith("Paper 11")
    assert len(last.prompt) < 2 * 12


def test_votes_go_by_row_to_this_sessions_replies_only(runtime):
    session = chat(runtime, runtime.new_session(), "A paper.")
    assert session.chatbot()[0] == {"role": "assistant", "content": "Send me your paper."}
    [(row, reply_id)] = session.reply_ids.items()
    assert row == 2 and session.chatbot()[row]["role"] == "assistant"
    for forged in (0, 1, 3, -1, "2", True, None):
        with pytest.raises(VoteError):
            runtime.vote(session, forged, "like", "alice")
    with pytest.raises(VoteError, match="your own chat"):
        runtime.vote(session, row, "like", "mallory")  # a stolen session state with another voter key
    with pytest.raises(VoteError, match="Unknown feedback"):
        runtime.vote(session, row, "meh", "alice")
    assert runtime.votes.total_counts() == (0, 0)
    assert runtime.vote(session, [row, None], True, "alice") == "Vote recorded."
    assert runtime.vote(session, row, "", "alice") == "Vote retracted."
    assert runtime.vote(session, row, "Dislike", "alice") == "Vote recorded."
    assert runtime.vote(session, row, False, "alice") == "Vote retracted."


def test_reply_is_stored_with_prompt_version_and_session(runtime):
    session = chat(runtime, runtime.new_session(), "A paper.", key="bob")
    reply = runtime.votes.get_reply(session.reply_ids[2])
    assert reply.session == "bob" and reply.version == "base" and reply.completion == session.turns[-1]["content"]
    assert reply.prompt == [{"role": "system", "content": runtime.settings.persona.system_prompt},
                            {"role": "user", "content": "A paper."}]


def test_admin_actions_need_the_token(runtime, settings):
    for token in (None, "", "wrong", "sesame "):
        with pytest.raises(AdminError, match="Not authorized"):
            runtime.train_now(token)
    with pytest.raises(NotEnoughVotes, match="both kinds"):
        runtime.train_now("sesame")
    settings.loop.admin_token = ""
    with pytest.raises(AdminError, match="disabled"):
        runtime.train_now("")


def vote_on_replies(runtime, n):
    session = runtime.new_session()
    for i in range(n):
        session = chat(runtime, session, f"Paper {i}.")
    for i, row in enumerate(sorted(session.reply_ids)):
        runtime.vote(session, row, i % 2 == 0, "alice")
    return session


def test_trainer_thread_trains_on_enough_votes_and_swaps(runtime):
    runtime.loop.start()
    vote_on_replies(runtime, 3)
    time.sleep(0.5)
    assert runtime.loop.status().rounds == 0, "3 votes are below MIN_VOTES=4"
    session = chat(runtime, runtime.new_session(), "One more.")
    runtime.vote(session, 2, False, "alice")
    wait_for(lambda: runtime.loop.status().rounds == 1)  # the round ends after its version serves
    assert runtime.server.current.name == "v0001"
    status = runtime.status()
    assert status["votes_waiting"] == {"up": 0, "down": 0} and status["trainer"]["last_error"] is None
    assert runtime.versions.current() == "v0001" and status["trainer"]["last_swap_ms"] < 5
    assert len(runtime.versions.get("v0001").meta["votes"]) == 4


def test_crash_mid_round_keeps_serving_and_keeps_every_vote(runtime, monkeypatch):
    real_round = trainer.loop.train_round

    def crashing_round(*args, hooks: RoundHooks, **kwargs):
        def progress(step, total):
            if step == 1:
                raise MemoryError("killed mid-round")
        return real_round(*args, hooks=RoundHooks(progress=progress), **kwargs)

    vote_on_replies(runtime, 4)
    monkeypatch.setattr(trainer.loop, "train_round", crashing_round)
    assert runtime.loop.run_round() is None
    status = runtime.status()
    assert status["serving"] == "base" and runtime.versions.names() == []
    assert status["votes_waiting"] == {"up": 2, "down": 2}
    assert "killed mid-round" in status["trainer"]["last_error"] and status["trainer"]["state"] == "idle"
    assert not runtime.loop.ready(), "no retry loop on the same votes"
    runtime.train_now("sesame")
    assert runtime.loop.ready(), "an admin may retry"
    monkeypatch.setattr(trainer.loop, "train_round", real_round)
    assert runtime.loop.run_round().version == "v0001" and runtime.server.current.name == "v0001"
    assert runtime.status()["trainer"]["last_error"] is None


def test_a_merged_version_is_built_only_once_the_old_one_is_freed(runtime, monkeypatch):
    vote_on_replies(runtime, 4)
    runtime.loop.run_round()
    old = runtime.server.current
    assert old.name == "v0001" and not any("lora_" in n for n, _ in old.model.named_parameters()), "served merged"
    old_model = weakref.ref(old.model)
    del old
    loads, real_load = [], runtime.server.load

    def load(name, path, merged=True):
        loads.append((name, merged, old_model() is None))
        return real_load(name, path, merged)

    monkeypatch.setattr(runtime.server, "load", load)
    vote_on_replies(runtime, 4)
    assert runtime.loop.run_round().passed
    # v0002 serves unmerged at once (sharing the base's weights); its merged copy is built after v0001's is gone.
    assert loads == [("v0002", False, False), ("v0002", True, True)]
    current = runtime.server.current
    assert current.name == "v0002" and not any("lora_" in n for n, _ in current.model.named_parameters())
    assert runtime.versions.current() == "v0002"


def test_restart_serves_the_current_version(runtime, settings, tiny_base):
    vote_on_replies(runtime, 4)
    runtime.loop.run_round()
    restarted = Runtime(settings, tiny_base)
    assert restarted.server.current.name == "v0001"


def test_rejected_round_is_kept_but_not_served(runtime, settings):
    settings.gate.enabled = True
    settings.gate.max_kl = 0.0  # any trained adapter moves away from the base, so this gate always refuses
    vote_on_replies(runtime, 4)
    result = runtime.loop.run_round()
    assert result is not None and not result.passed
    assert runtime.server.current.name == "base" and runtime.versions.current() == "base"
    assert runtime.versions.names() == ["v0001"] and runtime.versions.get("v0001").meta["gate"]["passed"] is False
    status = runtime.status()["trainer"]
    assert "over the cap 0.0" in status["last_rejection"] and status["last_error"] is None
    assert runtime.votes.waiting_counts() == (0, 0), "votes of a rejected round are not retried forever"


def test_the_gate_scores_the_serving_version_only_on_rows_it_has_not_seen(runtime, settings, monkeypatch):
    gate = settings.gate
    gate.enabled, gate.auc_tolerance, gate.max_kl, gate.min_distinct2, gate.max_repetition = True, 1.0, 1e9, 0.0, 1.0
    built, real_with_adapter = [], trainer.loop.with_adapter
    monkeypatch.setattr(trainer.loop, "with_adapter", lambda base, path: built.append(path.name) or
                        real_with_adapter(base, path))
    vote_on_replies(runtime, 4)
    first = runtime.loop.run_round()
    assert first.passed and runtime.server.current.name == "v0001"
    vote_on_replies(runtime, 4)
    second = runtime.loop.run_round()
    # v0001 was scored on these held-out rows as the first round's candidate: only the new candidate is built.
    assert len(built) == 2 and all(name.startswith(".staging") for name in built), built
    assert second.gate.serving.version == "v0001"
    assert (second.gate.serving.auc, second.gate.serving.kl) == (first.gate.candidate.auc, first.gate.candidate.kl)


def test_held_out_votes_never_train(runtime, settings):
    settings.gate.holdout_share = 0.3  # 16 votes: both labels stay in training but for a 1e-4 chance
    vote_on_replies(runtime, 16)
    waiting = runtime.votes.votes(waiting=True)
    result = runtime.loop.run_round()
    trained = set(result.meta["votes"])
    held = {f"{v.reply_id}:{v.voter}" for v in runtime.votes.held_out_votes()}
    assert held and trained and held.isdisjoint(trained) and len(held | trained) == len(waiting)
    assert len(runtime.loop.held_out_rows()) == settings.gate.seed_rows + len(held)


def test_early_stopping_keeps_the_best_step(runtime, settings):
    settings.gate.early_stop_every, settings.gate.early_stop_patience = 1, 1
    settings.round_overrides.update(max_steps=4, learning_rate=0.0)  # nothing improves after the first score
    vote_on_replies(runtime, 8)
    early = runtime.loop.run_round().meta["early_stopping"]
    assert early["stopped_early"] and early["stopped_at"] == 2 and early["best_step"] == 1
    assert [s["step"] for s in early["scores"]] == [1, 2]


def test_admin_pause_resume_rollback_export(runtime):
    for action in (runtime.pause_trainer, runtime.resume_trainer, runtime.export_votes):
        with pytest.raises(AdminError):
            action("wrong")
    with pytest.raises(AdminError):
        runtime.rollback(None, "base")
    vote_on_replies(runtime, 4)
    assert "paused" in runtime.pause_trainer("sesame")
    assert not runtime.loop.ready() and runtime.status()["trainer"]["state"] == "paused"
    runtime.resume_trainer("sesame")
    assert runtime.loop.ready()
    runtime.loop.run_round()
    assert runtime.server.current.name == "v0001"
    assert runtime.rollback("sesame", "base") == "Now serving base."
    assert runtime.server.current.name == "base" and runtime.versions.current() == "base"
    assert runtime.versions.history()[-1]["reason"] == "rollback"
    path = runtime.export_votes("sesame")
    assert len(path.read_text().splitlines()) == 4


def test_signed_in_owner_is_admin(runtime, settings):
    settings.loop.admin_user = "owner"
    with pytest.raises(AdminError):
        runtime.pause_trainer(None, username="visitor")
    assert "paused" in runtime.pause_trainer(None, username="owner")


def test_shipped_adapter_that_does_not_fit_the_model_is_not_installed(settings, tiny_base):
    from trainer.config import SHIPPED_ADAPTER

    settings.shipped_adapter = SHIPPED_ADAPTER  # made for SmolLM2: its LoRA shapes do not fit the tiny model
    runtime = Runtime(settings, tiny_base)
    assert runtime.server.current.name == "base" and runtime.versions.names() == []
