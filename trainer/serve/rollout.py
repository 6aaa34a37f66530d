"""Putting a version into service: the `CURRENT` pointer and the serving reference moved together.

A version that serves merged is swapped in twice: first unmerged (no weights of its own), and
merged once the old version's replies have ended. Its merged copy is then built after the old one
is freed, not beside it, which would hold three copies of the adapted weights at once.
"""

from __future__ import annotations

import threading

from ..model.memory import release_free_memory
from ..store.versions import BASE, VersionStore
from .server import Server


class Rollout:
    def __init__(self, server: Server, versions: VersionStore, max_wait_seconds: float):
        self.server, self.versions, self.max_wait_seconds = server, versions, max_wait_seconds
        self._lock = threading.Lock()  # the pointer file and the serving reference always name the same version

    def serve(self, name: str, reason: str) -> float:
        """Point CURRENT at `name` (a version or "base") and swap it into serving; returns the longest swap's
        seconds. Raises VersionError for an unknown name, before anything moves."""
        path = self.versions.get(name).path
        two_steps = self.server.merges and name != BASE and path is not None
        served = self.server.load(name, path, merged=not two_steps)  # built before the pointer moves
        with self._lock:
            self.versions.set_current(name, reason=reason)
            pause = self.server.swap(served)
        if not two_steps:
            return pause
        del served
        self.server.wait_only(name, self.max_wait_seconds)  # the old version's replies end: it is freed
        release_free_memory()  # its pages go back before the new copy takes as many
        merged = self.server.load(name, path)
        with self._lock:
            if self.server.current.name != name:  # served something else meanwhile (a rollback): leave it
                return pause
            return max(pause, self.server.swap(merged))
