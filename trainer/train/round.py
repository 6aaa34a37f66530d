"""One round: rows in, a published adapter version out.

The round trains a LoRA adapter with TRL's KTOTrainer (LOSS kto, aot_unpaired: unpaired rows) or
DPOTrainer (dpo, ipo, aot: paired rows) on a twin of the frozen base (same weight
storage, its own module tree), so TRL may toggle adapters and train mode freely while chat keeps
generating from the serving tree. The reference is the base with the adapter off, the same in
every round. The adapter continues from the parent version's weights when the LoRA shape matches.

    plan_round     rows -> steps and class weights
    train_adapter  the twin, TRL's trainer, early stopping; the adapter saved, the trainer freed
    gate           (the caller's) judges the saved adapter
    round_meta     what the round did, as the version's metadata
    publish        the staging folder becomes the next version, atomically
"""

from __future__ import annotations

import dataclasses
import gc
import logging
import math
import random
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from datasets import Dataset
from peft import get_peft_model, get_peft_model_state_dict, set_peft_model_state_dict
from safetensors.torch import load_file
from transformers import TrainerCallback, TrainerState

from ..config import AppSettings
from ..contracts import (ClassWeights, EarlyStopSummary, GateReport, LabelCounts, Recipe, RoundResult, RoundTimings,
                         VersionInfo, VersionMeta)
from ..data import as_text_messages, class_weights, fit_row, special_texts, stratified_batches
from ..model.base import BaseModel, twin
from ..model.memory import release_free_memory
from ..model.yielding import attached, waiting_with
from ..store.versions import VersionStore
from .early_stopping import EarlyStopping, EarlyStopScorer
from .frozen import keep_no_weight_copies
from .losses import DPO_LOSS_TYPES
from .prefix import fixed_model, share_prompt_prefix
from .recipe import AdapterConfig, PairedRoundConfig, RoundConfig, adapter_config, round_config
from .reference import ReferenceCache
from .trainers import ReferenceCachingDPOTrainer, ReferenceCachingKTOTrainer

log = logging.getLogger(__name__)

ADAPTER_WEIGHTS = "adapter_model.safetensors"


@dataclass
class RoundHooks:
    """How a round talks to the app while it runs; every hook is optional."""

    progress: Callable[[int, int], None] = lambda step, total: None
    # Called at every pause point of the round's models (see yielding.py): blocks while chat is
    # generating, so a reply never waits on training nor shares the cores with it.
    yield_to_chat: Callable[[], None] = lambda: None


class _HooksCallback(TrainerCallback):
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
class RoundPlan:
    """What a round will do, decided from its rows before any model is built."""

    rows: list[dict]  # in the order TRL reads them
    labels: LabelCounts
    weights: ClassWeights
    steps: int


@dataclass
class TrainedAdapter:
    """What training left behind once its trainer is gone: the adapter is in the staging folder."""

    state: TrainerState
    args: RoundConfig
    adapter: AdapterConfig
    continued_from_parent: bool
    loss: str
    reference_rows_computed: int
    early_stopping: EarlyStopSummary | None
    prepare_s: float
    train_s: float


def round_steps(n_rows: int, batch_size: int, accumulation: int, epochs: float, max_steps: int) -> int:
    """Optimizer steps of a round: enough for `epochs` passes over the rows, never above `max_steps`."""
    return max(1, min(max_steps, math.ceil(epochs * n_rows / (batch_size * accumulation))))


