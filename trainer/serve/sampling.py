"""The next token of a reply: `generate`'s sampling (repetition penalty, temperature, top-p), fast.

The penalty and the temperature are transformers' own logits processors, applied to a row with that
row's own tokens, as `generate` would. Top-p is the same rule as transformers' TopPLogitsWarper (keep
the most likely tokens until their mass reaches `top_p`; a token is kept iff the mass of the tokens
above it is below `top_p`), found from a shortlist of the SHORTLIST most likely tokens instead of a
sort of the whole vocabulary: profiled on 16 probe replies at once here, the warper's full sort of
49k scores per row and the draw over all of them were 45% of the decode loop's time. The kept
tokens and their probabilities are the warper's; a row whose nucleus reaches past the shortlist
(a nearly flat distribution) takes the warper's own path.
"""

from __future__ import annotations

import torch
from transformers import (
    LogitsProcessorList,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopPLogitsWarper,
)

from ..config import ChatSettings

# Tokens a nucleus is looked for among; a temperature-0.7 chat nucleus at top-p 0.9 holds a few dozen.
SHORTLIST = 256


def sampling_processors(settings: ChatSettings) -> LogitsProcessorList:
    """`generate`'s processors for the chat settings, in its order: penalties first, then warpers."""
    processors = LogitsProcessorList()
    if settings.repetition_penalty != 1.0:
        processors.append(RepetitionPenaltyLogitsProcessor(settings.repetition_penalty))
    if settings.temperature > 0:
        processors.append(TemperatureLogitsWarper(settings.temperature))
        if settings.top_p < 1.0:
            processors.append(TopPLogitsWarper(settings.top_p))
    return processors


def nucleus(scores: torch.Tensor, top_p: float, shortlist: int = SHORTLIST) -> tuple[torch.Tensor, torch.Tensor]:
    """The tokens TopPLogitsWarper(top_p) keeps of `scores` (vocabulary,), as (ids (k,), probabilities (k,)
    summing to 1, most likely first): what `multinomial(softmax(warped scores))` draws from."""
    scores = scores.detach().float()
    probs = torch.softmax(scores, -1)
    values, ids = probs.topk(min(shortlist, probs.numel()))
    if float(values.sum()) < top_p:  # the nucleus reaches past the shortlist: the warper's full sort
        warped = TopPLogitsWarper(top_p)(None, scores[None])[0]
        ids = torch.isfinite(warped).nonzero()[:, 0]
        values = probs[ids]
    else:
        keep = (values.cumsum(0) - values) < top_p  # the mass above each token
        keep[0] = True  # min_tokens_to_keep=1
        ids, values = ids[keep], values[keep]
    return ids, values / values.sum()


class TokenSampler:
    """Chooses each reply's next token with the chat's sampling settings (greedy at temperature 0), as they are
    at each call (an admin or a test may change them while the app runs)."""

    def __init__(self, settings: ChatSettings):
        self.settings = settings
        self._built: tuple[LogitsProcessorList, float | None] = (LogitsProcessorList(), None)
        self._built_for: tuple | None = None  # the (temperature, top_p, repetition_penalty) `_built` is for

    def _processors(self) -> tuple[LogitsProcessorList, float | None]:
        """The penalty and temperature processors, and top-p (None: off), for the settings as they are now."""
        key = (self.settings.temperature, self.settings.top_p, self.settings.repetition_penalty)
        if key != self._built_for:
            processors, top_p = sampling_processors(self.settings), None
            if processors and isinstance(processors[-1], TopPLogitsWarper):
                top_p, processors = processors[-1].top_p, LogitsProcessorList(processors[:-1])
            self._built, self._built_for = (processors, top_p), key
        return self._built

    def __call__(self, history: torch.Tensor, logits: torch.Tensor, generator: torch.Generator | None) -> int:
        """The next token for one reply: `history` (1, tokens so far), `logits` (1, vocabulary) of its last
        position; `generator` None draws from torch's global generator."""
        processors, top_p = self._processors()
        scores = processors(history, logits.float())
        if self.settings.temperature <= 0:
            return int(scores.argmax(dim=-1))
        if top_p is None:
            return int(torch.multinomial(torch.softmax(scores, dim=-1), 1, generator=generator))
        ids, probs = nucleus(scores[0], top_p)
        return int(ids[torch.multinomial(probs, 1, generator=generator)])
