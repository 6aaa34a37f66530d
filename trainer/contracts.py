"""The typed records the parts exchange, each written and read through one definition.

- `VersionMeta`: a version's `meta.json` (written by a round or an install, read by the dashboard,
  the command line and the gate's report), with `GateReport`, `Scores` and the round's parts.
- `LoopStatus`, `HubStatus` and `AppStatus`: what the status line, the dashboard and the `/status` endpoint read.
- `StoredReply`, `Vote`, `Pick`, `VersionInfo`: the stores' rows as the other parts read them; `RoundResult`:
  a round's outcome, as the learner hands it to the loop.
- `ReplySampler`, `ServedCopy`, `SampledReply`: what the gate needs of the server (a protocol, so that the gate
  sits below serving in the layers and the server is handed to it).

Plain dataclasses with no library imports: any room may import them. `to_dict` / `from_dict` are
the only way in and out of JSON; `from_dict` ignores keys it does not know (a newer writer) and
reads the names older versions wrote.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


class TrainerError(Exception):
    """Base of the project's own errors (SettingError, VersionError, DataFileError, HubConflict, ...): each message
    says what went wrong and what to do. The command line prints them without a traceback; any other error, a
    library's bug included, keeps its traceback."""


def from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """Build dataclass `cls` from JSON data, nested dataclasses (and lists of them) included; keys an older
    release wrote are read under today's names (a record's `_RENAMED`: {old: new})."""
    renamed = getattr(cls, "_RENAMED", {})
    data = {renamed.get(key, key): value for key, value in data.items()}
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    return cls(**{name: _convert(hints[name], value) for name, value in data.items() if name in known})


def _convert(hint: Any, value: Any) -> Any:
    if value is None:
        return None
    if typing.get_origin(hint) in (typing.Union, types.UnionType):  # X | None
        inner = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        return _convert(inner[0], value) if len(inner) == 1 else value
    if typing.get_origin(hint) is list:
        (item,) = typing.get_args(hint) or (Any,)
        return [_convert(item, v) for v in value]
    if dataclasses.is_dataclass(hint) and isinstance(value, dict):
        return from_dict(hint, value)
    return value


def to_dict(record: Any) -> dict[str, Any]:
    return dataclasses.asdict(record)


# -- the gate ----------------------------------------------------------------------------------------


class ServedCopy(Protocol):
    """A version as the decode loop serves it (serve/decoding.py `ServedVersion`)."""

    @property
    def name(self) -> str: ...

    @property
    def model(self) -> Any: ...  # a torch.nn.Module: merged, CHAT_DTYPE (this module loads no torch)


class SampledReply(Protocol):
    """One reply sampled to its end (serve/server.py `Completion`), as the gate reads it."""

    text: str
    new_tokens: int
    ended: bool  # ended with the end-of-turn token, not cut at the token cap


class ReplySampler(Protocol):
    """What the gate needs of the server (serve/server.py `Server`): the copy serving now, another version's copy
    as it would serve, and replies of several copies sampled together through the decode loop."""

    @property
    def current(self) -> ServedCopy: ...

    def load(self, name: str, path: Any, merged: bool = True) -> ServedCopy: ...

    def sample(self, requests: list[tuple[Any, list[dict], int]], max_new_tokens: int | None = None,
               cancel: Callable[[], bool] | None = None) -> Sequence[SampledReply]: ...



@dataclass
class ProbeReply:
    """One sampled reply of a version to a held-out probe message, as the gate checked it.

    Both versions of one gate answer the same messages under the same seeds, in the same order, so
    their probe replies compare pair by pair."""

    message: str
    seed: int
    text: str
    tokens: int
    ended: bool      # it ended with the end-of-turn token, within the token cap
    finished: bool   # it ended, and its text ends a sentence (gate/rubric.py)
    loops: bool      # over GATE_MAX_REPETITION of its 3-grams repeat, or it compresses like a loop (gate/rubric.py)
    checks: float    # share of the reply checks passed (gate/rubric.py ReplyChecks.score)
    liked: float | None = None  # P(liked) by the gate's reply classifier (gate/reply_classifier.py); None: none


@dataclass
class Scores:
    """One version's scores on the gate rows, with reward quantiles for the dashboard's quantile plot."""

    version: str
    auc: float
    margin: float
    kl: float
    distinct2: float
    repetition: float
    rubric: float | None = None  # mean reply checks of its replies to the probe prompts (gate/rubric.py)
    desirable_quantiles: list[float] = field(default_factory=list)    # of the implicit rewards of the
    undesirable_quantiles: list[float] = field(default_factory=list)  # thumbs-up and thumbs-down gate rows
    # On the held-out pairs among the gate rows (None / empty: none there): DPO's rewards/accuracy, and the
    # quantiles of the chosen-to-rejected log-likelihood ratio under this version and under the base.
    pair_accuracy: float | None = None
    pair_ratio_quantiles: list[float] = field(default_factory=list)
    base_pair_ratio_quantiles: list[float] = field(default_factory=list)
    # Its sampled replies to the probe messages, from the copy that would serve (empty in older versions' meta).
    probe_replies: list[ProbeReply] = field(default_factory=list)

    # Names earlier releases wrote, read as today's.
    _RENAMED = {"liked_quantiles": "desirable_quantiles", "disliked_quantiles": "undesirable_quantiles"}


