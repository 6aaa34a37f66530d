"""Keys and values of a batch of replies that join and leave at different steps (continuous batching).

A batch's cache holds one row per reply and one column per cached position, each row with its own
attention-mask row: zeros mark columns that row does not have (a shorter prompt, padding before a
row that joined later). Rows join by padding the shorter side's columns on the left and stacking;
rows leave by selecting the rest; columns no row uses are dropped. Position ids count a row's own
unmasked columns, so each reply sees exactly what it would see decoding alone.

The keys and values live in transformers' DynamicCache layers (`layer.keys`, `layer.values`, shape
[batch, heads, positions, head_dim]); trainer/patches.py records the transformers code this relies on.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

from ..contracts import TrainerError


class UnsupportedCache(TrainerError, ValueError):
    """The model's cache is not one batched serving can merge rows of (sliding windows, linear attention)."""


def check_mergeable(cache: DynamicCache) -> None:
    kinds = {type(layer).__name__ for layer in cache.layers}
    if kinds != {DynamicLayer.__name__}:
        raise UnsupportedCache(f"batched serving needs full-attention cache layers (DynamicLayer); this model's "
                               f"cache has {sorted(kinds)}")


@dataclass
class BatchCache:
    """A cache of `rows` replies over `columns` positions, and which columns each row has."""

    cache: DynamicCache
    mask: torch.Tensor  # [rows, columns] long, 1 where the row has that position

    @property
    def rows(self) -> int:
        return self.mask.shape[0]

    def next_positions(self) -> torch.Tensor:
        """Each row's position id for its next token: how many positions it has."""
        return self.mask.sum(dim=1)

    def grow(self) -> torch.Tensor:
        """The mask with one more column every row has: the one the next forward pass writes."""
        self.mask = torch.cat([self.mask, self.mask.new_ones((self.rows, 1))], dim=1)
        return self.mask

    def keep(self, rows: torch.Tensor) -> None:
        """Keep only `rows` (indices), then drop the columns none of them has."""
        self.cache.batch_select_indices(rows)
        self.mask = self.mask[rows]
        used = self.mask.bool().any(dim=0)
        if not bool(used.all()):
            columns = used.nonzero().squeeze(1)
            for layer in self.cache.layers:
                layer.keys = layer.keys.index_select(-2, columns)
                layer.values = layer.values.index_select(-2, columns)
            self.mask = self.mask[:, columns]

    def extend(self, other: "BatchCache") -> None:
        """Append `other`'s rows after this cache's; the side with fewer columns is padded on the left."""
        width = max(self.mask.shape[1], other.mask.shape[1])
        for mine, theirs in zip(self.cache.layers, other.cache.layers):
            mine.keys = torch.cat([_pad_left(mine.keys, width), _pad_left(theirs.keys, width)])
            mine.values = torch.cat([_pad_left(mine.values, width), _pad_left(theirs.values, width)])
        self.mask = torch.cat([_pad_left(self.mask, width, dim=1), _pad_left(other.mask, width, dim=1)])


def _pad_left(tensor: torch.Tensor, width: int, dim: int = -2) -> torch.Tensor:
    missing = width - tensor.shape[dim]
    if missing == 0:
        return tensor
    shape = list(tensor.shape)
    shape[dim] = missing
    return torch.cat([tensor.new_zeros(shape), tensor], dim=dim)
