"""The running bot wired together: the base model, the stores, serving, the gate, the learning loop.

`Runtime.start(settings)` is what the app calls at start-up. The UI's handlers call its parts:
`chat` (messages and votes), `admin` (checked admin actions), `status()`; they raise errors with
messages fit to show a visitor, and know nothing of Gradio.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

from .admin import Admin
from .config import AppSettings
from .contracts import AppStatus, VersionMeta, VoteCounts
from .gate.judge import Gate
from .learning import Learner
from .loop import LearningLoop
from .model.base import BaseModel, load_base
from .model.memory import limit_arenas
from .serve.chat import Chat
from .serve.compare import Comparisons
from .serve.core_sharing import CoreSharing
from .serve.rollout import Rollout
from .serve.server import ServedVersion, Server
from .store.hub import HubSync
from .store.versions import BASE, VersionStore
from .store.votes import VoteStore
from .train.recipe import check_recipe

log = logging.getLogger(__name__)


# Seconds a reply in flight at shutdown gets to end before it is stopped: a Space kills the process about 30 s
# after SIGTERM, and the final push to the Hub needs what is left.
CLOSE_GRACE_SECONDS = 5.0


class Runtime:
    def __init__(self, settings: AppSettings, base: BaseModel):
        check_recipe(settings)  # a bad KTO_ / LORA_ setting fails at start-up, not mid-round
        self.settings = settings
        self.base = base
        self.persona_note = ""  # why an adapter of another persona is not serving (status line, dashboard)
        persona = settings.persona
        cores = CoreSharing(settings.loop.max_yield_seconds, settings.loop.training_share)
        self.server = Server(base, settings.chat, persona.system_prompt, cores)
        self.votes = VoteStore(settings.data_dir / "votes.sqlite3")
        self.versions = VersionStore(settings.data_dir / "versions")
        self.hub = HubSync(settings.hub, settings.data_dir, self.votes, self.versions)
        self.versions.on_change = self.hub.push_soon
        self.rollout = Rollout(self.server, self.versions, settings.loop.max_yield_seconds)
        self.gate = Gate(settings, base, self.votes, self.server)
        self.learner = Learner(settings, base, self.votes, self.versions, self.rollout, self.gate)
        self.learner.on_learned = self.hub.push_soon
        self.loop = LearningLoop(settings.loop, self.learner, self.votes, self.server, hold=self._round_held)
        self.chat = Chat(settings.chat, persona.system_prompt, persona.greeting, self.server, self.votes, persona.name)
        self.chat.on_vote = self.loop.wake  # a round due starts now, not at the next poll
        self.comparisons = Comparisons(self.server, self.versions)
        self.admin = Admin(settings.loop, self.loop, self.rollout, self.votes, settings.data_dir / "exports",
                           persona=settings.persona)
        # Before anything serves: on a fresh disk the Hub's votes and versions come back first.
        self.hub.start(on_restored=self._serve_restored)
        self.server.swap(self._first_version())

    def _round_held(self) -> str | None:
        if not self.hub.ready.is_set():
            return "the votes and versions kept on the Hub have not been read back yet (it is retried)"
        return None

    def _serve_restored(self) -> None:
        """The Hub answered after start-up: serve what it kept (or install the shipped adapter)."""
        self.server.swap(self._first_version())

    def _first_version(self) -> ServedVersion:
        """The version CURRENT names; on a fresh DATA_DIR, the shipped adapter installed as the first version.
        An adapter trained for another persona never serves: the bare base does, and `persona_note` says why.

        While the Hub's history is still unread, the shipped adapter serves unpublished ("shipped"): a
        version published now could take a name the Hub already has."""
        shipped = self.settings.shipped_adapter
        shipped_meta = VersionMeta.read(shipped / "meta.json") if shipped and (shipped / "meta.json").exists() \
            else VersionMeta()
        if shipped is not None and self._not_this_persona(shipped_meta, f"the shipped adapter {shipped.name}",
                                                          shipped=True):
            shipped = None
        if not self.hub.ready.is_set():
            if shipped is not None:
                try:
                    return self.server.load("shipped", shipped)
                except Exception as err:
                    log.warning("not serving the shipped adapter: %s", err)
            return self.server.load("base", None)
        if not self.versions.names() and shipped is not None:
            installed = self._install_shipped(shipped)
            if installed is not None:
                return installed
        current = self.versions.current()
        info = self.versions.get(current)
        if current != BASE and self._not_this_persona(info.meta, f"version {current}"):
            return self.server.load("base", None)
        return self.server.load(current, info.path)

    def _not_this_persona(self, meta: VersionMeta, what: str, shipped: bool = False) -> bool:
        """Whether `what` (its `meta`) was trained for another persona; if so `persona_note` says so. A shipped
        adapter must name this persona; a version of this DATA_DIR from before personas were recorded serves."""
        persona = self.settings.persona
        if meta.persona == persona.digest or (meta.persona is None and not shipped):
            return False
        trained_for = f"the persona {meta.persona_name!r}" if meta.persona else "no recorded persona"
        self.persona_note = (f"{what} was trained for {trained_for}, not {persona.name!r} (PERSONA_FILE): "
                             "serving the bare base until a round trains this persona")
        log.warning(self.persona_note)
        return True

    def _install_shipped(self, path: Path) -> ServedVersion | None:
        try:
            served = self.server.load("shipped", path)
        except Exception as err:  # another base model: its LoRA shapes do not fit
            log.warning("not serving the shipped adapter %s: %s", path, err)
            return None
        meta = dataclasses.replace(VersionMeta.read(path / "meta.json"), installed_from=str(path))
        name = self.versions.install(path, meta)
        self.versions.set_current(name, reason="shipped adapter")
        return dataclasses.replace(served, name=name)

    @classmethod
    def start(cls, settings: AppSettings) -> "Runtime":
        started = time.perf_counter()
        limit_arenas()  # before the threads that chat and train allocate from exist
        runtime = cls(settings, load_base(settings.model))
        if settings.loop.enabled:
            runtime.loop.start()
        log.info("serving %s from %s (ready in %.1f s)", runtime.server.current.name, runtime.base.source,
                 time.perf_counter() - started)
        return runtime

    def close(self, grace: float = CLOSE_GRACE_SECONDS) -> None:
        """A Space restart sends SIGTERM first: take no new message, let the replies in flight end (or stop
        them after `grace` s) and store them, stop training, then push what the Hub lacks, once; stop decoding."""
        self.chat.close(grace)
        self.loop.stop()
        if not self.server.wait_idle(grace):
            log.warning("replies still in flight after %.0f s at shutdown", 2 * grace)
        self.hub.close()
        self.server.decoder.close()

    def status(self) -> AppStatus:
        return AppStatus(serving=self.server.current.name, base_model=self.base.source,
                         votes_waiting=VoteCounts(*self.votes.waiting_counts()),
                         votes_total=VoteCounts(*self.votes.total_counts()),
                         picks_waiting=sum(self.votes.waiting_pick_counts()),
                         votes_over_caps=self.learner.votes_over_caps(),
                         min_votes=self.settings.loop.min_votes,
                         needs_both_labels=not self.learner.anchored, loop=self.loop.status(),
                         votes_by_version={name: VoteCounts(*counts)
                                           for name, counts in self.votes.counts_by_version().items()},
                         generating=self.server.generating, hub=self.hub.status(),
                         persona_note=self.persona_note if self.server.current.name == BASE else "")
