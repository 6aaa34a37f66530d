"""The persona's system prompt encoded once per served version; every reply continues from a copy.

Every chat prompt starts with the same rendered system prompt. A causal LM's keys and values for a
prefix depend only on the prefix, so each served version keeps them and starts every reply from a
copy: time to first token pays only for the visitor's part of the prompt.
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

    def for_prompt(self, input_ids: torch.Tensor) -> DynamicCache | None:
        """A private copy of the cache if the prompt (batch 1) starts with the prefix and goes on; else None."""
        length = self.prefix_ids.shape[0]
        if input_ids.shape[0] != 1 or input_ids.shape[1] <= length or not torch.equal(input_ids[0, :length],
                                                                                      self.prefix_ids):
            return None
        return copy.deepcopy(self._cache)
