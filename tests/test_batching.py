"""Continuous batching on a tiny random Llama: replies decoded together are the replies decoded alone.

Every reply joins, leaves and stops on its own, keeps the version it started on across a swap,
and the old version is freed once its last reply ends.
"""

import gc
import threading
import time
import weakref
from contextlib import contextmanager

import pytest
import torch

from trainer.config import ChatSettings
from trainer.serve.chat import Chat, ChatError
from trainer.serve.core_sharing import CoreSharing
from trainer.serve.kv import UnsupportedCache
from trainer.serve.sampling import sampling_processors
from trainer.serve.server import Server
from trainer.store.votes import VoteStore

USER_MESSAGES = ["Review my paper on tables.", "Is attention all you need?", "Rate this abstract: we add noise.",
                 "A novel blockchain for peer review."]


@pytest.fixture
def tiny_base(tiny_base):
    """The tiny random Llama with weights large enough that its greedy replies depend on the prompt (at the
    default init every prompt gets one repeated token, and crossed rows would go unseen)."""
    torch.manual_seed(1)
    with torch.no_grad():
        for name, param in tiny_base.model.named_parameters():
            if "norm" not in name:
                param.normal_(0.0, 0.3)
    return tiny_base


@pytest.fixture
def chat_settings() -> ChatSettings:
    return ChatSettings(max_new_tokens=24, temperature=0.0, repetition_penalty=1.0, dtype="float32")


def conversation(system: str, text: str) -> list[dict]:
    return [{"role": "system", "content": system}, {"role": "user", "content": text}]


@contextmanager
def slow_steps(model: torch.nn.Module, seconds: float):
    """Every forward pass of `model` takes at least `seconds`: other threads get to act between steps."""
    handle = model.register_forward_pre_hook(lambda module, args: time.sleep(seconds))
    try:
        yield
    finally:
        handle.remove()


def finish(stream):
    list(stream)
    return stream.completion


def alone(server: Server, messages: list[dict]):
    """A reply with nothing else in flight."""
    assert server.wait_idle(10)
    return finish(server.stream(messages))


def test_replies_decoded_together_match_each_decoded_alone(tiny_base, chat_settings, long_system_prompt):
    server = Server(tiny_base, chat_settings, long_system_prompt)
    prompts = [conversation(long_system_prompt, text) for text in USER_MESSAGES]
    prompts.append(conversation("Be kind.", "Review my paper on tables."))  # no cached prefix: plain left padding
    expected = [alone(server, messages) for messages in prompts]
    with slow_steps(tiny_base.model, 0.005):
        streams = [server.stream(messages) for messages in prompts]
        together = [finish(stream) for stream in streams]
    assert server.decoder.largest_batch >= 3, "the replies were decoded in one batch"
    for reply, single in zip(together, expected):
        assert reply.token_ids == single.token_ids and reply.text == single.text
    assert len({reply.token_ids for reply in together}) > 1, "different prompts, different replies: no crossed rows"
    assert server.generating == 0


def test_a_reply_joins_mid_batch_and_a_stop_leaves_the_others_running(tiny_base, long_system_prompt):
    settings = ChatSettings(max_new_tokens=48, temperature=0.0, repetition_penalty=1.0, dtype="float32")
    server = Server(tiny_base, settings, long_system_prompt)
    first, second, third = (conversation(long_system_prompt, text) for text in USER_MESSAGES[:3])
    expected_first, expected_third = alone(server, first), alone(server, third)
    with slow_steps(tiny_base.model, 0.01):
        long_reply = server.stream(first)
        pieces = iter(long_reply)
        for _ in range(5):
            next(pieces)
        stopped = server.stream(second, stop=threading.Event())
        joined = server.stream(third)
        next(iter(stopped))
        next(iter(joined))  # all three are in flight now
        stopped.stop.set()
        list(stopped)
        assert long_reply.completion is None and joined.completion is None, "the others are still decoding"
        list(pieces)
        list(joined)
    assert stopped.completion.stopped and stopped.completion.new_tokens < 48
    assert long_reply.completion.token_ids == expected_first.token_ids and not long_reply.completion.stopped
    assert joined.completion.token_ids == expected_third.token_ids, "a reply that joined mid-batch is the reply alone"
    assert server.decoder.largest_batch == 3


def test_swap_mid_batch_keeps_each_reply_on_its_version_and_frees_the_old_one(tiny_base, chat_settings,
                                                                               trained_version, long_system_prompt):
    server = Server(tiny_base, chat_settings, long_system_prompt)
    messages = conversation(long_system_prompt, USER_MESSAGES[0])
    server.swap(server.load("old", trained_version.path, merged=False))
    expected_old = alone(server, messages)
    server.swap(server.load("base", None))
    expected_base = alone(server, messages)
    assert expected_old.token_ids != expected_base.token_ids

    server.swap(server.load("old", trained_version.path, merged=False))
    old_version = weakref.ref(server.current)
    with slow_steps(tiny_base.model, 0.01):
        before = [server.stream(messages) for _ in range(3)]
        next(iter(before[0]))
        assert set(server.in_flight()) == {"old"}
        assert server.swap(server.load("base", None)) < 0.005
        after = [server.stream(messages) for _ in range(2)]
        completions = [finish(stream) for stream in before + after]
    assert [c.version for c in completions] == ["old"] * 3 + ["base"] * 2
    assert all(c.token_ids == expected_old.token_ids for c in completions[:3])
    assert all(c.token_ids == expected_base.token_ids for c in completions[3:])
    del before, after
    gc.collect()
    assert old_version() is None, "the old version is freed once its last reply has ended"


