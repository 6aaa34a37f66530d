"""The typed records: what is written reads back equal, old files read, unknown keys are ignored."""

import json

from trainer.config import SHIPPED_ADAPTER
from trainer.contracts import (
    AppStatus,
    EarlyStopScore,
    EarlyStopSummary,
    GateReport,
    LabelCounts,
    LoopStatus,
    Scores,
    VersionMeta,
    VoteCounts,
    to_dict,
)


def test_version_meta_round_trips_with_nested_records():
    scores = Scores("v0001", 0.9, 1.2, 0.05, 0.8, 0.0, rubric=0.75, desirable_quantiles=[0.1, 0.2],
                    undesirable_quantiles=[-0.1, 0.0])
    meta = VersionMeta(name="v0002", parent="v0001", rows=8, label_counts=LabelCounts(4, 4),
                       early_stopping=EarlyStopSummary([EarlyStopScore(2, 0.9, 1.0, 0.1)], 2, 4, True, True),
                       gate=GateReport(True, [], scores, scores, 56), metrics=[{"step": 1, "loss": 0.7}],
                       votes=["r1:alice"], gate_votes=3)
    again = VersionMeta.from_json(json.loads(meta.to_json()))
    assert again == meta and isinstance(again.gate.candidate, Scores)
    assert isinstance(again.early_stopping.scores[0], EarlyStopScore)


def test_older_and_newer_metadata_read():
    meta = VersionMeta.from_json({"name": "v0003", "held_out_votes": 5, "a_field_from_the_future": 1})
    assert meta.gate_votes == 5 and meta.name == "v0003"
    shipped = VersionMeta.read(SHIPPED_ADAPTER / "meta.json")
    assert shipped.recipe.r == 8 and shipped.steps == 32 and shipped.label_counts.desirable == 128
    scores = {"version": "v0002", "auc": 0.8, "margin": 1.0, "kl": 0.1, "distinct2": 0.9, "repetition": 0.0,
              "liked_quantiles": [1.0, 2.0], "disliked_quantiles": [-1.0]}  # as releases before 2026-12 wrote
    gate = VersionMeta.from_json({"gate": {"passed": True, "reasons": [], "candidate": scores, "serving": scores,
                                           "rows": 4}}).gate
    assert gate.candidate.desirable_quantiles == [1.0, 2.0] and gate.serving.undesirable_quantiles == [-1.0]


def test_status_serializes_to_the_json_the_status_endpoint_returns():
    status = AppStatus(serving="v0001", base_model="m", votes_waiting=VoteCounts(1, 2), votes_total=VoteCounts(3, 4),
                       min_votes=8, needs_both_labels=False, loop=LoopStatus(state="training", step=2, total_steps=4),
                       generating=1)
    data = to_dict(status)
    assert data["votes_waiting"] == {"desirable": 1, "undesirable": 2} and data["loop"]["state"] == "training"
    assert json.loads(json.dumps(data)) == data


def test_the_projects_errors_share_one_base_and_keep_their_builtin_kinds():
    """The command line prints TrainerError without a traceback and lets anything else (a library's bug) show
    its own; each error keeps its builtin kind, so callers catching ValueError or OSError still catch it."""
    from trainer.admin import AdminError
    from trainer.config import SettingError
    from trainer.contracts import TrainerError
    from trainer.data import LabelError, PromptTooLong
    from trainer.learning import NotEnoughVotes
    from trainer.serve.server import SamplingFailed
    from trainer.store.files import DataFileError
    from trainer.store.hub import HubConflict
    from trainer.store.versions import VersionError
    from trainer.store.votes import VoteError

    kinds = {SettingError: ValueError, DataFileError: ValueError, VersionError: ValueError, VoteError: ValueError,
             NotEnoughVotes: ValueError, LabelError: ValueError, PromptTooLong: ValueError,
             HubConflict: RuntimeError, SamplingFailed: RuntimeError, AdminError: PermissionError}
    for error, kind in kinds.items():
        assert issubclass(error, TrainerError) and issubclass(error, kind), error
