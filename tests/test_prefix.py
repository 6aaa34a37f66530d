"""The shared prompt prefix: encoded once, the same log-probs, gradients and replies as encoding it every time."""

import torch
from peft import LoraConfig, get_peft_model
from trl.trainer.utils import add_fused_lm_head

from trainer.model.base import twin
from trainer.train.prefix import fixed_model, share_prompt_prefix, shared_prefix_length


def test_shared_prefix_stops_at_the_first_difference_padding_or_label():
    ids = torch.tensor([[1, 2, 3, 4, 5, 6], [1, 2, 3, 9, 5, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 0]])
    unlabelled = torch.full_like(ids, -100)
    assert shared_prefix_length(ids, mask, unlabelled) == 2  # tokens 0-2 agree; token 2 is left to the rest
    labels = unlabelled.clone()
    labels[0, 2] = 3
    assert shared_prefix_length(ids, mask, labels) == 1  # token 2 is scored from position 1: position 1 goes too
    same = torch.tensor([[1, 2, 3], [1, 2, 3]])
    assert shared_prefix_length(same, None, torch.full_like(same, -100)) == 2  # the rest keeps one token


def _batch(tokenizer, system):
    """Two rows that share the rendered system prompt, then differ: prompt positions unlabelled."""
    rows = []
    for user, reply in (("Title: A. Abstract: B.", "Reject."), ("Title: Sparse tables.", "Major revision, sadly.")):
        prompt = list(tokenizer.apply_chat_template([{"role": "system", "content": system},
                                                     {"role": "user", "content": user}],
                                                    add_generation_prompt=True, return_dict=True)["input_ids"])
        completion = tokenizer(reply, add_special_tokens=False)["input_ids"]
        rows.append((prompt + completion, [-100] * len(prompt) + completion))
    width = max(len(ids) for ids, _ in rows)
    pad = tokenizer.pad_token_id
    input_ids = torch.tensor([ids + [pad] * (width - len(ids)) for ids, _ in rows])
    attention = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in rows])
    labels = torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in rows])
    return input_ids, attention, labels


def _fused_lora(tiny_base):
    model = twin(tiny_base.model)
    add_fused_lm_head(model, outputs=("log_probs", "entropy", "mean_logits"))
    torch.manual_seed(1)
    peft = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False))
    widths = []
    model.get_input_embeddings().register_forward_pre_hook(lambda module, args: widths.append(args[0].shape))
    return model, peft, widths


def _run(peft, batch):
    input_ids, attention, labels = batch
    peft.zero_grad()
    out = peft(input_ids=input_ids, attention_mask=attention, labels=labels, fused_lm_head=True)
    out.log_probs.sum().backward()
    grads = {n: p.grad.clone() for n, p in peft.named_parameters() if p.grad is not None}
    return out, grads


def test_training_forward_encodes_the_prefix_once_with_the_same_logps_and_gradients(tiny_base, long_system_prompt):
    batch = _batch(tiny_base.tokenizer, long_system_prompt)
    model, peft, widths = _fused_lora(tiny_base)
    full, full_grads = _run(peft, batch)
    share_prompt_prefix(model)
    widths.clear()
    shared, shared_grads = _run(peft, batch)

    length = shared_prefix_length(*batch[:1], batch[1], batch[2])
    assert length >= 16 and widths == [torch.Size([1, length]), torch.Size([2, batch[0].shape[1] - length])]
    assert shared.log_probs.shape == full.log_probs.shape
    torch.testing.assert_close(shared.log_probs, full.log_probs, atol=1e-5, rtol=1e-5)
    scored = batch[2][:, 1:] != -100
    torch.testing.assert_close(shared.entropy[scored], full.entropy[scored], atol=1e-5, rtol=1e-5)
    assert shared_grads.keys() == full_grads.keys() and full_grads
    for name in full_grads:  # the adapter learns from the prompt's positions too, through the shared keys/values
        torch.testing.assert_close(shared_grads[name], full_grads[name], atol=1e-5, rtol=1e-4)


def test_under_gradient_checkpointing_the_prefix_is_still_shared_with_the_same_logps_and_gradients(
        tiny_base, long_system_prompt):
    batch = _batch(tiny_base.tokenizer, long_system_prompt)
    model, peft, widths = _fused_lora(tiny_base)
    peft.train()
    full, full_grads = _run(peft, batch)  # lora_dropout is 0: train mode is deterministic
    share_prompt_prefix(model)
    model.gradient_checkpointing_enable()  # non-reentrant, transformers' default
    widths.clear()
    shared, shared_grads = _run(peft, batch)

    length = shared_prefix_length(*batch[:1], batch[1], batch[2])
    # Forward: prefix, then the rest; backward recomputes each layer without calling the embeddings again.
    assert widths == [torch.Size([1, length]), torch.Size([2, batch[0].shape[1] - length])]
    torch.testing.assert_close(shared.log_probs, full.log_probs, atol=1e-5, rtol=1e-5)
    assert shared_grads.keys() == full_grads.keys() and full_grads
    for name in full_grads:
        torch.testing.assert_close(shared_grads[name], full_grads[name], atol=1e-5, rtol=1e-4)
    assert all(not hasattr(layer, "_can_checkpoint_with_cache") or not layer._can_checkpoint_with_cache
               for layer in model.modules())  # transformers' own caches stay dropped under checkpointing


def test_reentrant_checkpointing_keeps_the_plain_forward(tiny_base, long_system_prompt):
    batch = _batch(tiny_base.tokenizer, long_system_prompt)
    model, peft, widths = _fused_lora(tiny_base)
    share_prompt_prefix(model)
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": True})
    peft.train()
    _run(peft, batch)
    assert widths == [batch[0].shape]  # one call, the whole width: reentrant checkpointing loses the prefix's grads


def test_a_fixed_model_reuses_the_last_prefix_without_gradients(tiny_base, long_system_prompt):
    batch = _batch(tiny_base.tokenizer, long_system_prompt)
    model, peft, widths = _fused_lora(tiny_base)
    input_ids, attention, labels = batch
    with torch.no_grad():
        full = peft(input_ids=input_ids, attention_mask=attention, labels=labels, fused_lm_head=True).log_probs
        share_prompt_prefix(model)
        widths.clear()
        with fixed_model(model):
            first, second = (peft(input_ids=input_ids, attention_mask=attention, labels=labels,
                                  fused_lm_head=True).log_probs for _ in range(2))
    length = shared_prefix_length(input_ids, attention, labels)
    suffix = torch.Size([2, input_ids.shape[1] - length])
    assert widths == [torch.Size([1, length]), suffix, suffix]  # the second call found the prefix kept
    torch.testing.assert_close(first, full, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(second, full, atol=1e-5, rtol=1e-5)
    assert not hasattr(model, "_last_prefix")  # nothing kept once the promise ends
