"""Scoring a version on preference rows it never trained on: AUC, reward margin, KL to the base.

The implicit reward of a completion is KTO's: beta * (log pi_theta(y|x) - log pi_ref(y|x)), with
the reference the frozen base model (the adapter off, as in training). A version that learned the persona
gives liked completions higher rewards than disliked ones: AUC is the chance that a random liked
row outscores a random disliked one (0.5 = no preference). KL is the mean per-token KL divergence
KL(pi_theta || pi_ref) over the completion positions, from full next-token distributions.
The base is its own reference: every reward is 0, AUC 0.5 and KL 0 by definition.

Rows that share a prompt, one liked and one disliked (the seed eval split has two of each per paper;
a pick gives one of each), also form held-out pairs: rewards/accuracy is the share of pairs whose
liked reply gets the higher reward (DPO's metric), and the chosen-to-rejected log-likelihood ratio
log pi(y_c|x) - log pi(y_r|x) of each pair, under the model and under the base, is the AOT paper's
paired picture.
"""

from __future__ import annotations

import hashlib
import json
import time
import weakref
from dataclasses import dataclass, field
from typing import Callable, NamedTuple

import torch
from tqdm.auto import tqdm

from ..data import as_text_messages, special_texts, without_turn_end
from ..model.base import BaseModel, twin
from ..model.caches import expanded
from ..model.memory import release_free_memory
from ..model.yielding import attached


@dataclass
class EvalResult:
    version: str
    rows: int
    auc: float
    margin: float
    kl: float
    seconds: float
    rewards_desirable: list[float] = field(default_factory=list, repr=False)
    rewards_undesirable: list[float] = field(default_factory=list, repr=False)
    scored_rows: int = 0  # rows run through the model in this call (the others were known)
    pair_accuracy: float | None = None  # None: no pairs among the rows
    pair_log_ratios: list[float] = field(default_factory=list, repr=False)       # log pi(y_c) - log pi(y_r)
    base_pair_log_ratios: list[float] = field(default_factory=list, repr=False)  # the same under the base


def pair_indices(rows: list[dict]) -> list[tuple[int, int]]:
    """(liked row, disliked row) index pairs: rows of the same prompt, liked and disliked matched in order."""
    liked: dict[str, list[int]] = {}
    disliked: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        key = json.dumps(row["prompt"], sort_keys=True)
        (liked if row["label"] else disliked).setdefault(key, []).append(i)
    return [pair for key in liked for pair in zip(liked[key], disliked.get(key, []))]


def pair_accuracy(rewards: list[float], pairs: list[tuple[int, int]]) -> float | None:
    """Share of pairs whose liked reply outscores the disliked one, ties counting one half; None without pairs."""
    if not pairs:
        return None
    return sum(1.0 if rewards[c] > rewards[r] else 0.5 if rewards[c] == rewards[r] else 0.0
               for c, r in pairs) / len(pairs)


def auc(positive: list[float], negative: list[float]) -> float:
    """P(random positive > random negative), ties counting one half (the Mann-Whitney U statistic); 0.5 (chance)
    when a label has no rows: nothing to rank, so no version is better or worse by it (a persona without
    seed data, before its gate votes hold both labels)."""
    if not positive or not negative:
        return 0.5
    pos = torch.tensor(positive, dtype=torch.float64)[:, None]
    neg = torch.tensor(negative, dtype=torch.float64)[None, :]
    return float(((pos > neg).double() + 0.5 * (pos == neg).double()).mean())


def _encode(tokenizer, row: dict, max_length: int, specials: list[str] | None = None) -> tuple[list[int], int]:
    """Token ids of prompt + completion, and where the completion starts; typed special tokens stay text, as in
    training (data.as_text_messages; `specials`: the tokenizer's special_texts, computed if not given)."""
    specials = special_texts(tokenizer) if specials is None else specials
    messages, completion = as_text_messages(row["prompt"], specials), as_text_messages(row["completion"], specials)
    prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_dict=True)["input_ids"]
    full = tokenizer.apply_chat_template(messages + completion, return_dict=True)["input_ids"]
    if full[:len(prompt)] != prompt:
        raise ValueError("the chat template does not render the prompt as a prefix of prompt + completion")
    if not row.get("ends_turn", True):  # scored as trained: a reply the model never ended stays open
        full = prompt + without_turn_end(full[len(prompt):], tokenizer.eos_token_id)
    return full[:max_length], min(len(prompt), max_length - 1)


