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
from dataclasses import dataclass, field
from typing import Callable

import torch
from tqdm.auto import tqdm

from ..data import as_text_messages, special_texts, without_turn_end
from ..serve.model import BaseModel, twin
from ..train.memory import release_free_memory
from ..train.yielding import attached


@dataclass
class EvalResult:
    version: str
    rows: int
    auc: float
    margin: float
    kl: float
    seconds: float
    rewards_liked: list[float] = field(default_factory=list, repr=False)
    rewards_disliked: list[float] = field(default_factory=list, repr=False)
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
# Rows scored together. Two: a round scores while chat serves, and each row in a batch adds its
# layers' transient activations (tens of MiB at 400 tokens) to the peak. Speed against four was not
# measured apart; the gate of a live round took 124 s at two, 97-117 s at four on faster runs.
ROWS_PER_BATCH = 2


def _completion_hidden(model: torch.nn.Module, input_ids: torch.Tensor, attention: torch.Tensor,
                       mask: torch.Tensor) -> torch.Tensor:
    """Last hidden states at the positions that predict completion tokens, (positions, hidden)."""
    hidden = model.get_decoder()(input_ids=input_ids, attention_mask=attention, use_cache=False).last_hidden_state
    return hidden[:, :-1][mask]


# A row's score under one model: log-ratio to the base, KL summed over its completion positions, positions,
# and the completion's log-likelihood under the base.
RowScore = tuple[float, float, int, float]


def row_key(encoded: tuple[list[int], int]) -> bytes:
    """A scored row's identity: its token ids and where its completion starts."""
    return hashlib.sha256(repr(encoded).encode()).digest()


@torch.inference_mode()
def _score_batch(model: torch.nn.Module, reference_model: torch.nn.Module, batch: list[tuple[list[int], int]],
                 pad_id: int) -> list[RowScore]:
    longest = max(len(ids) for ids, _ in batch)
    input_ids = torch.full((len(batch), longest), pad_id, dtype=torch.long)
    attention = torch.zeros_like(input_ids)
    completion = torch.zeros_like(input_ids, dtype=torch.bool)
    for i, (ids, start) in enumerate(batch):
        input_ids[i, :len(ids)] = torch.tensor(ids)
        attention[i, :len(ids)] = 1
        completion[i, start:len(ids)] = True
    device = next(model.parameters()).device
    input_ids, attention, completion = input_ids.to(device), attention.to(device), completion.to(device)
    mask = completion[:, 1:]
    targets = input_ids[:, 1:][mask]
    rows = torch.arange(len(batch), device=device)[:, None].expand_as(mask)[mask]
    # Only completion positions reach the LM head, a chunk at a time: the prompt's are never scored.
    policy_hidden = _completion_hidden(model, input_ids, attention, mask)
    reference_hidden = _completion_hidden(reference_model, input_ids, attention, mask)
    head, reference_head = model.get_output_embeddings(), reference_model.get_output_embeddings()
    log_ratios = torch.zeros(len(batch), dtype=torch.float32, device=device)
    kl_sums = torch.zeros(len(batch), dtype=torch.float32, device=device)
    reference_logps = torch.zeros(len(batch), dtype=torch.float32, device=device)
    for start in range(0, targets.shape[0], POSITIONS_PER_CHUNK):
        chunk = slice(start, start + POSITIONS_PER_CHUNK)
        policy = torch.log_softmax(head(policy_hidden[chunk]).float(), -1)
        reference = torch.log_softmax(reference_head(reference_hidden[chunk]).float(), -1)
        target = targets[chunk, None]
        reference_target = reference.gather(-1, target)[:, 0]
        log_ratios.index_add_(0, rows[chunk], policy.gather(-1, target)[:, 0] - reference_target)
        reference_logps.index_add_(0, rows[chunk], reference_target)
        # KL = sum p * (log p - log q), in place: no third vocabulary-wide tensor.
        difference = reference.neg_().add_(policy)
        kl_sums.index_add_(0, rows[chunk], policy.exp_().mul_(difference).sum(-1))
    return list(zip(log_ratios.tolist(), kl_sums.tolist(), mask.sum(1).tolist(), reference_logps.tolist()))


def evaluate(base: BaseModel, model: torch.nn.Module | Callable[[], torch.nn.Module] | None, rows: list[dict],
             version: str, beta: float = 0.1,
             batch_size: int = ROWS_PER_BATCH, max_length: int = 1024, progress: bool = False,
             known: dict[bytes, RowScore] | None = None) -> EvalResult:
    """Score `model` (a version of the base, LoRA merged or not; None for the base itself) on conversational rows.

    `known` holds this very model's scores of rows from earlier calls (see `row_key`): those rows are
    not run again, and the rows scored now are added to it. `model` may then be a function that
    builds the model, called only if some row is missing.
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
    missing = sorted({key: i for i, key in enumerate(keys) if key not in known}.values(),
                     key=lambda i: len(encoded[i][0]))  # similar lengths pad less
    if missing:
        if not isinstance(model, torch.nn.Module):
            model = model()
        model.eval()
        reference = twin(base.model)  # the trainer's private tree: chat's own tree never gets pause hooks
        batches = [missing[i:i + batch_size] for i in range(0, len(missing), batch_size)]
        with attached(model), attached(reference):
            for indices in tqdm(batches, desc=f"eval {version}", disable=not progress):
                scores = _score_batch(model, reference, [encoded[i] for i in indices], base.tokenizer.pad_token_id)
                for i, row_score in zip(indices, scores):
                    known[keys[i]] = row_score
        release_free_memory()  # the scoring's vocabulary-wide chunks; training or chat comes next
    rewards = [beta * known[key][0] for key in keys]
    kl_sum, kl_tokens = sum(known[key][1] for key in keys), sum(known[key][2] for key in keys)
    liked = [r for r, y in zip(rewards, labels) if y]
    disliked = [r for r, y in zip(rewards, labels) if not y]
    margin = sum(liked) / len(liked) - sum(disliked) / len(disliked) if liked and disliked else 0.0
    base_logps = [known[key][3] for key in keys]
    policy_logps = [base + known[key][0] for base, key in zip(base_logps, keys)]
    return EvalResult(version, len(rows), auc(liked, disliked), margin, kl_sum / max(kl_tokens, 1),
                      time.perf_counter() - started, liked, disliked, scored_rows=len(missing),
                      pair_accuracy=pair_accuracy(rewards, pairs),
                      pair_log_ratios=[policy_logps[c] - policy_logps[r] for c, r in pairs],
                      base_pair_log_ratios=[base_logps[c] - base_logps[r] for c, r in pairs])
