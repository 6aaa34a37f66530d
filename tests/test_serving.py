"""Serving on a tiny random Llama: streaming, stop, and a hot swap that never disturbs a reply in flight."""

import gc
import threading

import pytest
import torch

from trainer.config import ChatSettings
from trainer.serve.prompt_cache import PromptCache
from trainer.serve.server import Server

MESSAGES = [{"role": "system", "content": "You are Reviewer #2."}, {"role": "user", "content": "Review this."}]


@pytest.fixture
def server(tiny_base, settings):
    settings.chat.max_new_tokens = 24
    return Server(tiny_base, settings.chat)


def test_stream_grows_and_reports_its_version(server):
    done = []
    stream = server.stream(MESSAGES, on_done=done.append)
    texts = list(stream)
    assert texts and all(b.startswith(a) for a, b in zip(texts, texts[1:]))
    assert done == [stream.completion] and stream.completion.version == "base"
    assert stream.completion.new_tokens > 0 and not stream.completion.stopped
    assert server.generating == 0 and server.wait_idle(0)
    assert list(stream) == [stream.completion.text], "iterated again, an ended reply gives its whole text"


def test_stop_ends_generation_early(server):
    stop = threading.Event()
    stop.set()
    stream = server.stream(MESSAGES, stop=stop)
    list(stream)
    assert stream.completion.stopped and stream.completion.new_tokens == 0, "stopped before it starts: no step"


def test_swap_mid_reply_keeps_the_reply_on_its_version(server, trained_version):
    reference = server.stream(MESSAGES)
    list(reference)  # what the base alone writes (greedy, so deterministic)

    new_version = server.load(trained_version.name, trained_version.path)
    in_flight = server.stream(MESSAGES)
    parts = iter(in_flight)
    next(parts)
    assert server.generating == 1 and not server.wait_idle(0)
    pause = server.swap(new_version)
    assert pause < 0.005, "a swap is a pointer move"
    list(parts)
    assert in_flight.completion.version == "base"
    assert in_flight.completion.text == reference.completion.text, "the reply in flight finished on the base"

    after = server.stream(MESSAGES)
    list(after)
    assert after.completion.version == trained_version.name and server.current.name == trained_version.name
    assert not server.current.model.training


def test_unmerged_versions_share_the_base_weights(server, trained_version, tiny_base):
    server.chat.merge_adapter = False
    version = server.load(trained_version.name, trained_version.path)
    base_storage = {p.data_ptr() for p in tiny_base.model.parameters()}
    frozen = {p.data_ptr() for n, p in version.model.named_parameters() if "lora_" not in n}
    assert frozen == base_storage, "a version must reuse the base tensors, not copy them"


def test_merged_version_copies_only_adapted_weights_and_matches_unmerged(server, trained_version, tiny_base):
    before = {n: p.clone() for n, p in tiny_base.model.named_parameters()}
    merged = server.load(trained_version.name, trained_version.path).model
    assert not any("lora_" in n for n, _ in merged.named_parameters()), "LoRA is folded in"
    base_params = dict(tiny_base.model.named_parameters())
    copied = {n for n, p in merged.named_parameters() if p.data_ptr() != base_params[n].data_ptr()}
    assert copied and all(n.endswith("proj.weight") for n in copied), "only adapted linear weights are copied"
    assert "model.embed_tokens.weight" not in copied
    for name, value in tiny_base.model.named_parameters():
        assert torch.equal(value, before[name]), f"merging wrote into the shared base weight {name}"

    server.chat.merge_adapter = False
    unmerged = server.load(trained_version.name, trained_version.path).model
    ids = torch.tensor([[1, 5, 9, 14, 3, 7]])
    with torch.inference_mode():
        assert not torch.allclose(merged(ids).logits, tiny_base.model(ids).logits, atol=1e-3)
        torch.testing.assert_close(merged(ids).logits, unmerged(ids).logits, atol=1e-4, rtol=1e-4)


def test_versions_of_a_4bit_base_stay_unmerged(server, trained_version, tiny_base):
    tiny_base.model.hf_quantizer = object()  # stands for bitsandbytes' quantizer: merging would requantize
    try:
        version = server.load(trained_version.name, trained_version.path)
    finally:
        tiny_base.model.hf_quantizer = None
    assert any("lora_" in n for n, _ in version.model.named_parameters())


def _reply(server, messages):
    stream = server.stream(messages)
    list(stream)
    return stream.completion


