"""Who a visitor is, for counting votes: not a browser session, which a script opens without limit.

    a signed-in Hugging Face user (OAuth on a Space)  -> "user:<hash of the name>"
    anyone else                                       -> "anon:<hash of session and address>"
    the client's address                              -> "addr:<hash>" (X-Forwarded-For's first entry on a
                                                         Space, whose proxy sets it; else the socket's peer)

Only keyed hashes are kept (HMAC-SHA256 under the store's own random key, `VoteStore.identity_key`): an
address is never stored or pushed to the Hub, and its hash cannot be looked up in a table of all IPv4
addresses without the key, which stays on this disk. A restored store makes a new key, so the hashes of
visitors from before a restart differ from theirs after it; caps count per round and per hour, so that
is the most a restart forgives.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

HASH_CHARS = 16  # 64 bits of the HMAC: collisions among a Space's visitors are out of reach


@dataclass(frozen=True)
class Identity:
    """A visitor, as votes are counted and capped (LoopSettings' voter and address caps)."""

    voter: str    # user:... or anon:...
    address: str  # addr:..., or "" when unknown


def _keyed(key: str, text: str) -> str:
    return hmac.new(key.encode(), text.encode(), hashlib.sha256).hexdigest()[:HASH_CHARS]


def client_address(forwarded_for: str | None, peer: str | None) -> str:
    """The client's address: the first entry of X-Forwarded-For (a Space's proxy sets it), else the peer's."""
    first = (forwarded_for or "").split(",")[0].strip()
    return first or (peer or "").strip()


def identify(key: str, session: str, username: str | None = None, forwarded_for: str | None = None,
             peer: str | None = None) -> Identity:
    """The visitor of one request: `session` (Gradio's session hash), `username` (signed in, or None), the
    X-Forwarded-For header and the socket peer's host; `key` is the store's identity key."""
    address = client_address(forwarded_for, peer)
    hashed_address = f"addr:{_keyed(key, address)}" if address else ""
    if username:
        return Identity(voter=f"user:{_keyed(key, 'user ' + username)}", address=hashed_address)
    return Identity(voter=f"anon:{_keyed(key, f'session {session} address {address}')}", address=hashed_address)
