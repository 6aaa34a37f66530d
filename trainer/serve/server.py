"""Serving: streamed replies from the current adapter version, decoded in one batch, and the hot swap.

The serving version is one immutable object (a name and a module tree) behind one reference. A
reply takes the reference once when it starts and finishes on that version even if a swap lands
mid-reply; a swap is a single reference assignment, so it never waits for, nor blocks, a chat.
Every reply is decoded by one loop that batches all replies in flight (decoding.py); replies of an
old version finish in their own batch beside the new version's, and the old version is freed when
its last reply ends. Each version's tree is a twin of the frozen base (see model.py) with the LoRA
merged into a private copy of the adapted weights (CHAT_MERGE_ADAPTER), so it decodes as fast as
the bare base; on a CPU with native bf16 the copy is a whole bf16 tree (CHAT_DTYPE), faster still,
while training and the gate keep the shared fp32 base. A version also keeps the keys and values of
the persona's system prompt, which starts every prompt (CHAT_CACHE_SYSTEM_PROMPT): a reply's
prefill then covers only the conversation.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import torch
from transformers import TextIteratorStreamer

from ..config import ChatSettings
from ..contracts import TrainerError
from ..model.base import BaseModel, HalfCopies, cpu_has_native_bf16, merged_with_adapter, serving_copy, with_adapter
from ..store.versions import BASE
from .core_sharing import CoreSharing
from .decoding import DecodeLoop, ReplyInFlight, ServedVersion
from .kv import check_mergeable
from .prompt_cache import MIN_CACHED_TOKENS, PromptCache

log = logging.getLogger(__name__)


@dataclass
class Completion:
    """What one reply turned out to be, known once generation ends."""

    text: str
    version: str
    stopped: bool
    new_tokens: int
    seconds: float
    first_token_seconds: float | None
    token_ids: tuple[int, ...] = ()
    ended: bool = False  # it ended with the end-of-turn token (not cut at its token cap, nor stopped)


class SamplingFailed(TrainerError, RuntimeError):
    """A sampled reply failed, or did not end in time (Server.sample)."""


class SamplingCancelled(TrainerError):
    """Server.sample was told to stop before its replies ended."""


class ReplyStream:
    """Iterate to get the reply text so far; the decode loop generates it beside every other reply.

    `on_done(completion)` runs once the reply has ended, stopped or not, whether or not anybody is
    still iterating: a visitor who closes the tab still leaves a stored reply. Iteration ends after it.
    """

    def __init__(self, server: "Server", messages: list[dict], stop: threading.Event,
                 on_done: Callable[[Completion], None] | None = None, served: ServedVersion | None = None,
                 seed: int | None = None, max_new_tokens: int | None = None):
        self.served = served or server.current
        self.stop = stop
        self.completion: Completion | None = None
        self._server = server
        self._on_done = on_done
        self._error: BaseException | None = None
        self._done = threading.Event()
        self._streamed = False  # the streamer's pieces are read once
        tokenizer = server.base.tokenizer
        prompt_ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                                   return_dict=True)["input_ids"][0].to(server.base.device)
        self._streamer = TextIteratorStreamer(tokenizer, skip_special_tokens=True)
        server._enter(self.served.name)
        generator = None if seed is None else torch.Generator(server.base.device).manual_seed(seed)
        server.decoder.submit(ReplyInFlight(self.served, prompt_ids, stop, self._streamer, self._finished,
                                    generator=generator, max_new_tokens=max_new_tokens))

    def _finished(self, reply: ReplyInFlight) -> None:
        try:
            if reply.error is not None:
                self._error = reply.error
                return
            text = self._server.base.tokenizer.decode(reply.tokens, skip_special_tokens=True).strip()
            self.completion = Completion(text=text, version=self.served.name, stopped=reply.stopped,
                                         new_tokens=len(reply.tokens), seconds=time.perf_counter() - reply.started,
                                         first_token_seconds=reply.first_token_seconds,
                                         token_ids=tuple(reply.tokens),
                                         ended=bool(reply.tokens) and reply.tokens[-1] in self._server.decoder.end_ids)
            if self._on_done is not None:
                self._on_done(self.completion)
        except BaseException as err:
            log.exception("storing a finished reply failed")
            self._error = err
        finally:
            self._server._leave(self.served.name)
            self._done.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the reply has ended and been handed to `on_done`; True if it has."""
        return self._done.wait(timeout)

    def __iter__(self) -> Iterator[str]:
        """The text so far, after each new piece; iterated again once it has ended, the whole text at once."""
        if not self._streamed:
            text = ""
            for piece in self._streamer:
                text += piece
                yield text
            self._streamed = True
            self._done.wait()
        else:
            self._done.wait()
            if self.completion is not None:
                yield self.completion.text
        if self._error is not None:
            raise RuntimeError(f"generation failed: {self._error}") from self._error