def plan_round(rows: list[dict], settings: AppSettings, seed: int = 0) -> RoundPlan:
    """Unpaired rows (prompt, completion, label), or paired rows (prompt, chosen, rejected) for a paired LOSS.

    Unpaired rows are put in an order in which every batch holds both labels (data.stratified_batches:
    TRL's KTOTrainer reads them in order) and cut to what the round's steps read, so the label counts
    and class weights are those of the rows trained on; pairs are shuffled by `seed`.
    """
    defaults = round_config(settings, output_dir=".")
    batch = defaults.per_device_train_batch_size
    if settings.training.paired:
        rows = random.Random(seed).sample(rows, len(rows))
    else:  # every row says whether its reply ended its turn (a dataset's columns are the same for every row)
        rows = stratified_batches([{**row, "ends_turn": row.get("ends_turn", True)} for row in rows], batch, seed)
    steps = round_steps(len(rows), batch, defaults.gradient_accumulation_steps, defaults.num_train_epochs,
                        defaults.max_steps)
    rows = rows[:steps * batch * defaults.gradient_accumulation_steps]
    if settings.training.paired:
        labels, weights = LabelCounts(desirable=len(rows), undesirable=len(rows)), ClassWeights()
    else:
        desirable = sum(1 for r in rows if r["label"])
        labels = LabelCounts(desirable=desirable, undesirable=len(rows) - desirable)
        desirable_weight, undesirable_weight = class_weights(labels.desirable, labels.undesirable,
                                                             cap=defaults.max_class_weight)
        weights = ClassWeights(desirable_weight, undesirable_weight * defaults.undesirable_weight_scale)
    return RoundPlan(rows=rows, labels=labels, weights=weights, steps=steps)


def fitted_rows(rows: list[dict], base: BaseModel, settings: AppSettings) -> list[dict]:
    """`rows` with every message's special-token texts escaped (data.as_text: a visitor's forged role header,
    stored before chat escaped them, stays text), and prompts cut to fit KTO_MAX_LENGTH with their replies
    (data.fit_row), so that TRL neither cuts a reply's ending nor drops a row (a vote marked trained would
    then never have been read)."""
    tokenizer = base.tokenizer
    specials = special_texts(tokenizer)
    rows = [{**row, **{key: as_text_messages(row[key], specials) for key in ("prompt", "completion", "chosen",
                                                                            "rejected") if isinstance(row.get(key), list)}}
            for row in rows]
    max_length = round_config(settings, output_dir=".").max_length
    if max_length is None:
        return rows

    def count(messages: list[dict]) -> int:
        return len(tokenizer.apply_chat_template(messages, return_dict=True)["input_ids"])

    # A few tokens to spare: TRL encodes prompt and completion apart, so its count may differ by a token or two.
    return [fit_row(row, count, max_length - 4) for row in rows]


def rows_read(plan: RoundPlan, steps: int, settings: AppSettings) -> list[dict]:
    """The rows in a batch of the first `steps` optimizer steps: TRL reads the plan's rows in order (KTOConfig's
    sequential sampler, which PairedRoundConfig copies for pairs too), again from the start if the steps
    outlast one pass."""
    defaults = round_config(settings, output_dir=".")
    return plan.rows[:steps * defaults.per_device_train_batch_size * defaults.gradient_accumulation_steps]


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


def _continue_from(parent: VersionInfo, model) -> bool:
    """Load the parent's LoRA into the model's "default" adapter, if it fits; whether it did.

    With REFERENCE=base it is loaded after TRL wrapped the twin: the reference stays the base (adapter
    disabled) rather than a copy of the parent, as TRL makes from a PeftModel (`_parent_as_reference`).
    """
    weights = _parent_weights(parent, model)
    if weights is not None:
        set_peft_model_state_dict(model, weights)
    return weights is not None


def _parent_as_reference(model, adapter: AdapterConfig, parent: VersionInfo):
    """The twin wrapped in the round's LoRA holding the parent's weights, for TRL to copy into its frozen "ref"
    adapter (KTOTrainer does so for a PeftModel): the reference is the serving version, not the base. A parent
    without an adapter that fits leaves the LoRA fresh (zero), and so the reference the base."""
    wrapped = get_peft_model(model, adapter)
    _continue_from(parent, wrapped)
    return wrapped