@dataclass
class GateReport:
    """The gate's verdict on a round's candidate beside the serving version, on the same `rows` gate rows."""

    passed: bool
    reasons: list[str]
    candidate: Scores
    serving: Scores
    rows: int
    probe_s: float | None = None  # seconds sampling probe replies (the candidate's; the serving version's unless
    #                               sampled ahead), a second look's included
    score_s: float | None = None  # seconds scoring the gate rows
    second_look: bool = False     # a second draw of probe papers was sampled
    looks: int = 1                # draws of probe papers sampled (GATE_MAX_LOOKS); 1 in older versions' meta


# -- a version's metadata -----------------------------------------------------------------------------


@dataclass
class LabelCounts:
    desirable: int = 0
    undesirable: int = 0


@dataclass
class ClassWeights:
    desirable: float = 1.0
    undesirable: float = 1.0


@dataclass
class Recipe:
    """The training settings a round ran with (the seed recipe's names)."""

    beta: float
    learning_rate: float
    lr_scheduler_type: str
    r: int
    lora_alpha: int
    lora_dropout: float
    batch_size: int
    gradient_accumulation_steps: int


@dataclass
class EarlyStopScore:
    step: int
    auc: float
    margin: float
    kl: float
    pair_accuracy: float | None = None


@dataclass
class EarlyStopSummary:
    scores: list[EarlyStopScore]
    best_step: int
    stopped_at: int
    stopped_early: bool
    restored_best: bool


@dataclass
class RoundTimings:
    prepare_s: float = 0.0
    train_s: float = 0.0
    gate_s: float = 0.0  # rounds from the command line have no gate
    total_s: float = 0.0
    # From the newest vote or pick the round read (trained on or kept for the gate) to the version judged:
    # what a voter waits to meet the bot his vote made. None: a round from the command line, or older.
    vote_to_version_s: float | None = None


@dataclass
class VersionMeta:
    """A version's `meta.json`. Rounds fill the round fields; an installed adapter keeps the ones it came with."""

    name: str = ""
    published_at: float | None = None
    parent: str | None = None
    continued_from_parent: bool | None = None
    base_model: str | None = None
    persona: str | None = None  # config.PersonaConfig.digest of the persona it was trained for (None: before 2026-12)
    persona_name: str | None = None
    loss: str | None = None  # LOSS of its round: kto, aot_unpaired, dpo, ipo, aot (None: kto, before it was recorded)
    rows: int | None = None
    rows_read: int | None = None  # of `rows`, those in a batch the round trained on (early stopping reads fewer)
    label_counts: LabelCounts | None = None
    weights: ClassWeights | None = None
    steps: int | None = None
    reference_rows_computed: int | None = None
    recipe: Recipe | None = None
    metrics: list[dict[str, float]] = field(default_factory=list)  # TRL's log entries, one per step
    train_summary: dict[str, float] = field(default_factory=dict)
    early_stopping: EarlyStopSummary | None = None
    gate: GateReport | None = None
    timings: RoundTimings | None = None
    # Votes as "reply_id:voter": trained on as new, and replayed from earlier rounds (only those in a batch read).
    votes: list[str] = field(default_factory=list)
    replayed_votes: list[str] = field(default_factory=list)
    # Picks as "pair_id:voter": trained on as new, and replayed.
    picks: list[str] = field(default_factory=list)
    replayed_picks: list[str] = field(default_factory=list)
    anchor_rows: int | None = None  # seed training rows replayed as anchors (both labels)
    voters: int | None = None  # distinct voters (serve/voters.py) of the new votes and picks
    largest_voter_share: float | None = None  # the largest share of them one voter had (0-1)
    largest_address_share: float | None = None  # the largest share of them from one client address (0-1)
    deferred_votes: int | None = None  # waiting votes and picks over a voter's or an address's cap, left waiting
    gate_votes: int | None = None  # votes among the gate rows this round was judged on
    # A round from a file (the command line) records where its rows came from.
    command: str | None = None
    data_file: str | None = None
    data_sha256: str | None = None
    split: str | None = None
    installed_from: str | None = None  # an adapter shipped with the app, installed as a version
    storage_dtype: str | None = None

    # Names earlier releases wrote, read as today's.
    _RENAMED = {"held_out_votes": "gate_votes"}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "VersionMeta":
        return from_dict(cls, data)

    @classmethod
    def read(cls, path: Path) -> "VersionMeta":
        return cls.from_json(json.loads(Path(path).read_text(encoding="utf-8")))

    def to_json(self) -> str:
        return json.dumps(to_dict(self), indent=2, default=str)