def test_sampling_settings_are_applied_per_reply(tiny_base, long_system_prompt):
    assert sampling_processors(ChatSettings(temperature=0.0, repetition_penalty=1.0)) == []
    assert len(sampling_processors(ChatSettings(temperature=0.7, top_p=0.9, repetition_penalty=1.1))) == 3
    # A huge repetition penalty forbids every token the row has seen, prompt included: a tiny random
    # model's greedy reply would otherwise repeat itself.
    settings = ChatSettings(max_new_tokens=20, temperature=0.0, repetition_penalty=1e9, dtype="float32")
    server = Server(tiny_base, settings, long_system_prompt)
    plain = Server(tiny_base, ChatSettings(max_new_tokens=20, temperature=0.0, repetition_penalty=1.0,
                                           dtype="float32"), long_system_prompt)
    prompts = [conversation(long_system_prompt, text) for text in USER_MESSAGES[:2]]
    tokenizer = tiny_base.tokenizer
    with slow_steps(tiny_base.model, 0.005):
        streams = [server.stream(messages) for messages in prompts]
        penalized = [finish(stream) for stream in streams]
    for messages, reply in zip(prompts, penalized):
        prompt_ids = set(tokenizer.apply_chat_template(messages, add_generation_prompt=True))
        ids = tokenizer(reply.text, add_special_tokens=False)["input_ids"]
        assert reply.new_tokens == 20 and not prompt_ids & set(ids[1:-1])
    unpenalized = finish(plain.stream(prompts[0]))
    ids = tokenizer(unpenalized.text, add_special_tokens=False)["input_ids"]
    assert len(set(ids)) < len(ids), "without the penalty this model repeats itself (the check above can fail)"


def test_a_model_whose_cache_cannot_be_batched_is_refused_at_start(tiny_base, chat_settings):
    tiny_base.model.config.sliding_window = 4
    tiny_base.model.config.layer_types = ["sliding_attention"] * tiny_base.model.config.num_hidden_layers
    try:
        with pytest.raises(UnsupportedCache, match="full-attention"):
            Server(tiny_base, chat_settings)
    finally:
        del tiny_base.model.config.sliding_window
        tiny_base.model.config.layer_types = ["full_attention"] * tiny_base.model.config.num_hidden_layers


def test_a_visitor_has_one_reply_in_flight(tiny_base, settings, tmp_path, long_system_prompt):
    settings.chat.max_new_tokens = 48
    server = Server(tiny_base, settings.chat, long_system_prompt)
    chat = Chat(settings.chat, long_system_prompt, "", server, VoteStore(tmp_path / "votes.sqlite3"))
    with slow_steps(tiny_base.model, 0.01):
        first = chat.reply(chat.new_session(), USER_MESSAGES[0], "alice")
        next(first)
        with pytest.raises(ChatError, match="still writing"):
            next(chat.reply(chat.new_session(), USER_MESSAGES[1], "alice"))
        bob = list(chat.reply(chat.new_session(), USER_MESSAGES[1], "bob"))  # another visitor is not held up
        assert bob[-1].turns[-1]["content"]
        list(first)
    next(chat.reply(chat.new_session(), USER_MESSAGES[1], "alice"))  # once it ends, alice may send again

    def fail(module, args):
        raise RuntimeError("out of memory")

    handle = tiny_base.model.register_forward_pre_hook(fail)
    try:
        with pytest.raises(RuntimeError, match="generation failed: out of memory"):
            list(chat.reply(chat.new_session(), USER_MESSAGES[2], "carol"))
    finally:
        handle.remove()
    assert list(chat.reply(chat.new_session(), USER_MESSAGES[2], "carol"))[-1].turns[-1]["content"], \
        "a reply that failed does not lock its visitor out"


def test_seeded_samples_are_the_same_alone_and_in_a_batch(tiny_base):
    """The gate's probe replies: a (version, messages, seed) request samples the same reply whatever else the loop
    decodes beside it, and another seed samples another reply."""
    settings = ChatSettings(max_new_tokens=16, temperature=1.0, top_p=0.95, repetition_penalty=1.1, dtype="float32")
    server = Server(tiny_base, settings, "You are Reviewer #2.")
    try:
        served = server.current
        messages = [conversation("You are Reviewer #2.", text) for text in USER_MESSAGES]
        alone = server.sample([(served, messages[0], 7)], max_new_tokens=12)[0]
        batch = server.sample([(served, m, seed) for m, seed in zip(messages, (3, 7, 7, 9))] +
                              [(served, messages[0], 7), (served, messages[0], 8)], max_new_tokens=12)
        assert batch[4].token_ids == alone.token_ids and alone.new_tokens <= 12
        assert batch[5].token_ids != alone.token_ids, "another seed, another sample"
        assert all(c.new_tokens <= 12 for c in batch) and server.generating == 0
    finally:
        server.decoder.close()