def train_adapter(base: BaseModel, plan: RoundPlan, parent: VersionInfo, settings: AppSettings, staging: Path,
                  hooks: RoundHooks, early_stop_score: EarlyStopScorer | None,
                  reference_cache: ReferenceCache) -> TrainedAdapter:
    """Train the round's adapter on a twin and save it into `staging`; the trainer and its tree are freed
    before this returns, so whatever runs next (the gate) has their memory."""
    started = time.time()
    model = twin(base.model)
    keep_no_weight_copies(model)  # before TRL wraps the linears in LoRA layers; see frozen.py
    adapter = adapter_config(settings)
    # Pause hooks go on the twin's linear layers before TRL wraps them in LoRA layers (they stay the
    # wrapped base layers), so the reference pass in the trainer's constructor pauses for chat too.
    with tempfile.TemporaryDirectory(prefix="round-") as scratch, attached(model):
        args = round_config(settings, output_dir=scratch, max_steps=plan.steps,
                            desirable_weight=plan.weights.desirable, undesirable_weight=plan.weights.undesirable)
        if settings.training.loss == "aot_unpaired":  # TRL's loss type whose rewards the AOT loss reads; no KL pass
            args.loss_type = "apo_zero_unpaired"
        callbacks: list[TrainerCallback] = [_HooksCallback(hooks)]
        early = None
        every, patience = settings.gate.early_stop_every, settings.gate.early_stop_patience
        # Only a round long enough to stop early scores itself: a shorter one would pay for scorings (10 s each
        # on this CPU, as long as a step) to stop nothing; the gate still judges what it trained.
        if early_stop_score is not None and every > 0 and plan.steps >= every * (patience + 1):
            early = EarlyStopping(early_stop_score, every, patience, settings.gate.auc_tolerance,
                                  on_pairs=settings.training.paired)
            callbacks.append(early)
        peft_config: AdapterConfig | None = adapter
        # A round from the base has the base as its reference either way, and keeps its cached log-probs.
        if settings.training.reference == "parent" and settings.training.loss not in DPO_LOSS_TYPES and \
                parent.path is not None:
            model, peft_config = _parent_as_reference(model, adapter, parent), None
            reference_cache = ReferenceCache()  # the parent's log-probs, not the base's kept across rounds
        trainer = _trainer(settings, model, args, plan, base, peft_config, callbacks, reference_cache)
        continued = _continue_from(parent, trainer.model)
        prepared = time.time()
        trainer.train()
        trained = time.time()
        if early is not None:
            early.restore_best(trainer.model)
        trainer.model.save_pretrained(staging, selected_adapters=["default"])  # not TRL's frozen "ref" copy
        result = TrainedAdapter(
            state=trainer.state, args=args, adapter=adapter, continued_from_parent=continued,
            loss=settings.training.loss,
            reference_rows_computed=trainer.reference_rows_computed,
            early_stopping=early.summary(trainer.state.global_step) if early is not None else None,
            prepare_s=prepared - started, train_s=trained - prepared)
    del trainer, model, early, callbacks
    gc.collect()  # the Trainer and its callback handler refer to each other
    release_free_memory()
    return result


def _trainer(settings: AppSettings, model, args: RoundConfig, plan: RoundPlan, base: BaseModel,
             adapter: AdapterConfig | None, callbacks: list[TrainerCallback], reference_cache: ReferenceCache):
    """TRL's trainer for the round's loss, on the twin, with the reference (the base) log-probs from the cache."""
    loss = settings.training.loss
    dataset = Dataset.from_list([{k: v for k, v in row.items() if k != "source"} for row in plan.rows])
    if loss in DPO_LOSS_TYPES:
        return ReferenceCachingDPOTrainer(
            model=model, args=PairedRoundConfig.from_round(args, DPO_LOSS_TYPES[loss]), train_dataset=dataset,
            processing_class=base.tokenizer, peft_config=adapter, callbacks=callbacks, reference_cache=reference_cache)
    return ReferenceCachingKTOTrainer(
        model=model, args=args, train_dataset=dataset, processing_class=base.tokenizer, peft_config=adapter,
        callbacks=callbacks, reference_cache=reference_cache, reference_scope=fixed_model,
        extend_fused_head=share_prompt_prefix,
        unpaired_aot_margin=settings.training.aot_margin if loss == "aot_unpaired" else None)


