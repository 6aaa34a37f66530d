"""One KTO round: rows in, a published adapter version out.

The round trains a LoRA adapter with TRL's KTOTrainer on a twin of the frozen base (same weight
storage, its own module tree), so TRL may toggle adapters and train mode freely while chat keeps
generating from the serving tree. The reference is the base with the adapter off, the same in
every round. The adapter continues from the parent version's weights when the LoRA shape matches.
"""

from __future__ import annotations

import gc
import hashlib
import logging
import math
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from datasets import Dataset
from peft import get_peft_model_state_dict, set_peft_model_state_dict
from safetensors.torch import load_file
from transformers import TrainerCallback
from trl import KTOTrainer
from trl.trainer import kto_trainer
from trl.trainer import utils as trl_utils

from .config import AppSettings
from .data import class_weights
from .evaluate import evaluate
from .frozen import keep_no_weight_copies
from .gate import GateReport
from .memory import release_free_memory
from .model import BaseModel, twin
from .prefix import fixed_model, share_prompt_prefix
from .versions import VersionInfo, VersionStore
from .yielding import attached, waiting_with

log = logging.getLogger(__name__)

ADAPTER_WEIGHTS = "adapter_model.safetensors"


@dataclass
class RoundHooks:
    """How a round talks to the app while it runs; every hook is optional."""

    progress: Callable[[int, int], None] = lambda step, total: None
    # Called at every pause point of the round's models (see yielding.py): blocks while chat is
    # generating, so a reply never waits on training nor shares the cores with it.
    yield_to_chat: Callable[[], None] = lambda: None


class _EarlyStopping(TrainerCallback):
    """Score the adapter on held-out rows every few steps; stop once it stops improving, keep the best.

    Seed document 001 found the best model at the peak of held-out reward accuracy; the score is
    AUC, with the reward margin breaking ties (AUC saturates at 1 on easy rows).
    """

    def __init__(self, base: BaseModel, rows: list[dict], every: int, patience: int, beta: float):
        self.base, self.rows, self.every, self.patience, self.beta = base, rows, every, patience, beta
        self.history: list[dict] = []
        self.best: tuple[float, float] | None = None
        self.best_step = 0
        self.best_weights: dict[str, torch.Tensor] | None = None
        self.stale = 0
        self.max_steps = 0

    def on_step_end(self, args, state, control, model=None, **kwargs):
        self.max_steps = state.max_steps
        if state.global_step % self.every and state.global_step != state.max_steps:
            return
        model.eval()
        result = evaluate(self.base, model, self.rows, f"step {state.global_step}", beta=self.beta)
        model.train()
        self.history.append({"step": state.global_step, "auc": result.auc, "margin": result.margin, "kl": result.kl})
        score = (round(result.auc, 3), result.margin)
        if self.best is None or score > self.best:
            self.best, self.best_step, self.stale = score, state.global_step, 0
            self.best_weights = {k: v.detach().clone() for k, v in get_peft_model_state_dict(model).items()}
        else:
            self.stale += 1
            if self.stale >= self.patience:
                control.should_training_stop = True

    def restore_best(self, model) -> None:
        if self.best_weights is not None:
            set_peft_model_state_dict(model, self.best_weights)

    def summary(self, final_step: int) -> dict[str, Any]:
        return {"scores": self.history, "best_step": self.best_step, "stopped_at": final_step,
                "stopped_early": final_step < self.max_steps, "restored_best": self.best_step != final_step}


class ReferenceCache:
    """Reference log-probs of (prompt, completion) token sequences under the fixed base, kept across rounds.

    The reference is the base with the adapter off, the same in every round, so a vote's reference
    log-prob never changes: a round computes it only for rows (and KL pairs) it has not seen.
    """

    def __init__(self) -> None:
        self._logps: dict[bytes, float] = {}

    @staticmethod
    def key(prompt_ids: list[int], completion_ids: list[int]) -> bytes:
        return hashlib.sha256(repr((prompt_ids, completion_ids)).encode()).digest()

    def get(self, key: bytes) -> float | None:
        return self._logps.get(key)

    def put(self, key: bytes, logp: float) -> None:
        self._logps[key] = logp

    def __len__(self) -> int:
        return len(self._logps)


# Vocabulary columns TRL's fused LM head projects at once (TRL: 32768).
VOCABULARY_TILE = 8192


