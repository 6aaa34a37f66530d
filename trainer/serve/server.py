"""Serving: streamed generation from the current adapter version, and the hot swap.

The serving version is one immutable object (a name and a module tree) behind one reference. A
reply takes the reference once when it starts and finishes on that version even if a swap lands
mid-reply; a swap is a single reference assignment, so it never waits for, nor blocks, a chat.
Each version's tree is a twin of the frozen base (see model.py) with the LoRA merged into a private
copy of the adapted weights (CHAT_MERGE_ADAPTER), so it decodes as fast as the bare base; an old
version is freed when its last in-flight reply ends. A version also keeps the keys and values of
the persona's system prompt, which starts every prompt (CHAT_CACHE_SYSTEM_PROMPT): a reply's
prefill then covers only the conversation.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import torch
from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

from ..config import ChatSettings
from ..store.versions import BASE
from .model import BaseModel, merged_with_adapter, with_adapter
from .prompt_cache import MIN_CACHED_TOKENS, PromptCache

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServedVersion:
    name: str
    model: torch.nn.Module
    prompt_cache: PromptCache | None = None


@dataclass
class Completion:
    """What one reply turned out to be, known once generation ends."""

    text: str
    version: str
    stopped: bool
    new_tokens: int
    seconds: float
    first_token_seconds: float | None


class _StopOnEvent(StoppingCriteria):
    def __init__(self, event: threading.Event):
        self.event = event

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs) -> torch.BoolTensor:
        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)


class ReplyStream:
    """Iterate to get the reply text so far; generation runs on its own thread.

    `on_done(completion)` runs on the generation thread when it ends, stopped or not, whether or not
    anybody is still iterating: a visitor who closes the tab still leaves a stored reply.
    """

    def __init__(self, server: "Server", messages: list[dict], stop: threading.Event,
                 on_done: Callable[[Completion], None] | None = None):
        self.served = server.current
        self.stop = stop
        self._server = server
        self._on_done = on_done
        self._error: BaseException | None = None
        self.completion: Completion | None = None
        tokenizer = server.base.tokenizer
        self._inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                                     return_dict=True).to(server.base.device)
        self._streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
        server._enter()
        self._thread = threading.Thread(target=self._generate, name="generate", daemon=True)
        self._thread.start()

    def _generate(self) -> None:
        settings = self._server.chat
        started = time.perf_counter()
        first_token: list[float] = []
        prompt_len = self._inputs["input_ids"].shape[1]

        class _Clock(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):
                if not first_token:
                    first_token.append(time.perf_counter() - started)
                return torch.zeros((input_ids.shape[0],), dtype=torch.bool, device=input_ids.device)

        sampling = dict(do_sample=True, temperature=settings.temperature, top_p=settings.top_p) \
            if settings.temperature > 0 else dict(do_sample=False)
        cached = self.served.prompt_cache.for_prompt(self._inputs["input_ids"]) \
            if self.served.prompt_cache is not None else None
        if cached is not None:
            sampling["past_key_values"] = cached
        try:
            with torch.inference_mode():
                output = self.served.model.generate(
                    **self._inputs, max_new_tokens=settings.max_new_tokens,
                    repetition_penalty=settings.repetition_penalty, streamer=self._streamer,
                    stopping_criteria=StoppingCriteriaList([_Clock(), _StopOnEvent(self.stop)]),
                    pad_token_id=self._server.base.tokenizer.pad_token_id, **sampling)
            new_ids = output[0, prompt_len:]
            text = self._server.base.tokenizer.decode(new_ids, skip_special_tokens=True).strip()
            self.completion = Completion(text=text, version=self.served.name, stopped=self.stop.is_set(),
                                         new_tokens=int(new_ids.shape[0]), seconds=time.perf_counter() - started,
                                         first_token_seconds=first_token[0] if first_token else None)
            if self._on_done is not None:
                self._on_done(self.completion)
        except BaseException as err:  # surfaced to the reader in __iter__
            log.exception("generation failed")
            self._error = err
            self._streamer.end()
        finally:
            self._server._leave()

    def __iter__(self) -> Iterator[str]:
        text = ""
        for piece in self._streamer:
            text += piece
            yield text
        self._thread.join()
        if self._error is not None:
            raise RuntimeError(f"generation failed: {self._error}") from self._error


class Server:
    """Owns the serving reference and knows whether any reply is being generated.

    `system_prompt` is the prompt every conversation starts with; each version caches it.
    """

    def __init__(self, base: BaseModel, chat: ChatSettings, system_prompt: str | None = None):
        self.base = base
        self.chat = chat
        self._prefix_ids = self._system_prefix(system_prompt) if chat.cache_system_prompt else None
        self._served: ServedVersion | None = None  # the base until the first swap; see `current`
        self._active = 0
        self._idle = threading.Condition()
        self.longest_swap_seconds = 0.0

    @property
    def current(self) -> ServedVersion:
        return self._served or self._base_version

    @functools.cached_property
    def _base_version(self) -> ServedVersion:
        """The bare base with its prompt cache: built when first served, not at start-up (Runtime swaps v1 in)."""
        return self._version(BASE, self.base.model)

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
            return self._version(name, merged_with_adapter(self.base, path))
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
               on_done: Callable[[Completion], None] | None = None) -> ReplyStream:
        return ReplyStream(self, messages, stop or threading.Event(), on_done)

    def _enter(self) -> None:
        with self._idle:
            self._active += 1

    def _leave(self) -> None:
        with self._idle:
            self._active -= 1
            self._idle.notify_all()

    @property
    def generating(self) -> int:
        return self._active

    def wait_idle(self, timeout: float) -> bool:
        """Block until no reply is being generated, or `timeout` seconds; True if idle."""
        with self._idle:
            return self._idle.wait_for(lambda: self._active == 0, timeout=timeout)
