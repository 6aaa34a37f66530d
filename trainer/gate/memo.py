"""What an adapter scored before, so the gate never scores the same adapter on the same row twice.

The version serving now was scored as the candidate of the round that made it, so the next gate
runs it again only on gate rows that arrived since. An adapter is known by a hash of its files,
so a candidate is found again once published under its version name.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from .evaluate import RowScore


@dataclass
class ScoreMemo:
    """One adapter's scores per gate row (see evaluate.row_key). Probe replies are sampled afresh each gate."""

    rows: dict[bytes, RowScore] = field(default_factory=dict)


def adapter_digest(path: Path) -> str:
    """An adapter's identity: the hash of its weights and config (a version's folder may be renamed)."""
    digest = hashlib.sha256()
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        digest.update((path / name).read_bytes())
    return digest.hexdigest()
