"""The training recipe: TRL's KTOConfig and PEFT's LoraConfig with the seed recipe as their defaults.

The seed recipe (the KTO paper's Reviewer #2 bot): beta 0.1, LoRA r=8 / alpha 16 / dropout 0.05,
lr 5e-4 with a cosine schedule. TRL's own defaults differ (lr 1e-6, bf16 and checkpointing on), so
every field the recipe names is set here; the others were measured (bench/round_throughput.py). Two
differ from the seed recipe, by the learning bench: KTO's beta is 0.5 and the disliked rows weigh a
quarter (undesirable_weight_scale), with the serving version as the reference (REFERENCE=parent).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Sequence

import torch
from peft import LoraConfig
from trl import DPOConfig, KTOConfig

from ..config import DEFAULT_BETA, AppSettings, SettingError, parse_setting
from ..model.base import cpu_has_native_bf16


@dataclass
class RoundConfig(KTOConfig):
    """TRL's KTOConfig with the seed recipe as defaults (TRL's own differ: lr 1e-6) and the settings measured
    fastest here (bench/round_throughput.py)."""

    output_dir: str | None = field(default=None, metadata={"help": "Scratch folder of a round; set per round."})
    beta: float = field(default=DEFAULT_BETA, metadata={
        "help": "KTO beta: 0.5 (the seed recipe's 0.1 let rounds on the serving version's reference unlearn it); "
                "the pair losses take DPO_BETA (AppSettings.beta)."})
    learning_rate: float = field(default=5e-4, metadata={"help": "Seed recipe learning rate."})
    lr_scheduler_type: str = field(default="cosine", metadata={"help": "Seed recipe schedule."})
    warmup_steps: float = field(default=0, metadata={"help": "Rounds are short; no warm-up."})
    max_steps: int = field(default=12, metadata={
        "help": "Upper bound on optimizer steps in one round: 12 batches of 4 read 32 new votes (less the gate's "
                "share) with their anchors and replays once."})
    num_train_epochs: float = field(default=1.0, metadata={
        "help": "Passes over a round's rows; the steps are min(max_steps, epochs * rows / batch). One: a round's "
                "time follows its new votes, and later rounds replay them (REPLAY_VOTES)."})
    per_device_train_batch_size: int = field(default=4, metadata={
        "help": "Rows per forward, the seed recipe's batch; must be > 1 for the KTO KL term. One batch of 4, not "
                "2 x 2 accumulated: the shared prompt prefix (about 60% of a row) and its KL pass are encoded once "
                "per step, not twice; with checkpointing, 4 rows hold no more memory than 2 did."})
    gradient_accumulation_steps: int = field(default=1, metadata={
        "help": "Micro-batches per optimizer step (effective batch = this x per_device_train_batch_size)."})
    gradient_checkpointing: bool = field(default=True, metadata={
        "help": "Recompute each layer's activations in backward: two rows of 300 tokens then keep about 30 MiB for "
                "backward instead of about 360 here, keeping the app near one model's memory, "
                "for a quarter to a half more time per step (bench/live_loop.py, bench/round_throughput.py)."})
    gradient_checkpointing_kwargs: dict[str, Any] | str | None = field(
        default_factory=lambda: {"use_reentrant": False}, metadata={
            "help": "Non-reentrant: the shared prompt prefix's gradients reach the adapter only this way."})
    bf16: bool | None = field(default=None, metadata={
        "help": "bf16 autocast; unset: on where the hardware does bf16 natively (CUDA, or a CPU with avx512_bf16)."})
    precompute_ref_log_probs: bool = field(default=True, metadata={
        "help": "Reference log-probs computed once per row before the steps, instead of two reference passes on "
                "every step; kept across rounds while the reference is the fixed base (REFERENCE=base, or a round "
                "from the base)."})
    max_length: int | None = field(default=1024, metadata={"help": "Longest prompt + completion, in tokens."})
    logging_steps: float = field(default=1, metadata={"help": "Log every step: the metrics go into the version."})
    save_strategy: str = field(default="no", metadata={"help": "Versions are published by the loop, not the Trainer."})
    report_to: str | list[str] | None = field(default="none", metadata={"help": "No external loggers."})
    disable_tqdm: bool | None = field(default=True, metadata={"help": "The app shows its own progress."})
    dataloader_num_workers: int = field(default=0, metadata={"help": "Rows are few; no worker processes."})
    seed: int = field(default=0, metadata={"help": "Seed of a round."})
    undesirable_weight_scale: float = field(default=0.25, metadata={
        "help": "Multiplies the undesirable_weight (the KTO paper's lambda_U) the class balance sets: below 1, a "
                "round's disliked rows, the bot's own replies, push less than its liked ones pull "
                "(bench/round_recipe.py: 0.25 with REFERENCE=parent and beta 0.5 kept 25 of 32 probe replies "
                "finished where 1.0 kept 20, and the base reference 1)."})
    max_class_weight: float = field(default=2.0, metadata={
        "help": "Cap on the weight that balances the minority label (desirable_weight / undesirable_weight are "
                "set per round from the label counts, up to this)."})


# Fields of a KTO round's config that mean something else (or nothing) in TRL's DPOConfig.
NOT_SHARED_WITH_DPO = {"loss_type"}


@dataclass
class PairedRoundConfig(DPOConfig):
    """TRL's DPOConfig for rounds on pairs (dpo, ipo, aot): every field a KTO round's RoundConfig shares with it is
    copied from there (`from_round`), so the recipe, steps, precision and KTO_* settings are the same for every
    loss; only `loss_type` is the pair loss's."""

    @classmethod
    def from_round(cls, round_config: RoundConfig, loss_types: Sequence[str]) -> "PairedRoundConfig":
        names = {f.name for f in fields(cls) if f.init} & {f.name for f in fields(round_config) if f.init}
        shared = {name: getattr(round_config, name) for name in names - NOT_SHARED_WITH_DPO}
        shared["lr_scheduler_type"] = getattr(shared["lr_scheduler_type"], "value", shared["lr_scheduler_type"])
        return cls(**shared, loss_type=list(loss_types))


