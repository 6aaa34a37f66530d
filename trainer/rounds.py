"""One KTO round: rows in, a published adapter version out.

The round trains a LoRA adapter with TRL's KTOTrainer on a twin of the frozen base (same weight
storage, its own module tree), so TRL may toggle adapters and train mode freely while chat keeps
generating from the serving tree. The reference is the base with the adapter off, the same in
every round. The adapter continues from the parent version's weights when the LoRA shape matches.
"""

from __future__ import annotations

import logging
import math
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from datasets import Dataset
import torch
from peft import get_peft_model_state_dict, set_peft_model_state_dict
from safetensors.torch import load_file
from transformers import TrainerCallback
from trl import KTOTrainer

from .config import AppSettings
from .data import class_weights
from .model import BaseModel, twin
from .versions import VersionInfo, VersionStore

log = logging.getLogger(__name__)

ADAPTER_WEIGHTS = "adapter_model.safetensors"


@dataclass
class RoundHooks:
    """How a round talks to the app while it runs; every hook is optional."""

    progress: Callable[[int, int], None] = lambda step, total: None
    # Called between micro-steps: blocks while chat is generating, so a reply never waits on training.
    yield_to_chat: Callable[[], None] = lambda: None


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
        self.hooks.progress(state.global_step, state.max_steps)


@dataclass
class RoundResult:
    version: str
    meta: dict[str, Any] = field(default_factory=dict)


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
                hooks: RoundHooks | None = None) -> RoundResult:
    """Train one round on `rows` (prompt, completion, label) and publish it as a new version.

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

    with versions.staging() as staging, tempfile.TemporaryDirectory(prefix="round-") as scratch:
        args = settings.round_config(output_dir=scratch, max_steps=steps, desirable_weight=desirable_weight,
                                     undesirable_weight=undesirable_weight)
        trainer = KTOTrainer(model=twin(base.model), args=args, train_dataset=Dataset.from_list(rows),
                             processing_class=base.tokenizer, peft_config=adapter,
                             callbacks=[_RoundCallback(hooks)])
        # Loaded after TRL wrapped the twin, into its only adapter: the reference stays the base
        # (adapter disabled) rather than a copy of the parent, as TRL would make from a PeftModel.
        parent_weights = _parent_weights(parent, trainer.model)
        continued = parent_weights is not None
        if continued:
            set_peft_model_state_dict(trainer.model, parent_weights)
        prepared = time.time()
        trainer.train()
        trained = time.time()
        trainer.model.save_pretrained(staging)
        metrics = [entry for entry in trainer.state.log_history if "loss" in entry]
        summary = trainer.state.log_history[-1] if trainer.state.log_history else {}
        record = {
            **(meta or {}),
            "parent": parent.name,
            "continued_from_parent": continued,
            "base_model": base.source,
            "rows": len(rows),
            "label_counts": {"desirable": n_desirable, "undesirable": n_undesirable},
            "weights": {"desirable": desirable_weight, "undesirable": undesirable_weight},
            "steps": trainer.state.global_step,
            "recipe": {"beta": args.beta, "learning_rate": args.learning_rate,
                       "lr_scheduler_type": getattr(args.lr_scheduler_type, "value", args.lr_scheduler_type),
                       "r": adapter.r, "lora_alpha": adapter.lora_alpha, "lora_dropout": adapter.lora_dropout,
                       "batch_size": args.per_device_train_batch_size,
                       "gradient_accumulation_steps": args.gradient_accumulation_steps},
            "metrics": metrics,
            "train_summary": {k: v for k, v in summary.items() if k.startswith("train_")},
            "timings": {"prepare_s": prepared - started, "train_s": trained - prepared,
                        "total_s": time.time() - started},
        }
        name = versions.publish(staging, record)
    log.info("round published %s: %d rows, %d steps, %.1f s", name, len(rows), record["steps"],
             record["timings"]["total_s"])
    return RoundResult(version=name, meta=versions.get(name).meta)
