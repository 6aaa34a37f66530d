"""The running bot: model, stores, serving and trainer wired together, and the chat/vote/admin logic.

`Runtime.start(settings)` is what the app calls at start-up. Its methods are what the UI handlers
call; they raise `ChatError`, `VoteError`, `AdminError` or `NotEnoughVotes` with messages fit to
show a visitor, and know nothing of Gradio.

The conversation lives server-side in a `ChatSession` (a Gradio State): the model's prompt is
built from it, and a vote's reply id is looked up in it by message index, never taken from text
the client sends.
"""

from __future__ import annotations

import dataclasses
import hmac
import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from .config import AppSettings
from .data import PromptTooLong, fit_history, kto_rows
from .files import write_rows
from .loop import TrainerLoop
from .memory import limit_arenas
from .model import BaseModel, load_base
from .serving import Completion, ServedVersion, Server
from .versions import VersionError, VersionStore
from .votes import Reply, VoteError, VoteStore

log = logging.getLogger(__name__)


class ChatError(ValueError):
    """A message the bot refuses; the text says why and what to do."""


class AdminError(PermissionError):
    """An admin action without the admin token."""


@dataclass
class ChatSession:
    """One visitor's conversation: user/assistant turns, and which chatbot rows are stored replies."""

    turns: list[dict] = field(default_factory=list)
    reply_ids: dict[int, str] = field(default_factory=dict)
    greeting: str = ""

    def chatbot(self) -> list[dict]:
        """The chatbot's messages: the greeting (never votable), then the turns."""
        shown = [{"role": "assistant", "content": self.greeting}] if self.greeting else []
        return shown + [dict(m) for m in self.turns]

    def row_of_last_turn(self) -> int:
        return len(self.turns) - 1 + (1 if self.greeting else 0)


def parse_liked(value: object) -> bool | None:
    """Gradio's feedback value (True / False / "" on retraction, or the option's label) -> vote."""
    if value is True or value is False:
        return value
    text = str(value or "").strip().lower()
    if text in ("", "none", "retract"):
        return None
    if text in ("like", "up", "true", "1", "👍"):
        return True
    if text in ("dislike", "down", "false", "0", "👎"):
        return False
    raise VoteError(f"Unknown feedback {value!r}; use like, dislike, or an empty value to retract.")


