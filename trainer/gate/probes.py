"""Probe replies: what visitors would get from a version, sampled the way chat samples them.

The gate asks each version for replies to held-out probe messages: `GATE_PROBE_PROMPTS` papers
drawn afresh each round from the seed eval split (or the persona's examples), `GATE_PROBE_SAMPLES`
replies each. They come from the copies that serve (merged, in CHAT_DTYPE), through the decode
loop that serves chat, with chat's sampling settings (temperature, top-p, repetition penalty) and
chat's token cap: a greedy reply from an unmerged fp32 twin is not the bot anybody meets (a
version whose greedy replies passed 92% of the checks had half of its sampled replies cut at the
cap). Every request has its own seed, and the candidate and the serving version answer the same
(message, seed) requests, so their replies compare pair by pair (common random numbers) and the
rule can tell a worse candidate from sampling noise (rule.py). All replies of both versions go in
one batch.
"""

from __future__ import annotations

import random
from typing import Callable

from ..contracts import ProbeReply, ReplySampler, ServedCopy
from .rubric import check_reply, finished, loops


def draw_probe_messages(pool: list[str], count: int, draw: int) -> list[str]:
    """`count` distinct messages of `pool`, a different draw for each `draw` (a round's number)."""
    unique = list(dict.fromkeys(pool))
    return random.Random(draw).sample(unique, min(count, len(unique)))


def probe_reply(message: str, seed: int, text: str, tokens: int, ended: bool, max_repetition: float) -> ProbeReply:
    """A reply's checks: finished needs both the end-of-turn token and a sentence's end."""
    return ProbeReply(message=message, seed=seed, text=text, tokens=tokens, ended=ended,
                      finished=ended and finished(text), loops=loops(text, max_repetition),
                      checks=check_reply(text, message).score)


def sample_probe_replies(server: ReplySampler, versions: list[ServedCopy], system_prompt: str,
                         looks: list[tuple[int, list[str]]], samples: int, max_new_tokens: int | None,
                         max_repetition: float, cancel: Callable[[], bool] | None = None) -> list[list[ProbeReply]]:
    """Each version's `samples` replies to each message of each look, a look being (draw, its messages), all in
    one batch: a list per version, in the same (message, seed) order for every version, look after look. Seeds
    depend on the look's draw, the message's place in it and the sample, so one version's replies sampled apart
    (Gate.prepare, one look at a time) are those it gives in a batch with another version or other looks. Raises
    SamplingCancelled once `cancel()` says so (Server.sample)."""
    requests = [(message, draw * 100_003 + 1_000 * index + sample)
                for draw, messages in looks for index, message in enumerate(messages) for sample in range(samples)]
    prompts = [[{"role": "system", "content": system_prompt}, {"role": "user", "content": message}]
               for message, _ in requests]
    completions = server.sample([(served, prompt, seed) for served in versions
                                 for prompt, (_, seed) in zip(prompts, requests)], max_new_tokens, cancel=cancel)
    replies = [probe_reply(message, seed, c.text, c.new_tokens, c.ended, max_repetition)
               for c, (message, seed) in zip(completions, requests * len(versions))]
    return [replies[i * len(requests):(i + 1) * len(requests)] for i in range(len(versions))]