# Completion positions projected onto the vocabulary at once: bounds the gate's memory (a full
# batch's log-softmax over 49k tokens, for two models, was over a gigabyte here). Each chunk holds
# two (positions x vocabulary) fp32 tensors, 12.5 MiB apiece at 64 positions of SmolLM2.
POSITIONS_PER_CHUNK = 64
# Rows of one prompt scored together, continuing from the prompt's keys and values encoded once: the
# seed eval split has four replies per paper, and a prompt is two thirds of a row's tokens (172 of 256
# on average), so a paper's four rows cost 508 tokens of forward instead of 1024.
ROWS_PER_BATCH = 4
# The base's hidden states at completion positions, per scored row (row_key): the reference half of
# every score, the same for every version, computed once per process. 84 positions x 576 floats per
# seed row: 190 KiB; bounded, the oldest rows dropped first.
REFERENCE_CACHE_BYTES = 256 * 2**20


class ReferenceHiddenCache:
    """The reference model's last hidden states at a row's completion positions, (positions, hidden), by row."""

    def __init__(self, max_bytes: int = REFERENCE_CACHE_BYTES):
        self.max_bytes, self.bytes = max_bytes, 0
        self._rows: dict[bytes, torch.Tensor] = {}

    def get(self, key: bytes) -> torch.Tensor | None:
        return self._rows.get(key)

    def put(self, key: bytes, hidden: torch.Tensor) -> None:
        if key in self._rows:
            return
        self._rows[key] = hidden
        self.bytes += hidden.numel() * hidden.element_size()
        while self.bytes > self.max_bytes and len(self._rows) > 1:
            oldest = next(iter(self._rows))
            self.bytes -= self._rows[oldest].numel() * self._rows[oldest].element_size()
            del self._rows[oldest]


# One per base model (weakly held: a test's base goes with its cache).
_REFERENCE_CACHES: "weakref.WeakKeyDictionary[torch.nn.Module, ReferenceHiddenCache]" = weakref.WeakKeyDictionary()


def reference_cache(base: BaseModel) -> ReferenceHiddenCache:
    """The process's cache of `base`'s hidden states on scored rows."""
    return _REFERENCE_CACHES.setdefault(base.model, ReferenceHiddenCache())


def _completion_hidden(model: torch.nn.Module, batch: list[tuple[list[int], int]], pad_id: int) -> list[torch.Tensor]:
    """Last hidden states at the positions that predict each row's completion tokens, [(positions, hidden)].

    The rows share their prompt (batch_groups): it is encoded once, and every row continues from its keys and
    values from the prompt's last token on (whose output predicts the completion's first token)."""
    start = batch[0][1]
    decoder = model.get_decoder()
    device = next(model.parameters()).device
    prefix = torch.tensor(batch[0][0][:start - 1], device=device)
    continuations = [ids[start - 1:] for ids, _ in batch]
    longest = max(len(ids) for ids in continuations)
    input_ids = torch.full((len(batch), longest), pad_id, dtype=torch.long, device=device)
    attention = torch.zeros((len(batch), len(prefix) + longest), dtype=torch.long, device=device)
    attention[:, :len(prefix)] = 1
    for i, ids in enumerate(continuations):
        input_ids[i, :len(ids)] = torch.tensor(ids, device=device)
        attention[i, len(prefix):len(prefix) + len(ids)] = 1
    cache = None
    if len(prefix):
        cache = expanded(decoder(input_ids=prefix[None], use_cache=True).past_key_values, len(batch))
    hidden = decoder(input_ids=input_ids, attention_mask=attention, past_key_values=cache,
                     use_cache=cache is not None).last_hidden_state
    return [hidden[i, :len(ids) - 1] for i, ids in enumerate(continuations)]


