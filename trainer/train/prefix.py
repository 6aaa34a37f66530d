"""The shared prompt prefix in training: a batch's rows encode the persona's system prompt once.

Every training row starts with the same rendered system prompt (about 100 tokens, near half of a
row). A causal LM's keys and values for a prefix depend only on the prefix, so a batch can compute
them once and continue every row from them, exactly: with gradients (LoRA changes the prefix's
keys and values too), in TRL's fused-LM-head forward, which the KTO loss, its KL term and the
reference pass use. It works under gradient checkpointing too: the caches it passes never change
once written, so a layer recomputed in backward reads exactly what its forward read. (Serving
does the same per served version: serve/prompt_cache.py.)
"""

from __future__ import annotations

import functools
import types
from contextlib import contextmanager
from typing import Iterator

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer
from transformers.modeling_layers import GradientCheckpointingLayer

from ..model.caches import cache_of, expanded

# Below this many shared tokens the extra backbone call costs more than it saves.
MIN_SHARED_TOKENS = 16


def shared_prefix_length(input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
                         labels: torch.Tensor) -> int:
    """Tokens every row starts with that may be encoded once: real tokens, none of them (nor the next) scored.

    The next token is excluded because its log-prob comes from the prefix's last position, which
    the continuation does not output.
    """
    rows, width = input_ids.shape
    same = (input_ids == input_ids[:1]).all(0)
    if attention_mask is not None:
        same &= attention_mask.bool().all(0)
    same &= (labels == -100).all(0)
    # The continuation needs at least one token, and the token right after the prefix must be unscored.
    usable = torch.cumprod(same.long(), 0)
    length = int(usable.sum())
    return max(0, min(length - 1, width - 1))


class _WriteOnceLayer(DynamicLayer):
    """Keeps the first keys and values a layer hands it and returns them as they came.

    For the prefix pass under gradient checkpointing: the recompute in backward updates again, and
    must neither store a second copy nor keep the recompute's graph alive.
    """

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
            self.keys, self.values = key_states, value_states
        return key_states, value_states


def _encode_prefix(model: torch.nn.Module, prefix_ids: torch.Tensor) -> DynamicCache:
    """The prefix's keys and values; inside `fixed_model`, the last prefix's are reused when it comes again."""
    def encode() -> DynamicCache:
        recorder = cache_of([_WriteOnceLayer() for _ in range(model.config.num_hidden_layers)])
        # use_cache=False: the layers still fill the cache passed in, and checkpointing has nothing to warn about
        model.base_model(input_ids=prefix_ids[None], past_key_values=recorder, use_cache=False)
        return recorder

    memo = getattr(model, "_last_prefix", None)
    if memo is None or torch.is_grad_enabled():
        return encode()
    if memo[0] is None or not torch.equal(memo[0], prefix_ids):
        model._last_prefix = (prefix_ids, encode())
    return model._last_prefix[1]


@contextmanager
def fixed_model(model: torch.nn.Module) -> Iterator[None]:
    """Promise that `model` (as patched by share_prompt_prefix) computes the same function throughout.

    Then its no-grad calls reuse the last prefix's keys and values: consecutive batches nearly always
    share the system prompt. For the reference pass, whose weights never change.
    """
    model._last_prefix = (None, None)
    try:
        yield
    finally:
        del model._last_prefix


def share_prompt_prefix(model: torch.nn.Module, min_tokens: int = MIN_SHARED_TOKENS) -> None:
    """Make `model(..., labels=..., fused_lm_head=True)` (TRL's fused head) encode the rows' shared prefix once.

    Patch the model TRL patched (the unwrapped causal LM). The outputs have the same shapes and
    values as before (zeros at the prefix's positions, which carry no labels); gradients flow through
    the prefix's keys and values into the adapter. Left alone: calls without labels or with a
    cache, and models checkpointed with reentrant checkpointing (it loses the prefix's gradients).
    """
    fused = model.forward

    @functools.wraps(type(model).forward)
    def forward(self, *args, fused_lm_head=False, labels=None, **kwargs):
        input_ids = kwargs.get("input_ids")
        if (not fused_lm_head or args or labels is None or input_ids is None or input_ids.shape[0] < 2
                or kwargs.get("past_key_values") is not None or kwargs.get("inputs_embeds") is not None
                or not checkpointing_keeps_caches(self)):
            return fused(*args, fused_lm_head=fused_lm_head, labels=labels, **kwargs)
        attention_mask = kwargs.get("attention_mask")
        length = shared_prefix_length(input_ids, attention_mask, labels)
        if length < min_tokens:
            return fused(fused_lm_head=True, labels=labels, **kwargs)
        rows = input_ids.shape[0]
        with layers_keep_caches(self):
            prefix = _encode_prefix(self, input_ids[0, :length])
            rest = {**kwargs, "input_ids": input_ids[:, length:], "past_key_values": expanded(prefix, rows)}
            if attention_mask is None:
                rest["attention_mask"] = torch.ones_like(input_ids)
            outputs = fused(fused_lm_head=True, labels=labels[:, length:], **rest)
        # Back to the full width: the rows' positions 0..length-1 predict prefix tokens, never scored.
        for name, value in list(outputs.items()):
            if isinstance(value, torch.Tensor) and value.dim() == 2 and value.shape[0] == rows:
                outputs[name] = torch.cat([value.new_zeros(rows, length), value], dim=1)
        return outputs

    model.forward = types.MethodType(forward, model)


# -- transformers' checkpointed layers (registered in patches.RELIED_ON) ----------------------------


def checkpointing_keeps_caches(model: torch.nn.Module) -> bool:
    """Whether the model's checkpointed layers may be handed our caches: only non-reentrant checkpointing
    carries gradients to tensors a layer reads from outside its inputs (a shared prefix's keys and values)."""
    for layer in model.modules():
        if isinstance(layer, GradientCheckpointingLayer) and layer.gradient_checkpointing:
            func = getattr(layer, "_gradient_checkpointing_func", None)
            if getattr(func, "keywords", {}).get("use_reentrant", True) is not False:
                return False
    return True


@contextmanager
def layers_keep_caches(model: torch.nn.Module) -> Iterator[None]:
    """Let checkpointed layers keep a passed-in cache (transformers drops it: a normal cache is written twice
    when a layer is recomputed). Only for caches that are write-once or read-only (prefix.py)."""
    layers = [m for m in model.modules() if isinstance(m, GradientCheckpointingLayer)]
    for layer in layers:
        layer._can_checkpoint_with_cache = True
    try:
        yield
    finally:
        for layer in layers:
            del layer._can_checkpoint_with_cache
