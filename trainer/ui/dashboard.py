"""The dashboard's data: one `DashboardView` per refresh, its tables shaped for Gradio's plots.

Functions of what a refresh read once: every figure here was recorded when it happened (a round's
per-step metrics and gate scores live in its version's metadata; votes carry their times and the
version that wrote their reply), so nothing is recomputed here. The learning curve is two
figures per version: the share of votes liked on its replies, and its gate replies' check score.
The AOT paper's picture is two panels: reward quantiles liked vs disliked, and the quantiles of the
chosen-to-rejected log-likelihood ratio on held-out pairs against the base.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import pandas as pd

from ..contracts import AppStatus, VersionInfo, VersionMeta, VoteCounts
from ..store.versions import BASE
from ..store.votes import VoteStore
from .status import dashboard_summary

STEP_SERIES = {"loss": "loss", "rewards/chosen": "reward liked", "rewards/rejected": "reward disliked",
               "rewards/margins": "margin"}
VERSION_COLUMNS = ["version", "serving", "parent", "loss", "liked (votes on its replies)", "reply checks", "rows",
                   "voters (largest share)", "steps", "vote to version", "held-out AUC", "pair accuracy", "KL", "gate", "why not served", "early stop", "published"]


@dataclass
class DashboardView:
    """Everything the dashboard tab shows, in the order of its components."""

    summary: str
    step: int
    total_steps: int
    step_metrics: pd.DataFrame
    version_metrics: pd.DataFrame
    learning_curve: pd.DataFrame
    votes_per_hour: pd.DataFrame
    reward_quantiles: pd.DataFrame
    pair_ratio_quantiles: pd.DataFrame
    versions: pd.DataFrame
    version_names: list[str]


def dashboard_view(status: AppStatus, infos: list[VersionInfo], current: str, votes: VoteStore) -> DashboardView:
    """The view from one read of the status, every version's metadata and the vote store."""
    latest = latest_round(infos)
    serving = next((info.meta for info in infos if info.name == status.serving), VersionMeta(name=status.serving))
    checks = reply_checks(infos)
    return DashboardView(summary=dashboard_summary(status, serving), step=status.loop.step,
                         total_steps=status.loop.total_steps, step_metrics=step_metrics(latest),
                         version_metrics=version_metrics(infos),
                         learning_curve=learning_curve(infos, status.votes_by_version, checks),
                         votes_per_hour=votes_per_hour(votes), reward_quantiles=reward_quantiles(latest),
                         pair_ratio_quantiles=pair_ratio_quantiles(latest),
                         versions=version_table(infos, current, status.votes_by_version, checks),
                         version_names=[info.name for info in infos])


def latest_round(infos: list[VersionInfo]) -> VersionInfo | None:
    """The newest published version (the base is never a round)."""
    rounds = [info for info in infos if info.name != BASE]
    return rounds[-1] if rounds else None


def step_metrics(info: VersionInfo | None) -> pd.DataFrame:
    """Loss and rewards per step of one round, long form: step, value, series."""
    rows = [{"step": m["step"], "value": float(m[key]), "series": label}
            for m in (info.meta.metrics if info else []) for key, label in STEP_SERIES.items() if key in m]
    return pd.DataFrame(rows, columns=["step", "value", "series"])


def version_metrics(infos: list[VersionInfo]) -> pd.DataFrame:
    """AUC on the gate rows and KL of every gated version, one bar each (a bar per version and metric, side by
    side, since Gradio stacks bars that share an x value)."""
    rows = []
    for info in infos:
        gate = info.meta.gate
        if gate:
            for metric, value in (("held-out AUC", gate.candidate.auc), ("KL to base", gate.candidate.kl)):
                rows.append({"bar": f"{info.name} {metric.split()[0]}", "value": value, "metric": metric})
    return pd.DataFrame(rows, columns=["bar", "value", "metric"])


def reply_checks(infos: list[VersionInfo]) -> dict[str, float]:
    """Each version's reply-check score on the gate's probe prompts: from its own round's gate, or, for a
    version no gate scored as a candidate (shipped, base), from a later gate that scored it as serving."""
    scores: dict[str, float] = {}
    for info in infos:
        gate = info.meta.gate
        if gate and gate.serving.rubric is not None:
            scores.setdefault(gate.serving.version, gate.serving.rubric)
        if gate and gate.candidate.rubric is not None:
            scores[info.name] = gate.candidate.rubric
    return scores