def test_a_loaded_version_caches_the_prefix_under_its_own_weights(tiny_base, settings, trained_version,
                                                                  long_system_prompt):
    system = long_system_prompt
    settings.chat.max_new_tokens = 16
    cached = Server(tiny_base, settings.chat, system)
    plain = Server(tiny_base, ChatSettings(max_new_tokens=16, temperature=0.0, cache_system_prompt=False,
                                           dtype="float32"), system)
    for server in (cached, plain):
        server.swap(server.load(trained_version.name, trained_version.path))
    messages = [{"role": "system", "content": system}, {"role": "user", "content": "Review my paper on tables."}]
    base_keys = Server(tiny_base, settings.chat, system).current.prompt_cache._cache.layers[0].keys
    assert not torch.equal(cached.current.prompt_cache._cache.layers[0].keys, base_keys)
    reply = _reply(cached, messages)
    assert reply.version == trained_version.name and reply.text == _reply(plain, messages).text


def test_serving_starts_replies_from_the_cached_system_prompt(tiny_base, settings, long_system_prompt):
    system = long_system_prompt
    settings.chat.max_new_tokens = 16
    cached = Server(tiny_base, settings.chat, system)
    plain = Server(tiny_base, ChatSettings(max_new_tokens=16, temperature=0.0, cache_system_prompt=False,
                                           dtype="float32"), system)
    assert plain.current.prompt_cache is None and isinstance(cached.current.prompt_cache, PromptCache)
    messages = [{"role": "system", "content": system}, {"role": "user", "content": "Review my paper on tables."}]
    prompt = tiny_base.tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                                     return_dict=True)["input_ids"]
    assert cached.current.prompt_cache.starts(prompt[0])
    widths = []
    tiny_base.model.get_input_embeddings().register_forward_pre_hook(lambda m, args: widths.append(args[0].shape[1]))
    reply = _reply(cached, messages)
    assert widths[0] == prompt.shape[1] - cached.current.prompt_cache.prefix_ids.shape[0]  # prefill skips the prefix
    assert reply.text == _reply(plain, messages).text and reply.new_tokens == 16

    # A conversation that does not start with the system prompt is served whole, as before.
    other = [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Review my paper on tables."}]
    other_ids = tiny_base.tokenizer.apply_chat_template(other, add_generation_prompt=True, return_tensors="pt",
                                                        return_dict=True)["input_ids"]
    assert not cached.current.prompt_cache.starts(other_ids[0])
    widths.clear()
    assert _reply(cached, other).text == _reply(plain, other).text
    assert widths[0] == other_ids.shape[1]


def test_bf16_serving_copies_leave_the_shared_base_as_it_was(tiny_base, settings, trained_version):
    before = {n: p.clone() for n, p in tiny_base.model.named_parameters()}
    settings.chat.dtype = "bfloat16"
    server = Server(tiny_base, settings.chat)
    assert server.serving_dtype == torch.bfloat16
    merged = server.load(trained_version.name, trained_version.path).model
    assert {p.dtype for p in merged.parameters()} == {torch.bfloat16}
    assert merged.get_input_embeddings().weight is merged.get_output_embeddings().weight, "ties stay tied"
    for name, value in tiny_base.model.named_parameters():
        assert value.dtype == torch.float32 and torch.equal(value, before[name]), f"the base's {name} changed"

    settings.chat.dtype = "float32"
    exact = Server(tiny_base, settings.chat).load(trained_version.name, trained_version.path).model
    ids = torch.tensor([[1, 5, 9, 14, 3, 7]])
    with torch.inference_mode():
        torch.testing.assert_close(merged(ids).logits.float(), exact(ids).logits, atol=0.05, rtol=0.05)
    assert server.current.name == "base" and next(server.current.model.parameters()).dtype == torch.bfloat16
    reply = _reply(server, MESSAGES)
    assert reply.version == "base" and reply.new_tokens > 0


def test_bf16_serving_copies_share_the_weights_no_adapter_changes(tiny_base, settings, trained_version):
    settings.chat.dtype = "bfloat16"
    server = Server(tiny_base, settings.chat)
    first = server.load(trained_version.name, trained_version.path).model
    second = server.load(trained_version.name, trained_version.path).model  # the gate's candidate beside it
    bare = server.current.model
    first_params, second_params = dict(first.named_parameters()), dict(second.named_parameters())
    adapted = {n for n in first_params if n.endswith("proj.weight")}
    assert adapted, "the tiny model's linear layers carry the adapter"
    for name, param in first_params.items():
        same = param.data_ptr() == second_params[name].data_ptr()
        assert same == (name not in adapted), f"{name}: {'shared' if same else 'copied'}"
    assert first.get_input_embeddings().weight is bare.get_input_embeddings().weight, "the bare base's copy too"
    ids = torch.tensor([[1, 5, 9, 14, 3, 7]])
    with torch.inference_mode():
        torch.testing.assert_close(first(ids).logits, second(ids).logits, atol=0, rtol=0)

    del first, second, bare, first_params, second_params, param
    server._served = None
    server.__dict__.pop("_base_version", None)
    gc.collect()
    assert len(server._half_copies) == 0, "a copy lives only while some served tree uses it"
