"""Which preference loss, and which beta? Every LOSS trained on the same seed rows for the same steps, side by side.

Run:  .venv/bin/python bench/losses.py [--papers 16] [--steps 12] [--betas 0.01 0.05 0.1] [--fresh 12]

In one process, on the embedded SmolLM2 base: a fresh adapter per (loss, beta) from the base, trained by
`train_round` (the app's round: the twin, reference = the base, the reference cache, the recipe) with the
gate and early stopping off, on the seed train rows of --papers papers (two liked and two disliked
reviews each: the unpaired losses read the rows, the paired ones the pairs they make). Then each
version is scored on the 264 seed eval rows (132 pairs, papers no round saw): AUC, rewards/accuracy on
the pairs, reward margin, KL to the base, the share of quantile levels where liked rewards dominate
disliked ones (the AOT paper's criterion), and the simulated voter's (bench/voter.py) like-rate on
greedy replies to --fresh papers no round saw (bench/papers.py FRESH), against the base's.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from bench.papers import FRESH  # noqa: E402
from bench.report import publish, table  # noqa: E402
from bench.voter import prompt_of, verdict  # noqa: E402
from trainer.config import LOSSES, AppSettings, GateSettings, TrainingSettings  # noqa: E402
from trainer.data import conversational, paired_rows  # noqa: E402
from trainer.gate.evaluate import evaluate  # noqa: E402
from trainer.gate.rule import quantiles  # noqa: E402
from trainer.serve.model import load_base, merged_with_adapter, with_adapter  # noqa: E402
from trainer.store.files import read_preferences  # noqa: E402
from trainer.store.versions import VersionStore  # noqa: E402
from trainer.train.reference import ReferenceCache  # noqa: E402
from trainer.train.round import train_round  # noqa: E402


def seed_rows(settings: AppSettings, papers: int) -> list[dict]:
    """Every seed train row of `papers` papers drawn once (the same for every loss), conversational."""
    rows = read_preferences(settings.gate.seed_file, split="train")
    chosen = set(random.Random(0).sample(sorted({r["paper_id"] for r in rows}), papers))
    return [conversational(r, settings.persona.system_prompt) for r in rows if r["paper_id"] in chosen]


@torch.inference_mode()
def like_rate(base, model, persona: str, papers: list[tuple[str, str]], tokens: int) -> float:
    """The simulated voter's like-rate on greedy replies to `papers`, generated in one padded batch."""
    tokenizer = base.tokenizer
    prompts = [prompt_of(title, abstract) for title, abstract in papers]
    texts = [tokenizer.apply_chat_template([{"role": "system", "content": persona}, {"role": "user", "content": p}],
                                           add_generation_prompt=True, tokenize=False) for p in prompts]
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    try:
        inputs = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    finally:
        tokenizer.padding_side = side
    output = model.generate(**inputs, max_new_tokens=tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    replies = tokenizer.batch_decode(output[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
    return sum(verdict(reply.strip(), prompt).liked for reply, prompt in zip(replies, prompts)) / len(prompts)


def dominance(liked: list[float], disliked: list[float]) -> float:
    """Share of 21 quantile levels where the liked rewards' quantile is above the disliked one's."""
    pairs = list(zip(quantiles(liked), quantiles(disliked)))
    return sum(a > b for a, b in pairs) / len(pairs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--papers", type=int, default=16, help="seed train papers (4 rows, 2 pairs each)")
    parser.add_argument("--steps", type=int, default=12, help="optimizer steps of every round")
    parser.add_argument("--betas", type=float, nargs="+", default=[0.01, 0.05, 0.1])
    parser.add_argument("--losses", nargs="+", default=list(LOSSES), choices=LOSSES)
    parser.add_argument("--fresh", type=int, default=12, help="fresh papers the voter judges replies to")
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
    base_like = like_rate(base, base.model, persona, fresh, args.tokens)
    print(f"{len(rows)} rows / {len(pairs)} pairs; base like-rate {base_like:.0%}", flush=True)
    caches = {"unpaired": ReferenceCache(), "paired": ReferenceCache()}  # the reference pass once per row, as in the app
    results = []
    for loss in args.losses:
        for beta in args.betas:
            settings.training = TrainingSettings(loss=loss)
            settings.round_overrides = {"max_steps": args.steps, "num_train_epochs": 100.0, "beta": beta}
            versions = VersionStore(work / f"{loss}-{beta}")
            started = time.perf_counter()
            result = train_round(base, pairs if settings.training.paired else rows, versions.get("base"), settings,
                                 versions, reference_cache=caches["paired" if settings.training.paired else "unpaired"])
            seconds = time.perf_counter() - started
            path = versions.get(result.version).path
            # Scored at the beta it trained with: AUC and accuracies do not depend on it, margins scale with it.
            scored = evaluate(base, with_adapter(base, path), eval_rows, result.version, beta=beta)
            liked = like_rate(base, merged_with_adapter(base, path), persona, fresh, args.tokens)
            results.append((loss, beta, scored, liked, seconds))
            print(f"{loss} beta {beta}: AUC {scored.auc:.3f}, pair acc {scored.pair_accuracy:.3f}, "
                  f"KL {scored.kl:.3f}, like-rate {liked:.0%}, {seconds:.0f} s", flush=True)

    header = ("loss", "beta", "held-out AUC", "pair accuracy", "margin (x 0.1/beta)", "KL to base",
              "liked dominates (quantiles)", "like-rate (fresh)", "vs base", "round s")
    body_rows = [(loss, beta, f"{s.auc:.3f}", f"{s.pair_accuracy:.3f}", f"{s.margin * 0.1 / beta:.2f}", f"{s.kl:.3f}",
                  f"{dominance(s.rewards_liked, s.rewards_disliked):.0%}", f"{liked:.0%}",
                  f"{(liked - base_like) * 100:+.0f} pts", f"{seconds:.0f}")
                 for loss, beta, s, liked, seconds in results]
    command = "python bench/losses.py " + " ".join(sys.argv[1:])
    body = (table(header, body_rows) + f"\n\nEvery round: a fresh adapter on the base, {args.steps} steps of 4 "
            f"(rows for kto / aot_unpaired, pairs for dpo / ipo / aot) from {len(rows)} seed train rows = {len(pairs)} "
            f"pairs of {args.papers} papers; the gate and early stopping off. Scored on {len(eval_rows)} seed eval rows "
            f"({len(eval_rows) // 2} pairs) of papers no round saw; margin in rewards at beta 0.1 (the margin divided "
            f"by beta, times 0.1); like-rate: the simulated voter on greedy {args.tokens}-token replies to "
            f"{len(fresh)} fresh papers (base: {base_like:.0%}). Round seconds include the reference pass, computed "
            "once per row and cached across the betas of one kind of rows (the first beta of each loss kind pays it).")
    publish(args.name, "Losses: kto, aot_unpaired, dpo, ipo, aot at three betas, on the same seed rows and steps",
            command, body)


if __name__ == "__main__":
    main()
