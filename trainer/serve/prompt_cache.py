"""The persona's system prompt encoded once per served version; every batch of new replies continues from it.

Every chat prompt starts with the same rendered system prompt. A causal LM's keys and values for a
prefix depend only on the prefix, so each served version keeps them, and the decode loop starts
the replies that join a batch from copies of them: time to first token pays only for the
visitors' part of the prompt.
"""

from __future__ import annotations

import copy

import torch
from transformers import DynamicCache

# Below this many tokens a cached prefix saves less than it costs to copy.
MIN_CACHED_TOKENS = 16


class PromptCache:
    """The keys and values of one fixed prompt prefix under one model; hands out copies to continue from."""

    def __init__(self, model: torch.nn.Module, prefix_ids: torch.Tensor):
        self.prefix_ids = prefix_ids
        with torch.inference_mode():
            self._cache = model(input_ids=prefix_ids[None], use_cache=True).past_key_values

    @property
    def length(self) -> int:
        return self.prefix_ids.shape[0]

    def starts(self, prompt_ids: torch.Tensor) -> bool:
        """Whether a prompt (one row of ids) starts with the prefix and goes on after it."""
        return prompt_ids.shape[0] > self.length and torch.equal(prompt_ids[:self.length], self.prefix_ids)

    def copies(self, rows: int) -> DynamicCache:
        """A private cache of the prefix, repeated for `rows` prompts."""
        cache = copy.deepcopy(self._cache)
        if rows > 1:
            cache.batch_repeat_interleave(rows)
        return cache
