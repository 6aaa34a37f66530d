"""A visitor's chat: message checks, the conversation kept server-side, streamed replies stored, votes by row;
and comparisons: two replies to one message, streamed side by side, and the visitor's pick.

The conversation lives server-side in a `ChatSession` (a Gradio State): the model's prompt is
built from it, and a vote's reply id is looked up in it by message index, never taken from text
the client sends. A comparison's reply ids live in its `Comparison` state the same way: a pick
names only "a", "b" or "neither". Errors are `ChatError` / `VoteError` with messages fit to show a visitor.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Callable, Iterator

from ..config import ChatSettings
from ..contracts import PICK_CHOICES, StoredReply, TrainerError
from ..data import PromptTooLong, as_text, fit_history, has_visible_text, special_texts
from ..store.votes import VoteError, VoteStore
from .server import Completion, ServedVersion, Server
from .voters import Identity

# Shortest time between two updates of a streaming reply sent to the visitor (the first and last are always sent).
STREAM_UPDATE_SECONDS = 0.1


class ChatError(TrainerError, ValueError):
    """A message the bot refuses; the text says why and what to do."""


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


@dataclass
class Comparison:
    """Two replies to one message (A and B), as they stream and once stored: the state behind a pick."""

    pair_id: str
    reply_ids: tuple[str, str]
    versions: tuple[str, str]
    texts: list[str] = field(default_factory=lambda: ["", ""])
    stored: list[bool] = field(default_factory=lambda: [False, False])
    failed: str | None = None

    @property
    def done(self) -> bool:
        return all(self.stored) or self.failed is not None


class _Shown:
    """The text a visitor was last sent of a streaming reply. A reply stopped by its visitor is stored as
    that text: the tokens decoded between the last update and the stop were never shown, and the next
    update is lost to the cancel. The lock orders "stop, then no more updates" against the store."""

    def __init__(self) -> None:
        self.text = ""
        self._lock = threading.Lock()
        self._sent_at = 0.0

    def due(self) -> bool:
        return time.monotonic() - self._sent_at >= STREAM_UPDATE_SECONDS

    def show(self, partial: str, stop: threading.Event) -> bool:
        """Record `partial` as sent, unless the reply was stopped: then nothing more is sent."""
        with self._lock:
            if stop.is_set():
                return False
            self.text, self._sent_at = partial, time.monotonic()
            return True

    def final(self, completion: Completion) -> str:
        """What the reply is: the whole text, or for a stopped one, what its visitor was shown."""
        with self._lock:
            return self.text.strip() if completion.stopped else completion.text


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


class Chat:
    """Chat and votes for every visitor, each known by a session key (Gradio's session hash)."""

    def __init__(self, settings: ChatSettings, system_prompt: str, greeting: str, server: Server, votes: VoteStore,
                 name: str = "Reviewer #2"):
        self.settings, self.system_prompt, self.greeting = settings, system_prompt, greeting
        self.name = name  # the persona's: a duplicated Space's messages speak of its own bot
        self.server, self.votes = server, votes
        self._specials = special_texts(server.base.tokenizer)
        self._stops: dict[str, threading.Event] = {}  # the reply in flight of each visitor, by session key
        self._lock = threading.Lock()
        self._closing = False
        self.on_vote: Callable[[], None] = lambda: None  # after each vote or pick is stored (the loop wakes)

    def new_session(self) -> ChatSession:
        return ChatSession(greeting=self.greeting)

    def check_message(self, message: str | None) -> str:
        """The message as the model and the store get it: stripped, and typed special tokens kept as text
        (data.as_text); ChatError if nothing visible is left, or it is over CHAT_MAX_MESSAGE_CHARS."""
        if message is not None and not isinstance(message, str):
            raise ChatError("A message is text.")
        text = (message or "").strip()
        if not has_visible_text(text):
            raise ChatError(f"Please type a message first: even {self.name} needs something to answer.")
        limit = self.settings.max_message_chars
        if len(text) > limit:
            raise ChatError(f"Your message has {len(text):,} characters; the limit is {limit:,}. "
                            "Send the title and abstract, not the whole paper.")
        return as_text(text, self._specials)

    def reply(self, session: ChatSession, message: str | None, session_key: str,
              identity: Identity | None = None) -> Iterator[ChatSession]:
        """Stream a reply into `session` (yielded after every new piece of text) and store it, with the
        visitor's `identity` (serve/voters.py; None: the session alone) for counting votes on it."""
        identity = identity or Identity(voter="", address="")
        text = self.check_message(message)
        try:
            prompt = fit_history(self.system_prompt, session.turns, text, self.server.count_tokens,
                                 self.settings.prompt_token_budget)
        except PromptTooLong as err:
            raise ChatError(str(err)) from None
        reply_id = uuid.uuid4().hex
        stop = self._claim(session_key)
        shown = _Shown()

        def store(completion: Completion) -> None:
            try:
                self.votes.add_reply(StoredReply(id=reply_id, session=session_key, prompt=prompt,
                                           completion=shown.final(completion), version=completion.version,
                                           stopped=completion.stopped, voter_id=identity.voter,
                                           address=identity.address))
            finally:
                self._release(session_key, stop)

        try:
            stream = self.server.stream(prompt, stop=stop, on_done=store)
        except BaseException:
            self._release(session_key, stop)
            raise
        session.turns.append({"role": "user", "content": text})
        session.turns.append({"role": "assistant", "content": ""})
        session.reply_ids[session.row_of_last_turn()] = reply_id
        ended = False
        try:
            for partial in stream:
                # Every update re-renders the chat for the visitor's browser, on the cores that decode:
                # with many visitors, a few updates a second each read as smoothly and cost far less.
                if shown.due() and shown.show(partial, stop):
                    session.turns[-1]["content"] = partial
                    yield session
            ended = True
        finally:
            # Reached when the visitor stops or leaves too: end generation rather than let it run on.
            stop.set()
            if not ended:  # cancelled (Stop, a closed tab): the history keeps what the visitor saw
                session.turns[-1]["content"] = shown.text
            if stream.wait(timeout=0):  # ended (a reply that failed is never stored): the visitor may send again
                self._release(session_key, stop)
        if stream.completion is not None:
            session.turns[-1]["content"] = shown.final(stream.completion)
        yield session

    def close(self, grace: float) -> None:
        """Take no new message; give the replies in flight `grace` seconds to end, then stop them (each is stored
        as its visitor saw it). A restart calls this before its last push to the Hub."""
        with self._lock:
            self._closing = True
        if not self.server.wait_idle(grace):
            with self._lock:
                stops = list(self._stops.values())
            for stop in stops:
                stop.set()

    def _claim(self, session_key: str) -> threading.Event:
        """The stop event of a new reply for this visitor; refuses a second reply while one is in flight, and
        any once the chat is closing."""
        with self._lock:
            if self._closing:
                raise ChatError(f"{self.name} is restarting and takes no new message; send it again in a minute.")
            if session_key in self._stops:
                raise ChatError(f"{self.name} is still writing the reply to your last message: wait for it to end, "
                                "or press Stop, then send this one.")
            stop = self._stops[session_key] = threading.Event()
            return stop

    def _release(self, session_key: str, stop: threading.Event) -> None:
        with self._lock:
            if self._stops.get(session_key) is stop:
                del self._stops[session_key]

    def stop(self, session_key: str) -> None:
        event = self._stops.get(session_key)
        if event is not None:
            event.set()

    def reply_id_at(self, session: ChatSession, index: object) -> str:
        """The stored reply id behind a chatbot row of this session; rejects anything else."""
        if isinstance(index, (list, tuple)) and len(index) >= 1:
            index = index[0]
        if isinstance(index, bool) or not isinstance(index, int):
            raise VoteError(f"A vote needs a message index; got {index!r}.")
        reply_id = session.reply_ids.get(index)
        if reply_id is None:
            raise VoteError(f"Only {self.name}'s replies in this chat can be voted on.")
        return reply_id

    def vote(self, session: ChatSession, index: object, liked: object, voter: str) -> str:
        outcome = self.votes.vote(self.reply_id_at(session, index), voter, parse_liked(liked))
        self.on_vote()
        return f"Vote {outcome}."

    # -- comparisons -------------------------------------------------------------------------------

    def compare(self, message: str | None, session_key: str, versions: tuple[ServedVersion, ServedVersion],
                identity: Identity | None = None) -> Iterator[Comparison]:
        """Stream two replies to `message` (a first message: the persona's prompt and it) from `versions`, side by
        side in the decode loop, and store both; yields the comparison as they grow. They count as this visitor's
        one reply in flight. `identity` as for `reply`."""
        identity = identity or Identity(voter="", address="")
        text = self.check_message(message)
        prompt = [{"role": "system", "content": self.system_prompt}, {"role": "user", "content": text}]
        if self.server.count_tokens(prompt) > self.settings.prompt_token_budget:
            raise ChatError(f"The message is too long for the prompt budget of {self.settings.prompt_token_budget} "
                            "tokens; please shorten it.")
        comparison = Comparison(pair_id=uuid.uuid4().hex, reply_ids=(uuid.uuid4().hex, uuid.uuid4().hex),
                                versions=(versions[0].name, versions[1].name))
        stop = self._claim(session_key)

        def store(side: int, completion: Completion) -> None:
            try:
                self.votes.add_reply(StoredReply(id=comparison.reply_ids[side], session=session_key, prompt=prompt,
                                           completion=completion.text, version=completion.version,
                                           stopped=completion.stopped, voter_id=identity.voter,
                                           address=identity.address))
                comparison.texts[side] = completion.text
                comparison.stored[side] = True
            except Exception as err:
                comparison.failed = f"reply {'AB'[side]} could not be stored: {err}"
                raise

        streams = []
        try:
            for side in (0, 1):
                streams.append(self.server.stream(prompt, stop=stop, served=versions[side],
                                                  on_done=lambda c, side=side: store(side, c)))
        except BaseException:
            stop.set()
            threading.Thread(target=self._release_after, args=(session_key, stop, streams), daemon=True).start()
            raise

        def follow(side: int) -> None:
            try:
                for partial in streams[side]:
                    comparison.texts[side] = partial
            except Exception as err:
                comparison.failed = str(err)

        followers = [threading.Thread(target=follow, args=(side,), daemon=True) for side in (0, 1)]
        for follower in followers:
            follower.start()
        try:
            while alive := [f for f in followers if f.is_alive()]:
                alive[0].join(STREAM_UPDATE_SECONDS)  # the other may still run: one update per interval
                yield comparison
        finally:
            stop.set()  # ended, or the visitor stopped or left: end both replies
            if all(stream.wait(timeout=0) for stream in streams):
                self._release(session_key, stop)
            else:
                threading.Thread(target=self._release_after, args=(session_key, stop, streams), daemon=True).start()
        yield comparison

    def _release_after(self, session_key: str, stop: threading.Event, streams: list) -> None:
        for stream in streams:
            stream.wait()
        self._release(session_key, stop)

    def pick(self, comparison: Comparison | None, choice: str, voter: str) -> str:
        """Record the visitor's pick (a, b or neither) on their last comparison; a change of mind replaces it."""
        if comparison is None:
            raise VoteError("Ask for two replies first, then pick the better one.")
        if choice not in PICK_CHOICES:
            raise VoteError(f"A pick is one of {', '.join(PICK_CHOICES)}; got {choice!r}.")
        outcome = self.votes.pick(comparison.pair_id, *comparison.reply_ids, voter, choice)
        self.on_vote()
        return f"Pick {outcome}."