class RowScore(NamedTuple):
    """A row's score under one model."""

    log_ratio: float       # log pi_theta(y|x) - log pi_ref(y|x), summed over the completion, nats
    kl_sum: float          # KL(pi_theta || pi_ref) summed over its completion positions, nats
    positions: int         # completion positions
    reference_logp: float  # log pi_ref(y|x), nats


def row_key(encoded: tuple[list[int], int]) -> bytes:
    """A scored row's identity: its token ids and where its completion starts."""
    return hashlib.sha256(repr(encoded).encode()).digest()


def batch_groups(indices: list[int], encoded: list[tuple[list[int], int]], size: int) -> list[list[int]]:
    """`indices` in batches of at most `size` rows of one prompt (the same ids before the completion), similar
    lengths together."""
    by_prompt: dict[tuple[int, ...], list[int]] = {}
    for i in indices:
        ids, start = encoded[i]
        by_prompt.setdefault(tuple(ids[:start]), []).append(i)
    batches = []
    for group in by_prompt.values():
        group.sort(key=lambda i: len(encoded[i][0]))
        batches += [group[i:i + size] for i in range(0, len(group), size)]
    return batches


def _autocast(model: torch.nn.Module, dtype: torch.dtype | None):
    device = next(model.parameters()).device.type
    return torch.autocast(device, dtype=dtype, enabled=dtype is not None)


@torch.inference_mode()
def _score_batch(model: torch.nn.Module, reference_hidden: list[torch.Tensor], batch: list[tuple[list[int], int]],
                 reference_head: torch.nn.Module, pad_id: int, autocast: torch.dtype | None) -> list[RowScore]:
    with _autocast(model, autocast):
        policy_hidden = torch.cat(_completion_hidden(model, batch, pad_id))
    reference_all = torch.cat(reference_hidden).to(policy_hidden.device)
    targets = torch.tensor([t for ids, start in batch for t in ids[start:]], device=policy_hidden.device)
    rows = torch.tensor([i for i, (ids, start) in enumerate(batch) for _ in ids[start:]], device=policy_hidden.device)
    head, device = model.get_output_embeddings(), policy_hidden.device
    log_ratios = torch.zeros(len(batch), dtype=torch.float32, device=device)
    kl_sums = torch.zeros(len(batch), dtype=torch.float32, device=device)
    reference_logps = torch.zeros(len(batch), dtype=torch.float32, device=device)
    # Only completion positions reach the LM head, a chunk at a time: the prompt's are never scored.
    for start in range(0, targets.shape[0], POSITIONS_PER_CHUNK):
        chunk = slice(start, start + POSITIONS_PER_CHUNK)
        with _autocast(model, autocast):
            policy_logits = head(policy_hidden[chunk])
        policy = torch.log_softmax(policy_logits.float(), -1)
        reference = torch.log_softmax(reference_head(reference_all[chunk].to(reference_head.weight.dtype)).float(), -1)
        target = targets[chunk, None]
        reference_target = reference.gather(-1, target)[:, 0]
        log_ratios.index_add_(0, rows[chunk], policy.gather(-1, target)[:, 0] - reference_target)
        reference_logps.index_add_(0, rows[chunk], reference_target)
        # KL = sum p * (log p - log q), in place: no third vocabulary-wide tensor.
        difference = reference.neg_().add_(policy)
        kl_sums.index_add_(0, rows[chunk], policy.exp_().mul_(difference).sum(-1))
    positions = [len(ids) - start for ids, start in batch]
    return [RowScore(*values) for values in zip(log_ratios.tolist(), kl_sums.tolist(), positions,
                                                 reference_logps.tolist())]


@torch.inference_mode()
def _reference_hidden(base: BaseModel, encoded: list[tuple[list[int], int]], keys: list[bytes],
                      indices: list[int], batch_size: int) -> None:
    """Fill the reference cache for the rows at `indices` that it lacks, in fp32 (every version's score shares it)."""
    cache = reference_cache(base)
    missing = [i for i in indices if cache.get(keys[i]) is None]
    if not missing:
        return
    reference = twin(base.model)  # the trainer's private tree: chat's own tree never gets pause hooks
    with attached(reference):
        for batch in batch_groups(missing, encoded, batch_size):
            for i, hidden in zip(batch, _completion_hidden(reference, [encoded[i] for i in batch],
                                                           base.tokenizer.pad_token_id)):
                cache.put(keys[i], hidden.float().cpu().clone())


