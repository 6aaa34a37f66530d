"""TRL's trainers as a round uses them: reference log-probs from our cache, and faster paths.

Each change to TRL's private internals here is registered, with a digest of the code it was checked
against, in patches.py (`RELIED_ON`); tests/test_patches.py fails when that code changes.

- `ReferenceCachingKTOTrainer`, `kto_fast_paths`: reference log-probs from our cache, a cheap model
  fingerprint, the fused LM head on CPU over labelled positions only, in 8k-column tiles, and a
  hook after the fused head is installed (the shared prompt prefix); the unpaired AOT loss in place
  of KTO's (`unpaired_aot_margin`).
- `ReferenceCachingDPOTrainer`: the same fast paths, and reference log-probs of chosen and
  rejected replies from our cache.
"""

from __future__ import annotations

import hashlib
from contextlib import contextmanager, nullcontext
from typing import TYPE_CHECKING, Any, Callable, ContextManager, Iterator

import torch
import torch.nn.functional as F
from datasets import Dataset
from torch.utils.data import DataLoader
from trl import DPOTrainer, KTOTrainer
from trl.trainer import dpo_trainer, kto_trainer
from trl.trainer import utils as trl_utils

from ..data import without_turn_end
from ..model.memory import release_free_memory
from .losses import aot_unpaired_loss

if TYPE_CHECKING:
    from .reference import ReferenceCache

# Vocabulary columns TRL's fused LM head projects at once (TRL: 32768).
VOCABULARY_TILE = 8192


@contextmanager
def kto_fast_paths(extend_fused_head: Callable[[torch.nn.Module], None] | None = None) -> Iterator[None]:
    """Four swaps of TRL module globals while our trainer is built and trains (one round at a time).

    - The reference model's fingerprint is its config, not a hash of every weight: TRL names its
      precompute cache after a hash that copies the whole model through numpy (+500 MiB peak RSS
      here). Within one process the reference is always the same frozen base, and our reference
      cache is keyed by token ids, so the config is fingerprint enough.
    - The fused LM head scores only labelled positions on a CPU too. TRL does that on Triton
      devices only (elsewhere a varying shape would recompile); on a CPU nothing recompiles, and
      projecting every prompt position onto the 49k vocabulary was a third of a step here.
    - `extend_fused_head(model)` runs after TRL installs its fused head (the shared prompt prefix).
    - The fused head projects onto VOCABULARY_TILE columns at a time, not 32k: each tile's bf16 copy
      of the head and its fp32 temporaries were over 100 MiB of a round's peak memory here.
    """
    trainers = (kto_trainer, dpo_trainer)  # the same swaps in both trainers' modules
    saved = ([(m.hash_module, m.add_fused_lm_head) for m in trainers], trl_utils._use_triton,
             trl_utils._CHUNKED_LOGPROB_CHUNK_SIZE)
    add_fused_lm_head, use_triton = trl_utils.add_fused_lm_head, saved[1]

    def add_fused_and_extend(model, **kwargs):
        add_fused_lm_head(model, **kwargs)
        if extend_fused_head is not None:
            extend_fused_head(model)

    for module in trainers:
        module.hash_module = lambda model: hashlib.sha256(model.config.to_json_string().encode()).hexdigest()
        module.add_fused_lm_head = add_fused_and_extend
    trl_utils._use_triton = lambda device: device.type == "cpu" or use_triton(device)
    trl_utils._CHUNKED_LOGPROB_CHUNK_SIZE = VOCABULARY_TILE
    try:
        yield
    finally:
        for module, (hash_module, add_fused) in zip(trainers, saved[0]):
            module.hash_module, module.add_fused_lm_head = hash_module, add_fused
        trl_utils._use_triton, trl_utils._CHUNKED_LOGPROB_CHUNK_SIZE = saved[1], saved[2]


