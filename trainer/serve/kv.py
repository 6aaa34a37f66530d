"""Keys and values of a batch of replies that join and leave at different steps (continuous batching).

A batch's cache holds one row per reply and one column per cached position, each row with its own
attention-mask row: zeros mark columns that row does not have (a shorter prompt, padding before a
row that joined later). Rows join by padding the shorter side's columns on the left and stacking;
rows leave by selecting the rest; columns no row uses are dropped. Position ids count a row's own
unmasked columns, so each reply sees exactly what it would see decoding alone.

The keys and values live in transformers' DynamicCache layers (`layer.keys`, `layer.values`, shape
[batch, heads, positions, head_dim]); trainer/patches.py records the transformers code this relies on.
A batch's layers are `GrowingLayer`s: a DynamicLayer grows by concatenation, copying the whole cache
at every decoding step (37 ms of a ~170 ms step for 32 replies of 600 positions here, and a new
allocation of every size on the way, which glibc keeps as fragments); a GrowingLayer writes each
step's column into room kept ahead, and copies once every SPARE_COLUMNS steps.
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


# Columns of room a GrowingLayer keeps ahead of its positions (SmolLM2-135M in bf16: 12 MiB for 8 rows, 47 for 32).
SPARE_COLUMNS = 64


class GrowingLayer(DynamicLayer):
    """A DynamicLayer whose `keys` / `values` are views of buffers with room for SPARE_COLUMNS more positions.

    `update` writes new positions into that room; when it is used up, or when anything else has
    assigned `keys` / `values` (BatchCache.keep and extend, DynamicLayer.batch_select_indices), the
    next update copies them into fresh buffers with room again. Values are exactly a DynamicLayer's.
    """

    def __init__(self, keys: torch.Tensor, values: torch.Tensor):
        super().__init__()
        self.lazy_initialization(keys, values)
        self.keys, self.values = keys, values
        self._views: tuple[torch.Tensor, torch.Tensor] | None = None  # what the last update returned

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        length, new = self.keys.shape[-2], key_states.shape[-2]
        buffers = self._views is not None and self._views[0] is self.keys and self._views[1] is self.values
        if not buffers or self._keys_buffer.shape[-2] < length + new:
            room = length + new + SPARE_COLUMNS
            self._keys_buffer = _with_room(self.keys, key_states, room)
            self._values_buffer = _with_room(self.values, value_states, room)
        self._keys_buffer[..., length:length + new, :] = key_states
        self._values_buffer[..., length:length + new, :] = value_states
        self.keys = self._keys_buffer[..., :length + new, :]
        self.values = self._values_buffer[..., :length + new, :]
        self._views = (self.keys, self.values)
        return self.keys, self.values


def _with_room(held: torch.Tensor, new: torch.Tensor, columns: int) -> torch.Tensor:
    """A [batch, heads, columns, head_dim] buffer starting with `held`'s positions."""
    buffer = new.new_empty((*new.shape[:-2], columns, new.shape[-1]))
    buffer[..., :held.shape[-2], :] = held
    return buffer


@dataclass
class BatchCache:
    """A cache of `rows` replies over `columns` positions, and which columns each row has.

    Its layers become GrowingLayers (with the same tensors), whatever cache it is given."""

    cache: DynamicCache
    mask: torch.Tensor  # [rows, columns] long, 1 where the row has that position

    def __post_init__(self) -> None:
        self.cache.layers = [layer if isinstance(layer, GrowingLayer) else GrowingLayer(layer.keys, layer.values)
                             for layer in self.cache.layers]

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
