"""One round's recipe, A/B, on the same votes: what each recipe's candidate does to the replies visitors get.

A learning run (bench/learning.py) takes 40 minutes and measures three rounds whose votes depend on what the
earlier rounds served; a recipe change is read here first, on one fixed set of votes. The script copies a
DATA_DIR that holds votes (a learning run's state folder: learning-crowd-128-anchors's in BENCHMARKS.md), marks
every vote a round used as waiting again, and for each recipe runs `python -m trainer train` on them (the app's
own round: anchors, replays, early stopping, the gate); then it tabulates the gate's verdict and its sampled
probe replies, the candidate's beside the serving version's (same papers, same seeds), with the round's rewards.

Run:  .venv/bin/python bench/round_recipe.py --state STATE [--tokens 128] \
          --recipe base: --recipe parent:REFERENCE=parent --recipe parent-beta05:REFERENCE=parent,KTO_BETA=0.5
      .venv/bin/python bench/round_recipe.py --report-only DIR ...   (the table of recipes already run)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.report import publish, table  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def run_recipe(state: Path, out: Path, env: dict[str, str], tokens: int, votes: int) -> float:
    """Copy `state` to `out`, make every used vote wait again, train one round with `env`; its seconds."""
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(state, out)
    with sqlite3.connect(out / "votes.sqlite3") as db:  # the gate's held-out votes stay held out
        db.execute("UPDATE votes SET trained_in = NULL WHERE trained_in LIKE 'v0%'")
    started = time.perf_counter()
    run = subprocess.run([sys.executable, "-m", "trainer", "train"], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "DATA_DIR": str(out), "MIN_VOTES": str(votes),
                              "CHAT_MAX_NEW_TOKENS": str(tokens), **env})
    (out / "round.log").write_text(run.stdout + run.stderr)
    return time.perf_counter() - started


def summary(out: Path) -> tuple:
    """The newest version's gate verdict, its probe replies beside the serving version's, its rewards."""
    meta = json.loads(sorted((out / "versions").glob("v*/meta.json"))[-1].read_text())
    gate = meta["gate"]

    def replies(side: dict) -> str:
        probes = side["probe_replies"]
        finished = sum(p["finished"] for p in probes)
        tokens = sum(p["tokens"] for p in probes) / len(probes)
        return f"{finished}/{len(probes)} finished, {tokens:.0f} tokens, checks {side['rubric']:.2f}"

    steps = [r for r in meta["metrics"] if "loss" in r and "rewards/rejected" in r]
    last = steps[-1] if steps else {}
    beta = meta["recipe"]["beta"]
    # Rewards are beta * log-ratio; in nats they compare across betas.
    moved = (f"{last.get('rewards/chosen', 0) / beta:+.0f} / {last.get('rewards/rejected', 0) / beta:+.0f}"
             if last else "")
    verdict = "served" if gate["passed"] else "refused: " + "; ".join(gate["reasons"])
    return (out.name, f"{meta['rows']} rows, {meta['steps']} steps", replies(gate["candidate"]),
            replies(gate["serving"]), f"{gate['candidate']['auc']:.3f} ({gate['serving']['auc']:.3f})",
            f"{gate['candidate']['kl']:.2f}", moved, verdict)


HEADER = ("recipe", "round", "candidate's probe replies", "serving v0001's", "held-out AUC (serving)",
          "KL to base", "last step: liked / disliked log-ratio to its reference (nats)", "gate")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--state", type=Path, help="a DATA_DIR with votes (e.g. a learning run's state folder)")
    parser.add_argument("--recipe", action="append", default=[],
                        help="NAME:VAR=VALUE,VAR=VALUE (the app's settings for that round)")
    parser.add_argument("--tokens", type=int, default=128, help="CHAT_MAX_NEW_TOKENS (the gate's probe cap)")
    parser.add_argument("--votes", type=int, default=24, help="MIN_VOTES")
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "bench-round-recipe")
    parser.add_argument("--report-only", nargs="+", type=Path, help="tabulate recipes already run (their folders)")
    parser.add_argument("--name", default="round-recipe")
    args = parser.parse_args()
    if args.report_only:
        folders = args.report_only
    else:
        folders = []
        for recipe in args.recipe:
            name, _, settings = recipe.partition(":")
            env = dict(item.split("=", 1) for item in settings.split(",") if item)
            seconds = run_recipe(args.state, args.out / name, env, args.tokens, args.votes)
            print(f"{name}: {seconds:.0f} s")
            folders.append(args.out / name)
    rows = [summary(folder) for folder in folders]
    body = (table(HEADER, rows) + "\n\nOne round on the same waiting votes per recipe (a learning run's state), the "
            "app's own round (`python -m trainer train`): anchors, replays, early stopping and the gate, whose "
            "sampled probe replies (same papers, same seeds, the chat's sampling) are the candidate's and the "
            "serving version's." + (" Tabulated from folders run before (each with the same steps as --recipe)."
                                    if args.report_only else ""))
    publish(args.name, "One round's recipe, A/B on the same votes", "python bench/round_recipe.py "
            + " ".join(sys.argv[1:]), body)


if __name__ == "__main__":
    main()