def round_meta(meta: VersionMeta, base: BaseModel, parent: VersionInfo, plan: RoundPlan, trained: TrainedAdapter,
               report: GateReport | None, gate_s: float, settings: AppSettings,
               last_vote_at: float | None = None) -> VersionMeta:
    """The version's metadata: what the caller knows (`meta`: its votes, as "reply_id:voter" and
    "pair_id:voter", less those whose rows, by their `source`, no batch read) and what the round did."""
    args, adapter, state = trained.args, trained.adapter, trained.state
    summary = state.log_history[-1] if state.log_history else {}
    read = rows_read(plan, state.global_step, settings)
    unread = {row.get("source") for row in plan.rows} - {row.get("source") for row in read}
    return dataclasses.replace(
        meta, parent=parent.name, persona=settings.persona.digest, persona_name=settings.persona.name,
        votes=[k for k in meta.votes if f"vote:{k}" not in unread],
        replayed_votes=[k for k in meta.replayed_votes if f"vote:{k}" not in unread],
        picks=[k for k in meta.picks if f"pick:{k}" not in unread],
        replayed_picks=[k for k in meta.replayed_picks if f"pick:{k}" not in unread],
        rows_read=len({id(row) for row in read}), continued_from_parent=trained.continued_from_parent, base_model=base.source,
        loss=trained.loss,
        rows=len(plan.rows), label_counts=plan.labels, weights=plan.weights, steps=state.global_step,
        reference_rows_computed=trained.reference_rows_computed,
        recipe=Recipe(beta=args.beta, learning_rate=args.learning_rate,
                      lr_scheduler_type=getattr(args.lr_scheduler_type, "value", args.lr_scheduler_type),
                      r=adapter.r, lora_alpha=adapter.lora_alpha, lora_dropout=adapter.lora_dropout,
                      batch_size=args.per_device_train_batch_size,
                      gradient_accumulation_steps=args.gradient_accumulation_steps),
        metrics=[entry for entry in state.log_history if "loss" in entry],
        train_summary={k: v for k, v in summary.items() if k.startswith("train_")},
        early_stopping=trained.early_stopping, gate=report,
        timings=RoundTimings(prepare_s=trained.prepare_s, train_s=trained.train_s, gate_s=gate_s,
                             total_s=trained.prepare_s + trained.train_s + gate_s,
                             vote_to_version_s=None if last_vote_at is None else time.time() - last_vote_at))


def train_round(base: BaseModel, rows: list[dict], parent: VersionInfo, settings: AppSettings,
                versions: VersionStore, meta: VersionMeta | None = None,
                hooks: RoundHooks | None = None, early_stop_score: EarlyStopScorer | None = None,
                gate: Callable[[Path], GateReport] | None = None,
                reference_cache: ReferenceCache | None = None, seed: int = 0,
                last_vote_at: float | None = None) -> RoundResult:
    """Train one round on `rows` and publish it as a new version: (prompt, completion, label) rows, or
    (prompt, chosen, rejected) rows when LOSS is a paired loss. A row may carry a `source` (any string:
    the vote or pick it came from); the result's `read` holds those of the rows a batch trained on, since a
    round reads only what its steps reach (plan_round, and early stopping).

    With `early_stop_score` (its adapter's score on held-out rows: Gate.early_stop_scorer) and
    GATE_EARLY_STOP_EVERY > 0 the round stops early once that score stops improving, and keeps its best
    weights. `gate(adapter_dir)` judges the finished adapter; its report goes into the version's metadata (the
    caller decides whether it serves).
    `reference_cache` keeps the base's log-probs of rows across rounds (a fresh one when None); `seed`
    draws the order of the rows (plan_round); `last_vote_at` (epoch seconds), when the newest vote the round
    reads was cast, gives the version's vote-to-version time.
    Raises on any failure; then nothing is published and the serving pointer is untouched.
    """
    hooks = hooks or RoundHooks()
    plan = plan_round(fitted_rows(rows, base, settings), settings, seed)
    with versions.staging() as staging, waiting_with(hooks.yield_to_chat):
        trained = train_adapter(base, plan, parent, settings, staging, hooks, early_stop_score,
                                ReferenceCache() if reference_cache is None else reference_cache)
        gate_started = time.time()
        report = gate(staging) if gate is not None else None  # still inside waiting_with: it pauses for chat
        record = round_meta(meta or VersionMeta(), base, parent, plan, trained, report, time.time() - gate_started,
                            settings, last_vote_at)
        name = versions.publish(staging, record)
    release_free_memory()
    log.info("round published %s: %d rows (%d read), %d steps, %.1f s", name, len(rows), record.rows_read,
             record.steps, record.timings.total_s)
    read = frozenset(row["source"] for row in rows_read(plan, trained.state.global_step, settings) if "source" in row)
    return RoundResult(version=name, meta=versions.get(name).meta, gate=report, read=read)
