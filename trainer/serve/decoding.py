"""One decode loop for every visitor's reply: continuous batching over the model's own cache.

Replies in flight are decoded together, one forward pass per step for each version serving them
(almost always one). At most CHAT_MAX_ROWS rows are in flight, whoever sent them (each side of a
comparison is a row, and so is each of the gate's probe replies); more wait, in arrival order, for
a row to end. A new reply joins at the next step: the replies that arrived meanwhile are
prefilled together, continuing from the version's cached system prompt, and their rows are added
to the batch (kv.py). A reply that ends (end of turn, its token limit, or its visitor's stop)
leaves at once; the others go on. Sampling (repetition penalty, temperature, top-p) is `generate`'s,
applied to each row with that row's own tokens (sampling.py); each reply streams through its own
TextIteratorStreamer.

Why our own loop rather than transformers' ContinuousBatchingManager (`generate_batch`): measured
on this 2-core CPU (transformers 5.23), the library's paged-attention path decodes 8 replies at
2.0x one reply's rate, a padded batch over the model's cache at 5.4x; the library's path also drops
the repetition penalty and cannot start from a cached system prompt (its prefix sharing works in
256-token pages). bench/visitors.py measures this loop through the app.
"""

from __future__ import annotations

import atexit
import collections
import logging
import queue
import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import torch
from transformers import DynamicCache, TextIteratorStreamer

from ..config import ChatSettings
from ..model.memory import release_free_memory
from .core_sharing import CoreSharing
from .kv import BatchCache, check_mergeable
from .prompt_cache import PromptCache
from .sampling import TokenSampler

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class ServedVersion:
    """A version as the decode loop serves it: its name, its model (merged, CHAT_DTYPE, or the bare base) and
    the key/value cache of its persona prompt."""

    name: str
    model: torch.nn.Module
    prompt_cache: PromptCache | None = None


@dataclass(eq=False)
class ReplyInFlight:
    """One reply being decoded: its prompt, its version, its visitor's stop, where its tokens go."""

    served: "ServedVersion"
    prompt_ids: torch.Tensor  # [prompt length]
    stop: threading.Event
    streamer: TextIteratorStreamer
    finished: Callable[["ReplyInFlight"], None]  # runs off the decode loop once the reply has ended
    # Sampling draws from this generator where given (the gate's seeded probe replies), else torch's global one.
    generator: torch.Generator | None = None
    max_new_tokens: int | None = None  # None: the chat's CHAT_MAX_NEW_TOKENS
    tokens: list[int] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)
    first_token_seconds: float | None = None
    stopped: bool = False
    error: BaseException | None = None

    def history(self) -> torch.Tensor:
        """Prompt and reply so far, as one row: what the repetition penalty looks at."""
        generated = torch.tensor(self.tokens, dtype=self.prompt_ids.dtype, device=self.prompt_ids.device)
        return torch.cat([self.prompt_ids, generated])[None]


@dataclass(eq=False)
class VersionBatch:
    """The replies of one version decoding together, and the token each one feeds next."""

    served: "ServedVersion"
    replies: list[ReplyInFlight]
    kv: BatchCache
    next_tokens: torch.Tensor  # [rows]


_OPEN_LOOPS: "weakref.WeakSet[DecodeLoop]" = weakref.WeakSet()


@atexit.register
def _close_open_loops() -> None:
    # A decode thread that has run bf16 kernels and is still alive when the interpreter exits makes
    # the process abort in native teardown ("terminate called without an active exception").
    for loop in list(_OPEN_LOOPS):
        loop.close()