def learning_curve(infos: list[VersionInfo], votes: dict[str, VoteCounts], checks: dict[str, float]) -> pd.DataFrame:
    """Per version, in publishing order: the share of votes liked on its replies, and its reply checks."""
    rows = []
    for info in infos:
        liked = votes.get(info.name, VoteCounts()).desirable_share
        for metric, value in (("liked share of votes", liked), ("reply checks", checks.get(info.name))):
            if value is not None:
                rows.append({"bar": f"{info.name} {metric.split()[0]}", "value": value, "metric": metric})
    return pd.DataFrame(rows, columns=["bar", "value", "metric"])


def votes_per_hour(votes: VoteStore) -> pd.DataFrame:
    rows = [{"hour": time.strftime("%m-%d %H:00", time.gmtime(hour)), "votes": count,
             "label": "👍 liked" if label else "👎 disliked"} for hour, label, count in votes.votes_per_hour()]
    return pd.DataFrame(rows, columns=["hour", "votes", "label"])


def reward_quantiles(info: VersionInfo | None) -> pd.DataFrame:
    """Quantiles of implicit rewards on the gate rows, liked vs disliked, serving vs candidate, from a round's gate.

    Liked rewards dominating disliked ones at every quantile is the AOT paper's picture.
    """
    gate = info.meta.gate if info else None
    rows = []
    if gate:
        for scores, name in ((gate.serving, gate.serving.version), (gate.candidate, info.name)):
            for label, values in (("liked", scores.desirable_quantiles), ("disliked", scores.undesirable_quantiles)):
                rows += [{"quantile": i / max(len(values) - 1, 1), "reward": v, "series": f"{name} {label}"}
                         for i, v in enumerate(values)]
    return pd.DataFrame(rows, columns=["quantile", "reward", "series"])


def pair_ratio_quantiles(info: VersionInfo | None) -> pd.DataFrame:
    """Quantiles of the chosen-to-rejected log-likelihood ratio on the held-out pairs, under the base, the serving
    version and the candidate, from a round's gate: the AOT paper's paired panel (aligned should dominate the base)."""
    gate = info.meta.gate if info else None
    rows = []
    if gate:
        for name, values in (("base", gate.candidate.base_pair_ratio_quantiles),
                             (gate.serving.version, gate.serving.pair_ratio_quantiles),
                             (info.name, gate.candidate.pair_ratio_quantiles)):
            rows += [{"quantile": i / max(len(values) - 1, 1), "log ratio": v, "series": name}
                     for i, v in enumerate(values)]
    return pd.DataFrame(rows, columns=["quantile", "log ratio", "series"])


def version_table(infos: list[VersionInfo], current: str, votes: dict[str, VoteCounts],
                  checks: dict[str, float]) -> pd.DataFrame:
    rows = []
    for info in reversed(infos):
        counts = votes.get(info.name, VoteCounts())
        meta, gate = info.meta, info.meta.gate
        early = meta.early_stopping
        verdict = "-" if info.name == BASE else "none"
        if gate:
            verdict = "passed" if gate.passed else "rejected"
        rows.append({
            "version": info.name,
            "serving": "●" if info.name == current else "",
            "parent": meta.parent or "",
            "loss": meta.loss or ("kto" if meta.steps else ""),
            "liked (votes on its replies)": f"{counts.desirable_share:.0%} of {counts.total}"
            if counts.desirable_share is not None else "",
            "reply checks": f"{checks[info.name]:.0%}" if info.name in checks else "",
            "rows": "" if meta.rows is None else meta.rows,
            "voters (largest share)": f"{meta.voters} ({meta.largest_voter_share:.0%})"
            if meta.voters and meta.largest_voter_share is not None else "",
            "steps": "" if meta.steps is None else meta.steps,
            "vote to version": f"{meta.timings.vote_to_version_s:.0f} s"
            if meta.timings and meta.timings.vote_to_version_s is not None else "",
            "held-out AUC": round(gate.candidate.auc, 3) if gate else "",
            "pair accuracy": round(gate.candidate.pair_accuracy, 3)
            if gate and gate.candidate.pair_accuracy is not None else "",
            "KL": round(gate.candidate.kl, 4) if gate else "",
            "gate": verdict,
            "why not served": "; ".join(gate.reasons) if gate else "",
            "early stop": f"best step {early.best_step}" if early and early.stopped_early else "",
            "published": time.strftime("%Y-%m-%d %H:%M", time.gmtime(meta.published_at))
            if meta.published_at is not None else "",
        })
    return pd.DataFrame(rows, columns=VERSION_COLUMNS)