# -- replies, votes, picks and versions -------------------------------------------------------------------
# The store's rows as the rest of the app reads them (store/votes.py, store/versions.py), and a round's outcome.


@dataclass(frozen=True)
class StoredReply:
    id: str
    session: str
    prompt: list[dict]
    completion: str
    version: str
    stopped: bool = False
    created_at: float = 0.0
    voter_id: str = ""  # the visitor, hashed (serve/voters.py): a signed-in user, or session plus address
    address: str = ""   # the visitor's address, hashed


@dataclass(frozen=True)
class Vote:
    """A vote joined with the reply it is about: everything a training row needs."""

    reply_id: str
    voter: str
    label: bool
    revision: int
    prompt: list[dict]
    completion: str
    version: str
    updated_at: float
    voter_id: str = ""  # the reply's (StoredReply.voter_id): who voted, across sessions
    address: str = ""

    @property
    def identity(self) -> str:
        """The voter for caps and shares: the hashed identity, or the session where none was recorded."""
        return self.voter_id or self.voter


PICK_CHOICES = ("a", "b", "neither")


@dataclass(frozen=True)
class Pick:
    """A paired preference joined with its two replies: which of two replies to one message was better."""

    pair_id: str
    voter: str
    choice: str            # a | b | neither
    revision: int
    prompt: list[dict]
    completion_a: str
    completion_b: str
    version_a: str
    version_b: str
    updated_at: float
    voter_id: str = ""  # reply A's (StoredReply.voter_id)
    address: str = ""

    @property
    def identity(self) -> str:
        return self.voter_id or self.voter

    @property
    def chosen(self) -> str | None:
        return {"a": self.completion_a, "b": self.completion_b}.get(self.choice)

    @property
    def rejected(self) -> str | None:
        return {"a": self.completion_b, "b": self.completion_a}.get(self.choice)


@dataclass(frozen=True)
class VersionInfo:
    name: str
    path: Path | None  # None for the base: no adapter
    meta: VersionMeta = field(default_factory=VersionMeta)


@dataclass
class RoundResult:
    version: str
    meta: VersionMeta
    gate: GateReport | None = None
    # The `source` of every row in a batch the round trained on (rows may carry one: see train_round).
    read: frozenset[str] = frozenset()

    @property
    def passed(self) -> bool:
        return self.gate is None or self.gate.passed


# -- status -------------------------------------------------------------------------------------------


@dataclass
class LoopStatus:
    """The learning loop as the UI shows it."""

    state: str = "idle"               # idle | training | paused | stopped
    step: int = 0
    total_steps: int = 0
    rounds: int = 0
    last_version: str | None = None
    last_round_seconds: float | None = None
    last_error: str | None = None
    last_rejection: str | None = None  # why the gate kept the last round's version from serving
    last_swap_ms: float | None = None
    seconds_left: float | None = None  # while training: the round's expected time to its verdict, from its steps


@dataclass
class HubStatus:
    """Where the votes and versions are kept beyond this disk (store/hub.py)."""

    state: str = "off"       # off | local-only | restoring | connecting | synced | waiting | retrying | stopped
    repo: str = ""
    detail: str = ""         # why local-only, or the last error
    events_waiting: int = 0  # changes in the local store not yet on the Hub
    last_push_at: float | None = None
    commits_last_hour: int = 0  # this process's commits to the repo in the last hour (HUB_MAX_COMMITS_PER_HOUR)
    restored_events: int = 0  # events replayed from the Hub at start
    restored_versions: int = 0

    @property
    def keeps_votes(self) -> bool:
        """Whether votes reach (or will reach, once it answers) a place that outlives this disk."""
        return self.state in ("restoring", "connecting", "synced", "waiting", "retrying")


@dataclass
class VoteCounts:
    """Thumbs up (desirable, in the KTO paper's terms) and thumbs down (undesirable)."""

    desirable: int = 0
    undesirable: int = 0

    @property
    def total(self) -> int:
        return self.desirable + self.undesirable

    @property
    def desirable_share(self) -> float | None:
        return self.desirable / self.total if self.total else None


@dataclass
class AppStatus:
    """Everything the status line and the `/status` endpoint show."""

    serving: str
    base_model: str
    votes_waiting: VoteCounts
    votes_total: VoteCounts
    min_votes: int
    needs_both_labels: bool  # no seed anchors: a round waits for votes of both labels
    loop: LoopStatus
    generating: int
    hub: HubStatus = field(default_factory=HubStatus)
    picks_waiting: int = 0  # picks (two replies, one chosen, or both bad) no round has used yet
    votes_over_caps: int = 0  # waiting votes a round would not take yet: over a voter's or an address's cap
    persona_note: str = ""  # why the bare base serves: an adapter of another persona was not (runtime.py)
    # Votes on the replies each version wrote: the learning curve as voters see it.
    votes_by_version: dict[str, VoteCounts] = field(default_factory=dict)