class DecodeLoop:
    """Owns the thread that decodes every reply; `submit` hands it one."""

    def __init__(self, tokenizer, settings: ChatSettings, device: torch.device, cores: CoreSharing | None = None):
        self.tokenizer, self.settings, self.device, self.cores = tokenizer, settings, device, cores
        self.sampler = TokenSampler(settings)
        eos = tokenizer.eos_token_id
        self.end_ids = set(eos if isinstance(eos, list) else [eos])
        self._arrivals: queue.SimpleQueue[ReplyInFlight] = queue.SimpleQueue()
        self._waiting: collections.deque[ReplyInFlight] = collections.deque()  # arrived, no free row yet
        self._wake = threading.Event()
        self._batches: list[VersionBatch] = []
        self._finisher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="reply-finished")
        self._closing = False
        self._trimmed = True  # nothing decoded yet: nothing to hand back
        self._thread = threading.Thread(target=self._run, name="decode-loop", daemon=True)
        self._thread.start()
        _OPEN_LOOPS.add(self)
        self.steps = 0
        self.largest_batch = 0

    def submit(self, reply: ReplyInFlight) -> None:
        self._arrivals.put(reply)
        self._wake.set()

    def close(self, timeout: float = 10.0) -> None:
        """End the loop thread once the replies in flight have ended."""
        self._closing = True
        self._wake.set()
        self._thread.join(timeout)

    @property
    def rows(self) -> int:
        return sum(len(batch.replies) for batch in self._batches)

    # -- the loop ---------------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            if not self._batches and not self._waiting:
                if self.cores is not None:
                    self.cores.chat_busy(False)
                if self._closing:
                    return
                if not self._trimmed:
                    # The batches' caches grew in chunks, and rows joined and left (kv.py): each a new
                    # allocation of a new size, so the heap they leave is fragmented free memory that glibc
                    # keeps. Hand it back while idle, before a round or the next burst stacks its peak on it.
                    release_free_memory()
                    self._trimmed = True
                self._wake.wait()
            # Not asleep while replies wait for a row: when every row of a full batch ends in the same step, the
            # waiting ones take the rows now (they once waited for the next visitor's message to wake the loop).
            self._wake.clear()
            if self.cores is not None:
                self.cores.chat_busy(True)
                self.cores.wait_chat_turn()
            self._trimmed = False
            try:
                self._iteration()
            except BaseException:  # the loop must outlive any reply; _step and _admit fail their own replies
                log.exception("decode loop iteration failed")

    @torch.inference_mode()
    def _iteration(self) -> None:
        # Its own frame, so no local outlives it: a batch left in a loop variable would keep a version alive.
        self._admit(self._take_arrivals())
        for batch in list(self._batches):
            self._step(batch)

    def _take_arrivals(self) -> list[ReplyInFlight]:
        """The replies to admit now: those waiting, in arrival order, as many as CHAT_MAX_ROWS leaves room for
        (a stopped one is taken at once: admitting ends it without a row)."""
        while True:
            try:
                self._waiting.append(self._arrivals.get_nowait())
            except queue.Empty:
                break
        taken = [reply for reply in self._waiting if reply.stop.is_set()]
        waiting = [reply for reply in self._waiting if not reply.stop.is_set()]
        room = max(0, self.settings.max_rows - self.rows)
        taken += waiting[:room]
        self._waiting = collections.deque(waiting[room:])
        return taken

    def _admit(self, arrivals: list[ReplyInFlight]) -> None:
        """Prefill the replies that arrived, per version, and add their rows to that version's batch."""
        by_version: dict[int, list[ReplyInFlight]] = {}
        for reply in arrivals:
            if reply.stop.is_set():
                self._end(reply, stopped=True)
            else:
                by_version.setdefault(id(reply.served), []).append(reply)
        for replies in by_version.values():
            try:
                kv, logits = self._prefill(replies)
            except BaseException as err:
                log.exception("prefill failed")
                for reply in replies:
                    self._end(reply, error=err)
                continue
            batch = self._batch_of(replies[0].served)
            if batch is None:
                batch = VersionBatch(replies[0].served, [], kv, torch.empty(0, dtype=torch.long, device=self.device))
                self._batches.append(batch)
            else:
                batch.kv.extend(kv)
            batch.replies.extend(replies)
            self.largest_batch = max(self.largest_batch, len(batch.replies))
            batch.next_tokens = torch.cat([batch.next_tokens, self._choose(replies, logits)])
            self._drop_ended(batch)

    def _batch_of(self, served: "ServedVersion") -> VersionBatch | None:
        return next((batch for batch in self._batches if batch.served is served), None)

    def _prefill(self, replies: list[ReplyInFlight]) -> tuple[BatchCache, torch.Tensor]:
        """One forward pass over the new replies' prompts, each after the cached system prompt where it has it.

        Rows are laid out [system prompt][padding][the rest of the prompt], so every row's last column is
        its last prompt token; without a cached prefix it is plain left padding.
        """
        served = replies[0].served
        prompt_cache = served.prompt_cache
        prefix = 0
        if prompt_cache is not None and all(prompt_cache.starts(reply.prompt_ids) for reply in replies):
            prefix = prompt_cache.length
        rests = [reply.prompt_ids[prefix:] for reply in replies]
        width = max(rest.shape[0] for rest in rests)
        ids = torch.full((len(rests), width), self.tokenizer.pad_token_id, dtype=torch.long, device=self.device)
        rest_mask = torch.zeros((len(rests), width), dtype=torch.long, device=self.device)
        for row, rest in enumerate(rests):
            ids[row, width - rest.shape[0]:] = rest
            rest_mask[row, width - rest.shape[0]:] = 1
        positions = (prefix + rest_mask.cumsum(dim=1) - 1).clamp(min=prefix)
        mask = torch.cat([rest_mask.new_ones((len(rests), prefix)), rest_mask], dim=1)
        cache = prompt_cache.copies(len(rests)) if prefix else DynamicCache()
        output = served.model(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache,
                              use_cache=True, logits_to_keep=1)
        check_mergeable(output.past_key_values)
        return BatchCache(output.past_key_values, mask), output.logits[:, -1]

    def _step(self, batch: VersionBatch) -> None:
        """One token for every reply of a version's batch; ended replies leave it."""
        self._drop_ended(batch)
        if not batch.replies:
            return
        try:
            positions = batch.kv.next_positions()[:, None]
            output = batch.served.model(input_ids=batch.next_tokens[:, None], attention_mask=batch.kv.grow(),
                                        position_ids=positions, past_key_values=batch.kv.cache, use_cache=True)
            batch.next_tokens = self._choose(batch.replies, output.logits[:, -1])
        except BaseException as err:
            log.exception("decoding step failed")
            for reply in batch.replies:
                self._end(reply, error=err)
            batch.replies = []
            self._batches.remove(batch)
            return
        self.steps += 1
        self._drop_ended(batch)

    def _choose(self, replies: list[ReplyInFlight], logits: torch.Tensor) -> torch.Tensor:
        """Each reply's next token from its row of logits; streams it, or ends the reply."""
        chosen = []
        for row, reply in enumerate(replies):
            token = self.sampler(reply.history(), logits[row:row + 1], reply.generator)
            chosen.append(token)
            if reply.first_token_seconds is None:
                reply.first_token_seconds = time.perf_counter() - reply.started
            reply.tokens.append(token)
            if token not in self.end_ids:
                reply.streamer.put(torch.tensor([token]))
        return torch.tensor(chosen, dtype=torch.long, device=self.device)

    def _drop_ended(self, batch: VersionBatch) -> None:
        """Take ended and stopped replies out of the batch (and the batch out of the loop once empty)."""
        keep = []
        for row, reply in enumerate(batch.replies):
            if reply.tokens and reply.tokens[-1] in self.end_ids:
                self._end(reply)
            elif len(reply.tokens) >= (reply.max_new_tokens or self.settings.max_new_tokens):
                self._end(reply)
            elif reply.stop.is_set():
                self._end(reply, stopped=True)
            else:
                keep.append(row)
        if len(keep) == len(batch.replies):
            return
        if not keep:
            self._batches.remove(batch)  # its version is freed when nothing else holds it
            batch.replies = []
            return
        rows = torch.tensor(keep, dtype=torch.long, device=self.device)
        batch.kv.keep(rows)
        batch.next_tokens = batch.next_tokens[rows]
        batch.replies = [batch.replies[row] for row in keep]

    def _end(self, reply: ReplyInFlight, stopped: bool = False, error: BaseException | None = None) -> None:
        reply.stopped, reply.error = stopped, error
        reply.streamer.end()
        self._finisher.submit(reply.finished, reply)