class GatedTurns(CoreSharing):
    """CoreSharing whose decode loop holds still before its first step until `opened` is set."""

    def __init__(self):
        super().__init__(grace_seconds=0.0, training_share=0.5)
        self.opened = threading.Event()

    def wait_chat_turn(self) -> None:
        self.opened.wait()
        super().wait_chat_turn()


def test_replies_waiting_for_a_row_take_it_when_the_full_batch_ends_at_once(tiny_base, long_system_prompt):
    """Two rows, four identical replies arrived together: the first two fill the rows and end in the same step;
    the other two must take the rows then, not sleep until some other visitor's message wakes the loop."""
    settings = ChatSettings(max_new_tokens=6, temperature=0.0, repetition_penalty=1.0, dtype="float32",
                            max_rows=2)
    turns = GatedTurns()
    server = Server(tiny_base, settings, long_system_prompt, turns)
    messages = conversation(long_system_prompt, USER_MESSAGES[0])
    done: list = []
    sampler = threading.Thread(target=lambda: done.append(
        server.sample([(server.current, messages, 7)] * 4, max_new_tokens=6, timeout=30)))
    try:
        sampler.start()
        deadline = time.monotonic() + 10
        while server.decoder._arrivals.qsize() < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        turns.opened.set()  # all four arrived: the loop admits two, and two wait
        sampler.join(40)
        assert done and len(done[0]) == 4, "the waiting replies never got a row"
        assert len({c.token_ids for c in done[0]}) == 1 and server.decoder.largest_batch == 2
    finally:
        turns.opened.set()
        server.decoder.close()


def test_the_decode_loop_holds_at_most_max_rows_and_the_rest_wait_their_turn(tiny_base, long_system_prompt):
    """Every row counts, whoever sent it: 5 replies on 2 rows run 2 at a time, in arrival order, each the
    reply it would be alone; a waiting reply stopped before its turn ends without taking a row."""
    settings = ChatSettings(max_new_tokens=12, temperature=0.0, repetition_penalty=1.0, dtype="float32",
                            max_rows=2)
    server = Server(tiny_base, settings, long_system_prompt)
    prompts = [conversation(long_system_prompt, text) for text in USER_MESSAGES + ["A fifth paper, on sorting."]]
    expected = [alone(server, messages) for messages in prompts]
    with slow_steps(tiny_base.model, 0.005):
        streams = [server.stream(messages) for messages in prompts]
        withdrawn = server.stream(prompts[0], stop=threading.Event())
        withdrawn.stop.set()
        replies = [finish(stream) for stream in streams]
        assert finish(withdrawn).new_tokens == 0 and withdrawn.completion.stopped
    assert server.decoder.largest_batch == 2
    for reply, single in zip(replies, expected):
        assert reply.token_ids == single.token_ids
    assert server.generating == 0


def test_a_growing_layer_holds_what_a_dynamic_layer_holds_and_copies_only_when_its_room_runs_out():
    """Every step of decoding appends a column; rows leave and join. The GrowingLayer must hold exactly a
    DynamicLayer's keys and values through all of it, and append in place between copies."""
    from transformers.cache_utils import DynamicLayer

    from trainer.serve.kv import SPARE_COLUMNS, GrowingLayer

    torch.manual_seed(0)
    prompt_keys, prompt_values = torch.randn(3, 2, 5, 4), torch.randn(3, 2, 5, 4)
    plain = DynamicLayer()
    plain.update(prompt_keys, prompt_values)
    growing = GrowingLayer(prompt_keys.clone(), prompt_values.clone())
    moved = 0
    for step in range(2 * SPARE_COLUMNS + 3):
        if step == 10:  # a reply leaves (BatchCache.keep)
            for layer in (plain, growing):
                layer.batch_select_indices(torch.tensor([0, 2]))
        if step == 20:  # a reply joins, padded on the left (BatchCache.extend assigns new tensors)
            for layer in (plain, growing):
                layer.keys = torch.cat([layer.keys, torch.zeros(1, *layer.keys.shape[1:])])
                layer.values = torch.cat([layer.values, torch.ones(1, *layer.values.shape[1:])])
        new_keys, new_values = torch.randn(plain.keys.shape[0], 2, 1, 4), torch.randn(plain.keys.shape[0], 2, 1, 4)
        before = growing.keys.data_ptr() if step else None
        expected = plain.update(new_keys, new_values)
        got = growing.update(new_keys, new_values)
        moved += before != got[0].data_ptr()
        assert torch.equal(got[0], expected[0]) and torch.equal(got[1], expected[1])
        assert torch.equal(growing.keys, plain.keys) and growing.get_seq_length() == plain.get_seq_length()
    # A copy after each of the two assignments, and one each time SPARE_COLUMNS columns of room are used up:
    # never one per step.
    assert 2 <= moved <= 6, moved