@contextmanager
def _faster_trl() -> Iterator[None]:
    """Four swaps of TRL module globals, while our trainer is built and trains (one round at a time).

    - The reference model's fingerprint is its config, not a hash of every weight: TRL names its
      precompute cache after a hash that copies the whole model through numpy (+500 MiB peak RSS
      here). Within one process the reference is always the same frozen base, and ReferenceCache is
      keyed by token ids, so the config is fingerprint enough.
    - The fused LM head scores only labelled positions on a CPU too. TRL does that on Triton
      devices only (elsewhere a varying shape would recompile); on a CPU nothing recompiles, and
      projecting every prompt position onto the 49k vocabulary was a third of a step here.
    - The fused forward encodes the rows' shared prompt prefix once per batch (prefix.py).
    - The fused head projects onto VOCABULARY_TILE columns at a time, not 32k: each tile's bf16 copy
      of the head and its fp32 temporaries were over 100 MiB of a round's peak memory here.
    """
    saved = (kto_trainer.hash_module, kto_trainer.add_fused_lm_head, trl_utils._use_triton,
             trl_utils._CHUNKED_LOGPROB_CHUNK_SIZE)
    add_fused_lm_head, use_triton = saved[1], saved[2]

    def add_fused_and_shared_prefix(model, **kwargs):
        add_fused_lm_head(model, **kwargs)
        share_prompt_prefix(model)

    kto_trainer.hash_module = lambda module: hashlib.sha256(module.config.to_json_string().encode()).hexdigest()
    kto_trainer.add_fused_lm_head = add_fused_and_shared_prefix
    trl_utils._use_triton = lambda device: device.type == "cpu" or use_triton(device)
    trl_utils._CHUNKED_LOGPROB_CHUNK_SIZE = VOCABULARY_TILE
    try:
        yield
    finally:
        (kto_trainer.hash_module, kto_trainer.add_fused_lm_head, trl_utils._use_triton,
         trl_utils._CHUNKED_LOGPROB_CHUNK_SIZE) = saved


class _CachedReferenceKTOTrainer(KTOTrainer):
    """TRL's KTOTrainer with reference log-probs from a ReferenceCache where it has them, and `_faster_trl`."""

    def __init__(self, *args, reference_cache: ReferenceCache, **kwargs):
        self.reference_cache = reference_cache
        self.reference_rows_computed = 0
        with _faster_trl():
            super().__init__(*args, **kwargs)

    def train(self, *args, **kwargs):
        with _faster_trl():
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
            with fixed_model(self.model.get_base_model()):  # the reference: the frozen base, adapter off
                computed = super()._precompute_ref_logps(dataset.select(missing), name, batch_size)
            for column in columns:
                for i, logp in zip(missing, computed[column]):
                    cache.put(keys[column][i], float(logp))
        self.reference_rows_computed += len(missing)
        for column in columns:
            dataset = dataset.add_column(column, [cache.get(k) for k in keys[column]])
        return dataset


class _RoundCallback(TrainerCallback):
    def __init__(self, hooks: RoundHooks):
        self.hooks = hooks

    def on_train_begin(self, args, state, control, **kwargs):
        self.hooks.progress(0, state.max_steps)

    def on_step_begin(self, args, state, control, **kwargs):
        self.hooks.yield_to_chat()

    def on_substep_end(self, args, state, control, **kwargs):
        self.hooks.yield_to_chat()

    def on_step_end(self, args, state, control, **kwargs):
        release_free_memory()  # a step's activations and recomputed layers
        self.hooks.progress(state.global_step, state.max_steps)


@dataclass
class RoundResult:
    version: str
    meta: dict[str, Any] = field(default_factory=dict)
    gate: GateReport | None = None

    @property
    def passed(self) -> bool:
        return self.gate is None or self.gate.passed


def round_steps(n_rows: int, batch_size: int, accumulation: int, epochs: float, max_steps: int) -> int:
    """Optimizer steps of a round: enough for `epochs` passes over the rows, never above `max_steps`."""
    return max(1, min(max_steps, math.ceil(epochs * n_rows / (batch_size * accumulation))))


def _parent_weights(parent: VersionInfo, model) -> dict[str, torch.Tensor] | None:
    """The parent's adapter tensors if they fit this round's adapter exactly (same names and shapes)."""
    if parent.path is None:
        return None
    saved = load_file(parent.path / ADAPTER_WEIGHTS)
    expected = get_peft_model_state_dict(model)
    if saved.keys() != expected.keys() or any(saved[k].shape != expected[k].shape for k in saved):
        log.warning("%s has another LoRA shape; this round starts a fresh adapter", parent.name)
        return None
    return saved


