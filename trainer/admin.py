"""Admin actions (train now, pause / resume, serve another version, export votes), checked on the server.

Admin is whoever holds ADMIN_TOKEN, or is signed in (OAuth, on a Space) as one of ADMIN_USER. Every action
takes the caller's token and user name and raises `AdminError` before doing anything otherwise.
"""

from __future__ import annotations

import hmac
import time
from pathlib import Path

from .config import LoopSettings, PersonaConfig
from .contracts import TrainerError
from .data import kto_rows
from .loop import LearningLoop
from .serve.rollout import Rollout
from .store.files import write_rows
from .store.versions import BASE, VersionError
from .store.votes import VoteStore


class AdminError(TrainerError, PermissionError):
    """An admin action without the admin token."""


class Admin:
    def __init__(self, settings: LoopSettings, loop: LearningLoop, rollout: Rollout, votes: VoteStore,
                 exports: Path, persona: PersonaConfig | None = None):
        self.settings, self.loop, self.rollout, self.votes, self.exports = settings, loop, rollout, votes, exports
        self.persona = persona  # versions trained for another persona are not served (None: no check)

    def check(self, token: str | None, username: str | None = None) -> None:
        settings = self.settings
        if username and any(hmac.compare_digest(username.encode(), admin.encode()) for admin in settings.admin_users):
            return
        if token and settings.admin_token and hmac.compare_digest(str(token).encode(),
                                                                  settings.admin_token.encode()):
            return
        if not settings.admin_token and not settings.admin_user:
            raise AdminError("Admin actions are disabled: set the ADMIN_TOKEN setting to enable them.")
        raise AdminError("Not authorized: wrong or missing admin token.")

    def train_now(self, token: str | None, username: str | None = None) -> str:
        self.check(token, username)
        return self.loop.request_round()

    def pause(self, token: str | None, username: str | None = None) -> str:
        self.check(token, username)
        return self.loop.pause()

    def resume(self, token: str | None, username: str | None = None) -> str:
        self.check(token, username)
        return self.loop.resume()

    def rollback(self, token: str | None, version: str | None, username: str | None = None) -> str:
        """Serve an earlier version (or "base") now; recorded in the version history.

        It does not wait for a round under way, which may still serve its own version when it ends:
        pause the trainer first to keep the rollback.
        """
        self.check(token, username)
        if not version:
            raise VersionError("Pick a version to serve.")
        if self.persona is not None and version != BASE:
            meta = self.rollout.versions.get(version).meta
            if meta.persona is not None and meta.persona != self.persona.digest:
                raise VersionError(f"{version} was trained for the persona {meta.persona_name!r}, not "
                                   f"{self.persona.name!r} (PERSONA_FILE): it cannot serve here.")
        self.rollout.serve(version, reason="rollback")
        return f"Now serving {version}."

    def export_votes(self, token: str | None, username: str | None = None) -> Path:
        """Every vote as KTO rows in a JSONL file under DATA_DIR/exports; returns its path."""
        self.check(token, username)
        path = self.exports / f"votes-{time.strftime('%Y%m%d-%H%M%S')}.jsonl"
        return write_rows(kto_rows(self.votes.all_votes()), path)