@dataclass
class AdapterConfig(LoraConfig):
    """PEFT's LoraConfig with the seed recipe as defaults."""

    r: int = field(default=8, metadata={"help": "LoRA rank (seed recipe)."})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA alpha (seed recipe)."})
    lora_dropout: float = field(default=0.05, metadata={"help": "LoRA dropout (seed recipe)."})
    target_modules: list[str] | str | None = field(default="all-linear", metadata={
        "help": "Every linear layer but the LM head."})
    task_type: str | None = field(default="CAUSAL_LM", metadata={"help": "Causal LM adapter."})


def _overrides(values: dict[str, Any], cls: type, prefix: str) -> dict[str, Any]:
    """`values` ({field: value}; text from the environment is parsed into the field's type) checked against
    `cls`'s fields; SettingError naming the environment variable of the first that is not a field or not valid."""
    known = {f.name: f for f in dataclasses.fields(cls)}
    parsed = {}
    for name, value in values.items():
        var = prefix + name.upper()
        if name not in known:
            raise SettingError(f"{var} names no field of {cls.__name__}; see {cls.__mro__[1].__name__}'s fields")
        default = known[name].default if known[name].default is not dataclasses.MISSING else None
        parsed[name] = parse_setting(value, default, var) if isinstance(value, str) else value
    return parsed


def _native_bf16(use_cpu: bool) -> bool:
    if not use_cpu:
        # Not torch.cuda.is_bf16_supported(): it also says yes where bf16 is only emulated (slowly), as on a T4.
        return torch.cuda.is_bf16_supported(including_emulation=False)
    return cpu_has_native_bf16()


def round_config(settings: AppSettings, output_dir: str | Path, **extra: Any) -> RoundConfig:
    """The round's TRL config: the seed recipe, KTO_<FIELD> settings, then `extra`; bf16 where the hardware
    does it natively, fp16 mixed precision on a GPU without (a T4). SettingError for a KTO_ name or value that
    is not valid."""
    use_cpu = not torch.cuda.is_available() or settings.model.device == "cpu"
    values = {**_overrides(settings.round_overrides, RoundConfig, "KTO_"), "beta": settings.beta, **extra}
    if values.get("bf16") is None:
        values["bf16"] = _native_bf16(use_cpu)
    if not use_cpu and not values["bf16"] and values.get("fp16") is None:
        values["fp16"] = True
    return RoundConfig(output_dir=str(output_dir), use_cpu=use_cpu, **values)


def adapter_config(settings: AppSettings) -> AdapterConfig:
    """The round's PEFT LoRA config: the seed recipe and LORA_<FIELD> settings; SettingError as above."""
    return AdapterConfig(**_overrides(settings.adapter_overrides, AdapterConfig, "LORA_"))


def check_recipe(settings: AppSettings) -> None:
    """Build both configs once, so that a bad KTO_ / LORA_ setting fails at start-up, not mid-round."""
    round_config(settings, output_dir=settings.data_dir / "rounds")
    adapter_config(settings)
