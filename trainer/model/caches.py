"""Read-only views of a key/value cache: a prompt prefix encoded once, continued by many rows.

Training (train/prefix.py) and the gate's scoring (gate/evaluate.py) both continue rows from one
encoded prefix; neither may write it.
"""

from __future__ import annotations

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer


class _ReadOnlyLayer(DynamicLayer):
    """A fixed prefix's keys and values; each update returns prefix + new states and stores nothing."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor):
        super().__init__()
        self.lazy_initialization(keys, values)
        self.keys, self.values = keys, values

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        return torch.cat([self.keys, key_states], dim=-2), torch.cat([self.values, value_states], dim=-2)


def cache_of(layers: list[DynamicLayer]) -> DynamicCache:
    cache = DynamicCache()
    cache.layers = layers
    return cache


def expanded(cache: DynamicCache, batch: int) -> DynamicCache:
    """A read-only cache of `cache`'s keys and values (batch 1) broadcast to `batch` rows.

    Every forward that continues from it sees the prefix alone, so any number of calls (a
    checkpointed layer's recompute among them) read the same states, and `cache` is never written.
    """
    return cache_of([_ReadOnlyLayer(keys.expand(batch, -1, -1, -1), values.expand(batch, -1, -1, -1))
                      for keys, values, *_ in cache])

