"""Which preference loss, and which beta? Every LOSS trained on the same seed rows for the same steps, side by side.

Run:  .venv/bin/python bench/losses.py [--papers 16] [--steps 12] [--betas 0.01 0.05 0.1] [--fresh 12]

In one process, on the embedded SmolLM2 base: a fresh adapter per (loss, beta) from the base, trained by
`train_round` (the app's round: the twin, reference = the base, the reference cache, the recipe) with the
gate and early stopping off, on the seed train rows of --papers papers (two liked and two disliked
reviews each: the unpaired losses read the rows, the paired ones the pairs they make). Then each
version is scored on the 264 seed eval rows (132 pairs, papers no round saw): AUC, rewards/accuracy on
the pairs, reward margin, KL to the base, the share of quantile levels where liked rewards dominate
disliked ones (the AOT paper's criterion), and the simulated voter's (bench/voter.py) like-rate on
greedy replies to --fresh papers no round saw (bench/papers.py FRESH), against the base's (--fresh 0:
not measured; bench/loss_curve.py measures it round by round). The table is republished after every
round, so a run cut short leaves the rows it finished.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.loss_curve import replies  # noqa: E402
from bench.papers import FRESH  # noqa: E402
from bench.report import publish, table  # noqa: E402
from bench.voter import prompt_of, verdict  # noqa: E402
from trainer.config import LOSSES, AppSettings, GateSettings, TrainingSettings  # noqa: E402
from trainer.data import conversational, paired_rows  # noqa: E402
from trainer.gate.evaluate import evaluate  # noqa: E402
from trainer.gate.rule import quantiles  # noqa: E402
from trainer.model.base import load_base, merged_with_adapter, with_adapter  # noqa: E402
from trainer.store.files import read_preferences  # noqa: E402
from trainer.store.versions import VersionStore  # noqa: E402
from trainer.train.reference import ReferenceCache  # noqa: E402
from trainer.train.round import train_round  # noqa: E402


def seed_rows(settings: AppSettings, papers: int) -> list[dict]:
    """Every seed train row of `papers` papers drawn once (the same for every loss), conversational."""
    rows = read_preferences(settings.gate.seed_file, split="train")
    chosen = set(random.Random(0).sample(sorted({r["paper_id"] for r in rows}), papers))
    return [conversational(r, settings.persona.system_prompt) for r in rows if r["paper_id"] in chosen]


def like_rate(base, model, persona: str, papers: list[tuple[str, str]], tokens: int) -> float:
    """The simulated voter's like-rate on greedy replies to `papers`, generated in one padded batch."""
    prompts = [prompt_of(title, abstract) for title, abstract in papers]
    texts = replies(base, model, persona, prompts, tokens, sample=None)
    return sum(verdict(reply, prompt).liked for reply, prompt in zip(texts, prompts)) / len(prompts)