class Server:
    """Owns the serving reference and the decode loop, and knows which versions have replies in flight.

    `system_prompt` is the prompt every conversation starts with; each version caches it. `cores`,
    if given, is how the decode loop shares the cores with training.
    """

    def __init__(self, base: BaseModel, chat: ChatSettings, system_prompt: str | None = None,
                 cores: CoreSharing | None = None):
        self.base = base
        self.chat = chat
        self.cores = cores
        self._prefix_ids = self._system_prefix(system_prompt) if chat.cache_system_prompt else None
        self._served: ServedVersion | None = None  # the base until the first swap; see `current`
        self._in_flight: Counter[str] = Counter()  # replies being generated, by version name
        self._idle = threading.Condition()
        self.longest_swap_seconds = 0.0
        self._half_copies = HalfCopies()  # serving copies share the weights no adapter changes (base.cast_copy)
        self._check_batchable()
        self.decoder = DecodeLoop(base.tokenizer, chat, base.device, cores)

    def _check_batchable(self) -> None:
        """Refuse at start-up a model whose cache the decode loop cannot batch, not at a visitor's first reply."""
        with torch.inference_mode():
            probe = self.base.model(input_ids=torch.tensor([[self.base.tokenizer.pad_token_id]],
                                                           device=self.base.device), use_cache=True)
        check_mergeable(probe.past_key_values)

    @property
    def current(self) -> ServedVersion:
        return self._served or self._base_version

    @functools.cached_property
    def _base_version(self) -> ServedVersion:
        """The bare base with its prompt cache: built when first served, not at start-up (Runtime swaps v1 in)."""
        dtype = self.serving_dtype
        model = self.base.model if dtype is None else serving_copy(self.base, dtype, self._half_copies)
        return self._version(BASE, model)

    @functools.cached_property
    def serving_dtype(self) -> torch.dtype | None:
        """The dtype serving copies are made in (CHAT_DTYPE), or None: serve the base's weights as they are."""
        if not self.merges:  # unmerged versions share the base's weights; a 4-bit base computes in bf16 already
            return None
        wanted = self.chat.dtype
        if wanted == "auto" and self.base.device.type != "cpu":
            return None  # a GPU serves in the dtype its base computes in (bf16, or fp16 without native bf16)
        if wanted == "auto":
            wanted = "bfloat16" if cpu_has_native_bf16() else "float32"
        dtype = getattr(torch, wanted)
        return None if dtype == self.base.model.dtype else dtype

    def _system_prefix(self, system_prompt: str | None) -> torch.Tensor | None:
        """Token ids of the rendered system prompt, if the chat template renders it as every prompt's start."""
        if not system_prompt:
            return None
        tokenizer = self.base.tokenizer
        system = [{"role": "system", "content": system_prompt}]
        prefix = list(tokenizer.apply_chat_template(system, return_dict=True)["input_ids"])
        probe = list(tokenizer.apply_chat_template(system + [{"role": "user", "content": "?"}],
                                                   add_generation_prompt=True, return_dict=True)["input_ids"])
        if len(prefix) < MIN_CACHED_TOKENS or probe[:len(prefix)] != prefix:
            log.info("the system prompt is not a cacheable prefix of the chat template's prompts")
            return None
        return torch.tensor(prefix, device=self.base.device)

    def _version(self, name: str, model: torch.nn.Module) -> ServedVersion:
        cache = PromptCache(model, self._prefix_ids) if self._prefix_ids is not None else None
        return ServedVersion(name, model, cache)

    @property
    def merges(self) -> bool:
        """Whether adapter versions serve merged (their own copy of the adapted weights)."""
        # A 4-bit base cannot take a merge without requantizing: it serves the adapter unmerged.
        return self.chat.merge_adapter and getattr(self.base.model, "hf_quantizer", None) is None

    def load(self, name: str, path: Path | None, merged: bool = True) -> ServedVersion:
        """Build a version's module tree and its system-prompt cache, off the chat path; `swap` then serves it.

        An adapter version is merged where `merges` says so, unless `merged` is False: then it shares
        every weight with the base (a little slower to generate from, no memory of its own).
        """
        if name == BASE or path is None:
            return self._base_version
        if merged and self.merges:
            return self._version(name, merged_with_adapter(self.base, path, self.serving_dtype, self._half_copies))
        return self._version(name, with_adapter(self.base, path))

    def swap(self, served: ServedVersion) -> float:
        """Serve `served` from the next reply on; returns the seconds the swap took.

        No chat thread waits on a swap: there is no lock, and a reply holds its own reference. The
        figure is the caller's own time, which includes waiting for the GIL while a reply is being
        generated (up to `sys.getswitchinterval()`, 5 ms by default).
        """
        started = time.perf_counter()
        self._served = served
        paused = time.perf_counter() - started
        self.longest_swap_seconds = max(self.longest_swap_seconds, paused)
        log.info("now serving %s (swap took %.1f us)", served.name, paused * 1e6)
        return paused

    def count_tokens(self, messages: list[dict]) -> int:
        encoded = self.base.tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_dict=True)
        return len(encoded["input_ids"])

    def stream(self, messages: list[dict], stop: threading.Event | None = None,
               on_done: Callable[[Completion], None] | None = None, served: ServedVersion | None = None) -> ReplyStream:
        """A reply to `messages` from the serving version (or `served`: another loaded version, as in a comparison)."""
        return ReplyStream(self, messages, stop or threading.Event(), on_done, served)

    def sample(self, requests: list[tuple[ServedVersion, list[dict], int]], max_new_tokens: int | None = None,
               timeout: float = 3600.0, cancel: Callable[[], bool] | None = None) -> list[Completion]:
        """Replies to (version, messages, seed) requests, all decoded in the one loop beside chat's replies, with
        the chat's sampling settings; each is drawn from its own generator seeded by `seed`, so the same
        request gets the same reply whatever else is in the batch (up to the batch's rounding). Blocks until
        every reply has ended; raises RuntimeError if one failed or did not end within `timeout` seconds, and
        SamplingCancelled (every reply stopped) once `cancel()`, asked first and then twice a second, says so."""
        if cancel is not None and cancel():
            raise SamplingCancelled("sampling cancelled before it started")
        streams = [ReplyStream(self, messages, threading.Event(), served=served, seed=seed,
                               max_new_tokens=max_new_tokens) for served, messages, seed in requests]
        deadline = time.monotonic() + timeout

        def stop_all() -> None:
            for other in streams:
                other.stop.set()

        for stream in streams:
            while not stream.wait(min(0.5, max(0.0, deadline - time.monotonic()))):
                if cancel is not None and cancel():
                    stop_all()
                    raise SamplingCancelled("sampling cancelled")
                if time.monotonic() >= deadline:
                    stop_all()
                    raise SamplingFailed(f"sampled replies did not end within {timeout:.0f} s")
            if stream.completion is None:
                raise SamplingFailed(f"a sampled reply failed: {stream._error}")
        return [stream.completion for stream in streams]

    def _enter(self, version: str) -> None:
        with self._idle:
            self._in_flight[version] += 1

    def _leave(self, version: str) -> None:
        with self._idle:
            self._in_flight[version] -= 1
            if self._in_flight[version] <= 0:
                del self._in_flight[version]
            self._idle.notify_all()

    @property
    def generating(self) -> int:
        return sum(self._in_flight.values())

    def in_flight(self) -> dict[str, int]:
        """Replies being generated now, by the version generating them."""
        with self._idle:
            return dict(self._in_flight)

    def wait_idle(self, timeout: float) -> bool:
        """Block until no reply is being generated, or `timeout` seconds; True if idle."""
        with self._idle:
            return self._idle.wait_for(lambda: not self._in_flight, timeout=timeout)

    def wait_only(self, version: str, timeout: float) -> bool:
        """Block until every reply in flight is `version`'s (the others' versions can be freed); True if so."""
        with self._idle:
            return self._idle.wait_for(lambda: set(self._in_flight) <= {version}, timeout=timeout)
