"""The gate's held-out data, which no round ever trains on, in its named parts: the rows it scores ("gate
rows": the seed eval rows, the gate votes and the gate picks) and the messages of its probe replies.

Gate rows are the first `GATE_SEED_ROWS` rows of the seed file's eval split (papers no training
row has seen) plus every gate vote: the votes on a `GATE_HOLDOUT_SHARE` of replies, chosen by a
stable hash of the reply id, which the store marks as kept for the gate instead of training.
The probe messages both versions answer are drawn from the same eval split, afresh each round.
"""

from __future__ import annotations

import hashlib
from typing import Sequence

from ..config import GateSettings
from ..contracts import Vote
from ..data import conversational
from ..store.files import read_preferences


def is_gate_vote(reply_id: str, share: float) -> bool:
    """Whether a reply's votes are kept for the gate, decided by a stable hash of its id."""
    return int(hashlib.sha256(reply_id.encode()).hexdigest()[:8], 16) % 1000 < share * 1000


def split_gate_votes(votes: Sequence[Vote], share: float) -> tuple[list[Vote], list[Vote]]:
    """(votes to train on, votes kept for the gate)."""
    gate = [v for v in votes if is_gate_vote(v.reply_id, share)]
    return [v for v in votes if not is_gate_vote(v.reply_id, share)], gate


def seed_eval_rows(settings: GateSettings, system_prompt: str) -> list[dict]:
    """The seed eval split's rows among the gate rows, in the persona's conversational form."""
    if settings.seed_rows <= 0 or settings.seed_file is None or not settings.seed_file.exists():
        return []
    return [conversational(r, system_prompt)
            for r in read_preferences(settings.seed_file, split="eval")[:settings.seed_rows]]


def seed_eval_replies(settings: GateSettings) -> list[tuple[str, bool]]:
    """(reply, liked) of the whole seed eval split (not only the GATE_SEED_ROWS scored): what the gate's reply
    classifier is fit on before any gate vote (reply_classifier.py)."""
    if settings.seed_file is None or not settings.seed_file.exists():
        return []
    return [(r["completion"], bool(r["label"])) for r in read_preferences(settings.seed_file, split="eval")
            if isinstance(r["completion"], str)]


def seed_probe_messages(settings: GateSettings) -> list[str]:
    """The distinct messages (papers) of the seed eval split: never trained on; each round's probes are a draw."""
    if settings.seed_file is None or not settings.seed_file.exists():
        return []
    return list(dict.fromkeys(r["prompt"] for r in read_preferences(settings.seed_file, split="eval")))
