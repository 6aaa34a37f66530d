"""Which two versions answer a comparison ("two replies, pick one"): the serving version twice, or the serving
version beside the latest candidate.

A candidate is the newest published version that is newer than the serving one and not serving: a
round's version the gate kept out, or one published since an admin served an older version. It is
loaded unmerged (it shares every weight with the base, and costs no copy of them), once per version,
off the serving reference: chat's own replies never come from it.
"""

from __future__ import annotations

import logging
import threading

from ..store.versions import BASE, VersionStore
from .server import ServedVersion, Server

log = logging.getLogger(__name__)


class Comparisons:
    def __init__(self, server: Server, versions: VersionStore):
        self.server, self.versions = server, versions
        self._candidate: ServedVersion | None = None
        self._lock = threading.Lock()

    def candidate_name(self) -> str | None:
        serving = self.server.current.name
        # Version names sort in publishing order (v0001, v0002, ...), after "base" and "shipped".
        newer = [name for name in self.versions.names() if name != BASE and name > serving]
        return newer[-1] if newer else None

    def pair(self) -> tuple[ServedVersion, ServedVersion]:
        """(version of reply A, version of reply B): the serving version, and the candidate if there is one."""
        serving = self.server.current
        name = self.candidate_name()
        if name is None:
            return serving, serving
        with self._lock:
            if self._candidate is None or self._candidate.name != name:
                try:
                    self._candidate = self.server.load(name, self.versions.get(name).path, merged=False)
                except Exception as err:  # e.g. removed meanwhile: compare the serving version with itself
                    log.warning("cannot load candidate %s for comparisons: %s", name, err)
                    return serving, serving
            return serving, self._candidate
