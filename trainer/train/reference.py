"""Reference log-probs under the fixed base, kept across rounds.

The reference is the base with the adapter off, the same in every round, so a vote's reference
log-prob never changes: a round computes it only for rows (and KL pairs) it has not seen.
(train/trainers.py ReferenceCachingKTOTrainer reads and fills this cache.)
"""

from __future__ import annotations

import hashlib


class ReferenceCache:
    """Reference log-probs of (prompt, completion) token sequences, by a hash of their token ids."""

    def __init__(self) -> None:
        self._logps: dict[bytes, float] = {}

    @staticmethod
    def key(prompt_ids: list[int], completion_ids: list[int]) -> bytes:
        return hashlib.sha256(repr((prompt_ids, completion_ids)).encode()).digest()

    def get(self, key: bytes) -> float | None:
        return self._logps.get(key)

    def put(self, key: bytes, logp: float) -> None:
        self._logps[key] = logp

    def __len__(self) -> int:
        return len(self._logps)