def train_round(base: BaseModel, rows: list[dict], parent: VersionInfo, settings: AppSettings,
                versions: VersionStore, meta: dict[str, Any] | None = None,
                hooks: RoundHooks | None = None, held_out: list[dict] | None = None,
                gate: Callable[[Path], GateReport] | None = None,
                reference_cache: ReferenceCache | None = None) -> RoundResult:
    """Train one round on `rows` (prompt, completion, label) and publish it as a new version.

    With `held_out` rows and GATE_EARLY_STOP_EVERY > 0 the round stops early once its held-out
    score stops improving, and keeps its best weights. `gate(adapter_dir)` judges the finished
    adapter; its report goes into the version's metadata (the caller decides whether it serves).
    `reference_cache` keeps the base's log-probs of rows across rounds (a fresh one when None).
    Raises on any failure; then nothing is published and the serving pointer is untouched.
    """
    hooks = hooks or RoundHooks()
    n_desirable = sum(1 for r in rows if r["label"])
    n_undesirable = len(rows) - n_desirable
    desirable_weight, undesirable_weight = class_weights(n_desirable, n_undesirable)
    defaults = settings.round_config(output_dir=".")
    steps = round_steps(len(rows), defaults.per_device_train_batch_size, defaults.gradient_accumulation_steps,
                        defaults.num_train_epochs, defaults.max_steps)
    adapter = settings.adapter_config()
    started = time.time()

    model = twin(base.model)
    keep_no_weight_copies(model)  # before TRL wraps the linears in LoRA layers; see frozen.py
    # Hooks go on the twin's linear layers before TRL wraps them in LoRA layers (they stay the
    # wrapped base layers), so the reference pass in the trainer's constructor pauses for chat too.
    with versions.staging() as staging, waiting_with(hooks.yield_to_chat):
        with tempfile.TemporaryDirectory(prefix="round-") as scratch, attached(model):
            args = settings.round_config(output_dir=scratch, max_steps=steps, desirable_weight=desirable_weight,
                                         undesirable_weight=undesirable_weight)
            callbacks: list[TrainerCallback] = [_RoundCallback(hooks)]
            early = None
            if held_out and settings.gate.early_stop_every > 0:
                early = _EarlyStopping(base, held_out, settings.gate.early_stop_every,
                                       settings.gate.early_stop_patience, args.beta)
                callbacks.append(early)
            cache = ReferenceCache() if reference_cache is None else reference_cache
            trainer = _CachedReferenceKTOTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows),
                                                 processing_class=base.tokenizer, peft_config=adapter,
                                                 callbacks=callbacks, reference_cache=cache)
            # Loaded after TRL wrapped the twin, into its only adapter: the reference stays the base
            # (adapter disabled) rather than a copy of the parent, as TRL would make from a PeftModel.
            parent_weights = _parent_weights(parent, trainer.model)
            continued = parent_weights is not None
            if continued:
                set_peft_model_state_dict(trainer.model, parent_weights)
            prepared = time.time()
            trainer.train()
            trained = time.time()
            if early is not None:
                early.restore_best(trainer.model)
            trainer.model.save_pretrained(staging)
            state = trainer.state
            reference_rows_computed = trainer.reference_rows_computed
        # The trainer, its optimizer and the training tree go before the gate builds its own models.
        del trainer, model
        gc.collect()  # the Trainer and its callback handler refer to each other
        release_free_memory()
        report = gate(staging) if gate is not None else None
        gated = time.time()
        metrics = [entry for entry in state.log_history if "loss" in entry]
        summary = state.log_history[-1] if state.log_history else {}
        record = {
            **(meta or {}),
            "parent": parent.name,
            "continued_from_parent": continued,
            "base_model": base.source,
            "rows": len(rows),
            "label_counts": {"desirable": n_desirable, "undesirable": n_undesirable},
            "weights": {"desirable": desirable_weight, "undesirable": undesirable_weight},
            "steps": state.global_step,
            "reference_rows_computed": reference_rows_computed,
            "recipe": {"beta": args.beta, "learning_rate": args.learning_rate,
                       "lr_scheduler_type": getattr(args.lr_scheduler_type, "value", args.lr_scheduler_type),
                       "r": adapter.r, "lora_alpha": adapter.lora_alpha, "lora_dropout": adapter.lora_dropout,
                       "batch_size": args.per_device_train_batch_size,
                       "gradient_accumulation_steps": args.gradient_accumulation_steps},
            "metrics": metrics,
            "train_summary": {k: v for k, v in summary.items() if k.startswith("train_")},
            "early_stopping": early.summary(state.global_step) if early is not None else None,
            "gate": report.to_dict() if report is not None else None,
            "timings": {"prepare_s": prepared - started, "train_s": trained - prepared, "gate_s": gated - trained,
                        "total_s": time.time() - started},
        }
        name = versions.publish(staging, record)
    release_free_memory()
    log.info("round published %s: %d rows, %d steps, %.1f s", name, len(rows), record["steps"],
             record["timings"]["total_s"])
    return RoundResult(version=name, meta=versions.get(name).meta, gate=report)