class _TrimsAfterReferenceBatches:
    """Heap pages freed by each batch of the reference pass go back to the OS before the next batch.

    Each batch's temporaries (rows padded to that batch's length) have sizes of their own, so glibc
    rarely reuses the last batch's free memory: measured on 8 batches of 4 rows (about 430 tokens),
    RSS climbed 1613 -> 2665 MiB over the pass without this, and stayed under 2023 MiB with it
    (a few ms a batch of about 3 s).
    """

    def compute_ref_log_probs(self, model, inputs):
        try:
            return super().compute_ref_log_probs(model, inputs)
        finally:
            release_free_memory()


class ReferenceCachingKTOTrainer(_TrimsAfterReferenceBatches, KTOTrainer):
    """TRL's KTOTrainer under `kto_fast_paths`, with reference log-probs from a `ReferenceCache` where it has them.

    `reference_scope(base_model)` wraps the reference pass over the rows the cache lacks (the base
    with the adapter off; see prefix.fixed_model). With `unpaired_aot_margin` set (and TRL's
    loss_type apo_zero_unpaired, which has no KL pass) the loss is the AOT paper's unpaired loss on
    the implicit rewards TRL computed (train/losses.py); TRL's metrics are logged as they are.
    """

    def __init__(self, *args, reference_cache: "ReferenceCache",
                 reference_scope: Callable[[torch.nn.Module], ContextManager] = lambda model: nullcontext(),
                 extend_fused_head: Callable[[torch.nn.Module], None] | None = None,
                 unpaired_aot_margin: float | None = None, **kwargs):
        self.unpaired_aot_margin = unpaired_aot_margin
        if unpaired_aot_margin is not None and kwargs["args"].loss_type != "apo_zero_unpaired":
            raise ValueError("the unpaired AOT loss reads the rewards of TRL's apo_zero_unpaired loss type")
        self.reference_cache = reference_cache
        self.reference_rows_computed = 0
        self._reference_scope = reference_scope
        self._extend_fused_head = extend_fused_head
        with kto_fast_paths(extend_fused_head):
            super().__init__(*args, **kwargs)

    def train(self, *args, **kwargs):
        with kto_fast_paths(self._extend_fused_head):
            return super().train(*args, **kwargs)

    def _precompute_ref_logps(self, dataset: Dataset, name: str, batch_size: int) -> Dataset:
        cache = self.reference_cache
        columns = {"ref_logps": "completion_ids"}
        if self.calculate_KL:
            columns["ref_KL_logps"] = "KL_completion_ids"
        keys = {column: [cache.key(p, c) for p, c in zip(dataset["prompt_ids"], dataset[source])]
                for column, source in columns.items()}
        missing = [i for i in range(len(dataset)) if any(cache.get(k[i]) is None for k in keys.values())]
        if missing:
            with self._reference_scope(self.model.get_base_model()):
                computed = super()._precompute_ref_logps(dataset.select(missing), name, batch_size)
            for column in columns:
                for i, logp in zip(missing, computed[column]):
                    cache.put(keys[column][i], float(logp))
        self.reference_rows_computed += len(missing)
        for column in columns:
            dataset = dataset.add_column(column, [cache.get(k) for k in keys[column]])
        return dataset

    def _prepare_dataset(self, dataset: Dataset, processing_class, args, dataset_name: str) -> Dataset:
        """TRL's, then the end of turn taken off every completion but those of liked replies that ended.

        The chat template closes every completion with the end-of-turn token, also a reply the model never
        ended (cut at the token cap, or stopped). Trained as written, a disliked cut reply teaches the model
        not to end there: replies grow, and more of them are cut. A disliked reply that did end is disliked
        for what it says, not for ending, yet its closing token is pushed down with the rest: with most
        votes down (5 up / 19 down is a typical round), the end of turn loses more than it gains and replies
        run to the cap (14-16 of 16 probe replies unfinished after a round, against 7-8 before). So only a
        liked, ended reply trains its end of turn; every other is trained open, as text. The KL completions
        are rotated again from them.
        """
        dataset = super()._prepare_dataset(dataset, processing_class, args, dataset_name)
        if "ends_turn" not in dataset.column_names:
            return dataset
        keeps_end = [bool(ended and liked) for ended, liked in zip(dataset["ends_turn"], dataset["label"])]
        if all(keeps_end):
            return dataset
        end = getattr(processing_class, "tokenizer", processing_class).eos_token_id
        completions = [ids if keep else without_turn_end(ids, end)
                       for ids, keep in zip(dataset["completion_ids"], keeps_end)]
        dataset = dataset.remove_columns("completion_ids").add_column("completion_ids", completions)
        if "KL_completion_ids" in dataset.column_names:
            batch = args.per_device_train_batch_size
            rotated = [completions[start:start + batch][-1:] + completions[start:start + batch][:-1]
                       for start in range(0, len(completions), batch)]
            dataset = dataset.remove_columns("KL_completion_ids").add_column(
                "KL_completion_ids", [ids for chunk in rotated for ids in chunk])
        return dataset

    def _compute_loss(self, model, inputs, return_outputs):
        if self.unpaired_aot_margin is None:
            return super()._compute_loss(model, inputs, return_outputs)
        recorder = _SigmoidInputs()
        kto_trainer.F = recorder
        try:
            result = super()._compute_loss(model, inputs, return_outputs)
        finally:
            kto_trainer.F = F
        labels = torch.as_tensor(inputs["label"]).bool()
        recorded = iter(recorder.inputs)
        empty = torch.zeros(0, device=labels.device)
        liked = next(recorded) if labels.any() else empty
        disliked = next(recorded) if not labels.all() else empty
        loss = aot_unpaired_loss(liked, disliked, self.unpaired_aot_margin)
        return (loss, result[1]) if return_outputs else loss