def evaluate(base: BaseModel, model: torch.nn.Module | Callable[[], torch.nn.Module] | None, rows: list[dict],
             version: str, beta: float = 0.1,
             batch_size: int = ROWS_PER_BATCH, max_length: int = 1024, progress: bool = False,
             known: dict[bytes, RowScore] | None = None, autocast: torch.dtype | None = None) -> EvalResult:
    """Score `model` (a version of the base, LoRA merged or not; None for the base itself) on conversational rows.

    `known` holds this very model's scores of rows from earlier calls (see `row_key`): those rows are
    not run again, and the rows scored now are added to it. `model` may then be a function that
    builds the model, called only if some row is missing. `autocast`: run the model under torch.autocast
    in that dtype (bf16 for an fp32 training tree, as its round trains); a model already in a half dtype (a
    serving copy) needs none. The base's side (the reference) is computed once per row and process, in its own
    dtype (ReferenceHiddenCache).
    """
    started = time.perf_counter()
    labels = [bool(r["label"]) for r in rows]
    pairs = pair_indices(rows)
    if model is None:  # the base is its own reference: every reward is 0
        liked, disliked = [0.0] * sum(labels), [0.0] * (len(labels) - sum(labels))
        return EvalResult(version, len(rows), auc(liked, disliked), 0.0, 0.0, time.perf_counter() - started,
                          liked, disliked, pair_accuracy=pair_accuracy([0.0] * len(rows), pairs))
    known = {} if known is None else known
    specials = special_texts(base.tokenizer)
    encoded = [_encode(base.tokenizer, r, max_length, specials) for r in rows]
    keys = [row_key(e) for e in encoded]
    missing = list({key: i for i, key in enumerate(keys) if key not in known}.values())
    if missing:
        if not isinstance(model, torch.nn.Module):
            model = model()
        model.eval()
        _reference_hidden(base, encoded, keys, missing, batch_size)
        cache, head = reference_cache(base), base.model.get_output_embeddings()
        with attached(model):
            for indices in tqdm(batch_groups(missing, encoded, batch_size), desc=f"eval {version}",
                                disable=not progress):
                hidden = [cache.get(keys[i]) for i in indices]
                if any(h is None for h in hidden):  # dropped from a full cache meanwhile: compute it again
                    _reference_hidden(base, encoded, keys, indices, batch_size)
                    hidden = [cache.get(keys[i]) for i in indices]
                scores = _score_batch(model, hidden, [encoded[i] for i in indices], head,
                                      base.tokenizer.pad_token_id, autocast)
                for i, row_score in zip(indices, scores):
                    known[keys[i]] = row_score
        release_free_memory()  # the scoring's vocabulary-wide chunks; training or chat comes next
    rewards = [beta * known[key].log_ratio for key in keys]
    kl_sum, kl_tokens = sum(known[key].kl_sum for key in keys), sum(known[key].positions for key in keys)
    liked = [r for r, y in zip(rewards, labels) if y]
    disliked = [r for r, y in zip(rewards, labels) if not y]
    margin = sum(liked) / len(liked) - sum(disliked) / len(disliked) if liked and disliked else 0.0
    base_logps = [known[key].reference_logp for key in keys]
    policy_logps = [base + known[key].log_ratio for base, key in zip(base_logps, keys)]
    return EvalResult(version, len(rows), auc(liked, disliked), margin, kl_sum / max(kl_tokens, 1),
                      time.perf_counter() - started, liked, disliked, scored_rows=len(missing),
                      pair_accuracy=pair_accuracy(rewards, pairs),
                      pair_log_ratios=[policy_logps[c] - policy_logps[r] for c, r in pairs],
                      base_pair_log_ratios=[base_logps[c] - base_logps[r] for c, r in pairs])