def dominance(liked: list[float], disliked: list[float]) -> float:
    """Share of 21 quantile levels where the liked rewards' quantile is above the disliked one's."""
    pairs = list(zip(quantiles(liked), quantiles(disliked)))
    return sum(a > b for a, b in pairs) / len(pairs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--papers", type=int, default=16, help="seed train papers (4 rows, 2 pairs each)")
    parser.add_argument("--steps", type=int, default=12, help="optimizer steps of every round")
    parser.add_argument("--betas", type=float, nargs="+", default=[0.1, 0.05, 0.01])
    parser.add_argument("--losses", nargs="+", default=list(LOSSES), choices=LOSSES)
    parser.add_argument("--fresh", type=int, default=12, help="fresh papers the voter judges replies to (0: none)")
    parser.add_argument("--tokens", type=int, default=128, help="reply length cap for the voter's replies")
    parser.add_argument("--eval-rows", type=int, default=264, help="seed eval rows scored (264: all)")
    parser.add_argument("--name", default="losses")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-losses-"))
    settings = AppSettings.from_env({"DATA_DIR": str(work), "DEVICE": "cpu"})
    settings.gate = GateSettings(enabled=False, early_stop_every=0)
    base = load_base(settings.model)
    rows = seed_rows(settings, args.papers)
    pairs = paired_rows(rows)
    persona = settings.persona.system_prompt
    eval_rows = [conversational(r, persona)
                 for r in read_preferences(settings.gate.seed_file, split="eval")][:args.eval_rows]
    fresh = FRESH[:args.fresh]
    base_like = like_rate(base, base.model, persona, fresh, args.tokens) if fresh else None
    print(f"{len(rows)} rows / {len(pairs)} pairs; base like-rate {base_like}", flush=True)
    caches = {"unpaired": ReferenceCache(), "paired": ReferenceCache()}  # the reference pass once per row, as in the app
    results: list[dict] = []
    for beta in args.betas:  # every loss at the first beta first: a run cut short still compares the losses
        for loss in args.losses:
            settings.training = TrainingSettings(loss=loss)
            settings.round_overrides = {"max_steps": args.steps, "num_train_epochs": 100.0, "beta": beta}
            versions = VersionStore(work / f"{loss}-{beta}")
            started = time.perf_counter()
            result = train_round(base, pairs if settings.training.paired else rows, versions.get("base"), settings,
                                 versions, reference_cache=caches["paired" if settings.training.paired else "unpaired"])
            seconds = time.perf_counter() - started
            path = versions.get(result.version).path
            # Scored at the beta it trained with: AUC and accuracies do not depend on it, margins scale with it.
            s = evaluate(base, with_adapter(base, path), eval_rows, result.version, beta=beta)
            liked = like_rate(base, merged_with_adapter(base, path), persona, fresh, args.tokens) if fresh else None
            results.append({"loss": loss, "beta": beta, "auc": s.auc, "pair_accuracy": s.pair_accuracy,
                            "margin": s.margin * 0.1 / beta, "kl": s.kl,
                            "dominance": dominance(s.rewards_desirable, s.rewards_undesirable), "like_rate": liked,
                            "seconds": seconds})
            print(json.dumps(results[-1]), flush=True)
            # Published after every round, so a run cut short still leaves the rows it finished.
            report(args, results, len(rows), len(pairs), len(eval_rows), len(fresh), base_like)


def report(args, results: list[dict], n_rows: int, n_pairs: int, n_eval: int, n_fresh: int,
           base_like: float | None) -> None:
    header = ("loss", "beta", "held-out AUC", "pair accuracy", "margin (at beta 0.1)", "KL to base",
              "liked dominates (quantiles)", "like-rate (fresh)", "round s")
    body_rows = [(r["loss"], r["beta"], f"{r['auc']:.3f}", f"{r['pair_accuracy']:.3f}", f"{r['margin']:.2f}",
                  f"{r['kl']:.3f}", f"{r['dominance']:.0%}",
                  "-" if r["like_rate"] is None else f"{r['like_rate']:.0%} ({(r['like_rate'] - base_like) * 100:+.0f})",
                  f"{r['seconds']:.0f}") for r in results]
    like = (f"like-rate: the simulated voter on greedy {args.tokens}-token replies to {n_fresh} fresh papers, points "
            f"against the base's {base_like:.0%} in brackets" if n_fresh else
            "like-rate: not measured here (--fresh 0; bench/loss_curve.py measures it round by round)")
    command = "python bench/losses.py " + " ".join(sys.argv[1:])
    body = (table(header, body_rows) + f"\n\nEvery round: a fresh adapter on the base, {args.steps} steps of 4 "
            f"(rows for kto / aot_unpaired, pairs for dpo / ipo / aot) from {n_rows} seed train rows = {n_pairs} "
            f"pairs of {args.papers} papers; the gate and early stopping off. Scored on {n_eval} seed eval rows "
            f"({n_eval // 2} pairs) of papers no round saw; margin: mean reward liked - disliked, divided by beta and "
            f"times 0.1; {like}. Round seconds include the reference pass, computed once per row and cached across "
            f"the betas (the first round of each kind of rows pays it). {len(results)} of "
            f"{len(args.losses) * len(args.betas)} rounds done.")
    publish(args.name, "Losses: kto, aot_unpaired, dpo, ipo, aot at three betas, on the same seed rows and steps",
            command, body)


if __name__ == "__main__":
    main()
