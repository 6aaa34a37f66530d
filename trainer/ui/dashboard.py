"""The dashboard's data: tables shaped for Gradio's plots, read from version metadata and the vote store.

Functions of what a refresh read once: every figure here was recorded when it happened (a round's
per-step metrics and gate scores live in its version's meta.json; votes carry their times), so
nothing is recomputed here.
"""

from __future__ import annotations

import time

import pandas as pd

from .versions import BASE, VersionInfo
from .votes import VoteStore

STEP_SERIES = {"loss": "loss", "rewards/chosen": "reward liked", "rewards/rejected": "reward disliked",
               "rewards/margins": "margin"}
VERSION_COLUMNS = ["version", "serving", "parent", "rows", "steps", "held-out AUC", "KL", "gate", "why not served",
                   "early stop", "published"]


def latest_round(infos: list[VersionInfo]) -> VersionInfo | None:
    """The newest published version (the base is never a round)."""
    rounds = [info for info in infos if info.name != BASE]
    return rounds[-1] if rounds else None


def step_metrics(info: VersionInfo | None) -> pd.DataFrame:
    """Loss and rewards per step of one round, long form: step, value, series."""
    rows = [{"step": m["step"], "value": float(m[key]), "series": label}
            for m in (info.meta.get("metrics", []) if info else []) for key, label in STEP_SERIES.items() if key in m]
    return pd.DataFrame(rows, columns=["step", "value", "series"])


def version_metrics(infos: list[VersionInfo]) -> pd.DataFrame:
    """Held-out AUC and KL of every gated version, one bar each (a bar per version and metric, side by side,
    since Gradio stacks bars that share an x value)."""
    rows = []
    for info in infos:
        gate = info.meta.get("gate")
        if gate:
            for metric, key in (("held-out AUC", "auc"), ("KL to base", "kl")):
                rows.append({"bar": f"{info.name} {metric.split()[0]}", "value": gate["candidate"][key],
                             "metric": metric})
    return pd.DataFrame(rows, columns=["bar", "value", "metric"])


def votes_per_hour(votes: VoteStore) -> pd.DataFrame:
    rows = [{"hour": time.strftime("%m-%d %H:00", time.gmtime(hour)), "votes": count,
             "label": "👍 liked" if label else "👎 disliked"} for hour, label, count in votes.votes_per_hour()]
    return pd.DataFrame(rows, columns=["hour", "votes", "label"])


def reward_quantiles(info: VersionInfo | None) -> pd.DataFrame:
    """Quantiles of held-out implicit rewards, liked vs disliked, serving vs candidate, from a round's gate.

    Liked rewards dominating disliked ones at every quantile is the picture of seed document 003.
    """
    gate = info.meta.get("gate") if info else None
    rows = []
    if gate:
        for role in ("serving", "candidate"):
            scores = gate[role]
            name = scores["version"] if role == "serving" else info.name
            for label, key in (("liked", "liked_quantiles"), ("disliked", "disliked_quantiles")):
                values = scores.get(key) or []
                rows += [{"quantile": i / max(len(values) - 1, 1), "reward": v, "series": f"{name} {label}"}
                         for i, v in enumerate(values)]
    return pd.DataFrame(rows, columns=["quantile", "reward", "series"])


def version_table(infos: list[VersionInfo], current: str) -> pd.DataFrame:
    rows = []
    for info in reversed(infos):
        meta, gate = info.meta, info.meta.get("gate") or {}
        early = meta.get("early_stopping") or {}
        verdict = "-" if info.name == BASE else "none"
        if gate:
            verdict = "passed" if gate.get("passed") else "rejected"
        rows.append({
            "version": info.name,
            "serving": "●" if info.name == current else "",
            "parent": meta.get("parent", ""),
            "rows": meta.get("rows", ""),
            "steps": meta.get("steps", ""),
            "held-out AUC": round(gate["candidate"]["auc"], 3) if gate else "",
            "KL": round(gate["candidate"]["kl"], 4) if gate else "",
            "gate": verdict,
            "why not served": "; ".join(gate.get("reasons", [])) if gate else "",
            "early stop": f"best step {early['best_step']}" if early.get("stopped_early") else "",
            "published": time.strftime("%Y-%m-%d %H:%M", time.gmtime(meta["published_at"]))
            if "published_at" in meta else "",
        })
    return pd.DataFrame(rows, columns=VERSION_COLUMNS)