class Runtime:
    def __init__(self, settings: AppSettings, base: BaseModel):
        self.settings = settings
        self.base = base
        self.server = Server(base, settings.chat, settings.persona.system_prompt)
        self.votes = VoteStore(settings.data_dir / "votes.sqlite3")
        self.versions = VersionStore(settings.data_dir / "versions")
        self.loop = TrainerLoop(settings, base, self.server, self.votes, self.versions)
        self._stops: dict[str, threading.Event] = {}
        served = None
        if not self.versions.names() and settings.shipped_adapter is not None:
            served = self._install_shipped(settings.shipped_adapter)
        if served is None:
            current = self.versions.current()
            served = self.server.load(current, self.versions.get(current).path)
        self.server.swap(served)

    def _install_shipped(self, path: Path) -> ServedVersion | None:
        """Install and return the adapter shipped with the app on a fresh DATA_DIR, if it fits this base model."""
        try:
            served = self.server.load("shipped", path)
        except Exception as err:  # another base model: its LoRA shapes do not fit
            log.warning("not serving the shipped adapter %s: %s", path, err)
            return None
        shipped = json.loads((path / "meta.json").read_text(encoding="utf-8"))
        name = self.versions.install(path, {**shipped, "installed_from": str(path)})
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

    def close(self) -> None:
        self.loop.stop()

    def new_session(self) -> ChatSession:
        return ChatSession(greeting=self.settings.persona.greeting)

    # -- chat ------------------------------------------------------------------------------------

    def check_message(self, message: str | None) -> str:
        text = (message or "").strip()
        if not text:
            raise ChatError("Please type a message first: even Reviewer #2 needs something to reject.")
        limit = self.settings.chat.max_message_chars
        if len(text) > limit:
            raise ChatError(f"Your message has {len(text):,} characters; the limit is {limit:,}. "
                            "Send the title and abstract, not the whole paper.")
        return text

    def chat(self, session: ChatSession, message: str | None, session_key: str) -> Iterator[ChatSession]:
        """Stream a reply into `session` (yielded after every new piece of text) and store it."""
        text = self.check_message(message)
        try:
            prompt = fit_history(self.settings.persona.system_prompt, session.turns, text,
                                 self.server.count_tokens, self.settings.chat.prompt_token_budget)
        except PromptTooLong as err:
            raise ChatError(str(err)) from None
        reply_id = uuid.uuid4().hex
        stop = threading.Event()
        self._stops[session_key] = stop

        def store(completion: Completion) -> None:
            self.votes.add_reply(Reply(id=reply_id, session=session_key, prompt=prompt, completion=completion.text,
                                       version=completion.version, stopped=completion.stopped))

        stream = self.server.stream(prompt, stop=stop, on_done=store)
        session.turns.append({"role": "user", "content": text})
        session.turns.append({"role": "assistant", "content": ""})
        session.reply_ids[session.row_of_last_turn()] = reply_id
        try:
            for partial in stream:
                session.turns[-1]["content"] = partial
                yield session
        finally:
            # Reached when the visitor stops or leaves too: end generation rather than let it run on.
            stop.set()
            if self._stops.get(session_key) is stop:
                del self._stops[session_key]
        if stream.completion is not None:
            session.turns[-1]["content"] = stream.completion.text
        yield session

    def stop(self, session_key: str) -> None:
        event = self._stops.get(session_key)
        if event is not None:
            event.set()

    def reply_for(self, session: ChatSession, index: object) -> str:
        """The stored reply id behind a chatbot row of this session; rejects anything else."""
        if isinstance(index, (list, tuple)) and len(index) >= 1:
            index = index[0]
        if isinstance(index, bool) or not isinstance(index, int):
            raise VoteError(f"A vote needs a message index; got {index!r}.")
        reply_id = session.reply_ids.get(index)
        if reply_id is None:
            raise VoteError("Only Reviewer #2's replies in this chat can be voted on.")
        return reply_id

    def vote(self, session: ChatSession, index: object, liked: object, voter: str) -> str:
        reply_id = self.reply_for(session, index)
        outcome = self.votes.vote(reply_id, voter, parse_liked(liked))
        return f"Vote {outcome}."

    # -- admin and status ------------------------------------------------------------------------

    def check_admin(self, token: str | None, username: str | None = None) -> None:
        """Admin is whoever holds ADMIN_TOKEN, or is signed in (OAuth) as ADMIN_USER (a Space's owner)."""
        loop = self.settings.loop
        if username and loop.admin_user and hmac.compare_digest(username.encode(), loop.admin_user.encode()):
            return
        if token and loop.admin_token and hmac.compare_digest(str(token).encode(), loop.admin_token.encode()):
            return
        if not loop.admin_token and not loop.admin_user:
            raise AdminError("Admin actions are disabled: set the ADMIN_TOKEN setting to enable them.")
        raise AdminError("Not authorized: wrong or missing admin token.")

    def train_now(self, token: str | None, username: str | None = None) -> str:
        self.check_admin(token, username)
        return self.loop.request_round()

    def pause_trainer(self, token: str | None, username: str | None = None) -> str:
        self.check_admin(token, username)
        return self.loop.pause()

    def resume_trainer(self, token: str | None, username: str | None = None) -> str:
        self.check_admin(token, username)
        return self.loop.resume()

    def rollback(self, token: str | None, version: str | None, username: str | None = None) -> str:
        self.check_admin(token, username)
        if not version:
            raise VersionError("Pick a version to serve.")
        self.loop.rollback(version)
        return f"Now serving {version}."

    def export_votes(self, token: str | None, username: str | None = None) -> Path:
        """Every vote as KTO rows in a JSONL file under DATA_DIR/exports; returns its path."""
        self.check_admin(token, username)
        path = self.settings.data_dir / "exports" / f"votes-{time.strftime('%Y%m%d-%H%M%S')}.jsonl"
        return write_rows(kto_rows(self.votes.all_votes()), path)

    def status(self) -> dict:
        up, down = self.votes.waiting_counts()
        total_up, total_down = self.votes.total_counts()
        trainer = self.loop.status()
        return {
            "serving": self.server.current.name,
            "base_model": self.base.source,
            "votes_waiting": {"up": up, "down": down},
            "votes_total": {"up": total_up, "down": total_down},
            "min_votes": self.settings.loop.min_votes,
            "trainer": trainer.__dict__,
            "generating": self.server.generating,
        }