class _SigmoidInputs:
    """torch.nn.functional, as KTOTrainer's module sees it while one batch's loss is computed: it keeps what
    `sigmoid` was called on (beta * log-ratios: the implicit rewards, with their gradients)."""

    def __init__(self) -> None:
        self.inputs: list[torch.Tensor] = []

    def sigmoid(self, x: torch.Tensor) -> torch.Tensor:
        self.inputs.append(x)
        return F.sigmoid(x)

    def __getattr__(self, name: str) -> Any:
        return getattr(F, name)


class ReferenceCachingDPOTrainer(_TrimsAfterReferenceBatches, DPOTrainer):
    """TRL's DPOTrainer (dpo, ipo, aot) under `kto_fast_paths`, with the reference log-probs of chosen and rejected
    replies from a `ReferenceCache`: the reference is the fixed base, as in KTO rounds."""

    def __init__(self, *args, reference_cache: "ReferenceCache", **kwargs):
        self.reference_cache = reference_cache
        self.reference_rows_computed = 0
        with kto_fast_paths():
            super().__init__(*args, **kwargs)

    def train(self, *args, **kwargs):
        with kto_fast_paths():
            return super().train(*args, **kwargs)

    def _precompute_ref_logps(self, dataset: Dataset, name: str, batch_size: int) -> Dataset:
        cache = self.reference_cache
        columns = {"ref_chosen_logps": "chosen_ids", "ref_rejected_logps": "rejected_ids"}
        keys = {column: [cache.key(p, c) for p, c in zip(dataset["prompt_ids"], dataset[source])]
                for column, source in columns.items()}
        missing = [i for i in range(len(dataset)) if any(cache.get(k[i]) is None for k in keys.values())]
        loader = DataLoader(dataset.select(missing), batch_size=batch_size, collate_fn=self.data_collator)
        done = 0
        for batch in loader:
            batch = {k: v.to(self.accelerator.device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
            chosen, rejected = self.compute_ref_log_probs(self.model, batch)
            for offset, (c, r) in enumerate(zip(chosen.tolist(), rejected.tolist())):
                i = missing[done + offset]
                cache.put(keys["ref_chosen_logps"][i], c)
                cache.put(keys["ref_rejected_logps"][i], r)
            done += len(chosen)
        self.reference_rows_computed += len(missing)
        for column in columns:
            dataset = dataset.add_column(column, [cache.get(k) for k in keys[column]])
        return dataset
