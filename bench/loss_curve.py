"""Which loss learns the voter's taste fastest? Rounds of each LOSS on the same voter, from the shipped v1.

Run:  .venv/bin/python bench/loss_curve.py [--rounds 2] [--papers 16] [--fresh 24] [--beta 0.1]

In one process, on the embedded SmolLM2 base, for every LOSS: start from the shipped v1, then for
--rounds rounds: the serving version writes two sampled replies (the app's sampling settings) to
each of --papers training papers (bench/papers.py TRAIN, new ones each round); the simulated voter
(bench/voter.py) judges every reply. The unpaired losses train on both replies as thumbs; the
paired losses on the pairs where the voter prefers one (more of its checks passed), so both
families read the same replies and the same judgments. Each round adds the app's seed anchors,
runs `train_round` as the app does (KTO_MAX_STEPS, the recipe, the cached base reference; the gate
off, so that every round's version is measured) and continues from the last version. After each
round the version answers --fresh papers no round saw (FRESH), sampled as the app samples, from
the same random seed for every loss and round: the like-rate curve, and the voter's mean score (the
share of its checks a reply passes: like-rate moves in steps of a whole reply, and v1 is liked
rarely in-process, so the score is the finer measure).
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

from bench.papers import FRESH, TRAIN  # noqa: E402
from bench.report import publish, table  # noqa: E402
from bench.voter import prompt_of, verdict  # noqa: E402
from trainer.config import LOSSES, SHIPPED_ADAPTER, AppSettings, GateSettings, TrainingSettings  # noqa: E402
from trainer.contracts import VersionMeta  # noqa: E402
from trainer.data import balanced_sample, conversational, paired_rows  # noqa: E402
from trainer.model.base import load_base, merged_with_adapter  # noqa: E402
from trainer.store.files import read_preferences  # noqa: E402
from trainer.store.versions import VersionStore  # noqa: E402
from trainer.train.reference import ReferenceCache  # noqa: E402
from trainer.train.round import train_round  # noqa: E402


@torch.inference_mode()
def replies(base, model, persona: str, prompts: list[str], tokens: int, sample: dict | None) -> list[str]:
    """One reply per prompt, in one left-padded batch: greedy, or sampled with `sample`'s settings."""
    tokenizer = base.tokenizer
    texts = [tokenizer.apply_chat_template([{"role": "system", "content": persona}, {"role": "user", "content": p}],
                                           add_generation_prompt=True, tokenize=False) for p in prompts]
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    try:
        inputs = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    finally:
        tokenizer.padding_side = side
    options = {"do_sample": True, **sample} if sample else {"do_sample": False}
    output = model.generate(**inputs, max_new_tokens=tokens, pad_token_id=tokenizer.pad_token_id, **options)
    return [r.strip() for r in tokenizer.batch_decode(output[:, inputs["input_ids"].shape[1]:],
                                                      skip_special_tokens=True)]


def judged(base, model, persona: str, prompts: list[str], tokens: int, sample: dict) -> tuple[float, float]:
    """The voter's like-rate and mean score (share of its checks passed) on the version's sampled replies to
    `prompts`, from a fixed seed."""
    torch.manual_seed(1234)
    verdicts = [verdict(t, p) for t, p in zip(replies(base, model, persona, prompts, tokens, sample), prompts)]
    return sum(v.liked for v in verdicts) / len(verdicts), sum(v.score for v in verdicts) / len(verdicts)


def voted_rows(persona: str, prompts: list[str], first: list[str], second: list[str]) -> tuple[list[dict], list[dict]]:
    """The voter's judgments of two replies per paper: (thumbs as unpaired rows, pairs it prefers one of)."""
    thumbs, pairs = [], []
    for prompt, a, b in zip(prompts, first, second):
        judged = {text: verdict(text, prompt) for text in (a, b)}
        for text, v in judged.items():
            thumbs.append(conversational({"prompt": prompt, "completion": text, "label": v.liked}, persona))
        if judged[a].score != judged[b].score:
            chosen, rejected = (a, b) if judged[a].score > judged[b].score else (b, a)
            pairs.append({"prompt": thumbs[-1]["prompt"], "chosen": [{"role": "assistant", "content": chosen}],
                          "rejected": [{"role": "assistant", "content": rejected}]})
    return thumbs, pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--papers", type=int, default=16, help="training papers per round, two replies each")
    parser.add_argument("--fresh", type=int, default=24, help="fresh papers measured after each round")
    parser.add_argument("--beta", type=float, default=0.1)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--losses", nargs="+", default=list(LOSSES), choices=LOSSES)
    parser.add_argument("--name", default="loss-curve")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-loss-curve-"))
    settings = AppSettings.from_env({"DATA_DIR": str(work), "DEVICE": "cpu"})
    settings.gate = GateSettings(enabled=False, early_stop_every=0)
    settings.round_overrides = {"beta": args.beta}
    base = load_base(settings.model)
    persona = settings.persona.system_prompt
    sample = {"temperature": settings.chat.temperature, "top_p": settings.chat.top_p,
              "repetition_penalty": settings.chat.repetition_penalty}
    fresh = [prompt_of(*paper) for paper in FRESH[:args.fresh]]
    seed_train = [conversational(r, persona) for r in read_preferences(settings.gate.seed_file, split="train")]
    caches = {"unpaired": ReferenceCache(), "paired": ReferenceCache()}
    curves, seconds = {}, {}
    for loss in args.losses:
        settings.training = TrainingSettings(loss=loss)
        paired = settings.training.paired
        versions = VersionStore(work / loss)
        parent = versions.get(versions.install(SHIPPED_ADAPTER, VersionMeta.read(SHIPPED_ADAPTER / "meta.json")))
        model = merged_with_adapter(base, parent.path)
        curve = [judged(base, model, persona, fresh, args.tokens, sample)]
        started = time.perf_counter()
        for round_number in range(args.rounds):
            torch.manual_seed(round_number)  # every loss's first round reads the same replies of the same v1
            papers = [TRAIN[(round_number * args.papers + i) % len(TRAIN)] for i in range(args.papers)]
            prompts = [prompt_of(*paper) for paper in papers]
            first, second = (replies(base, model, persona, prompts, args.tokens, sample) for _ in range(2))
            thumbs, pairs = voted_rows(persona, prompts, first, second)
            if paired:
                anchors = paired_rows(seed_train)
                rows = pairs + random.Random(round_number).sample(anchors, settings.loop.seed_anchors // 2)
            else:
                rows = thumbs + balanced_sample(seed_train, settings.loop.seed_anchors, seed=round_number)
            result = train_round(base, rows, parent, settings, versions,
                                 reference_cache=caches["paired" if paired else "unpaired"])
            parent = versions.get(result.version)
            model = merged_with_adapter(base, parent.path)
            curve.append(judged(base, model, persona, fresh, args.tokens, sample))
            print(f"{loss} round {round_number + 1}: {sum(r['label'] for r in thumbs)}/{len(thumbs)} replies liked, "
                  f"{len(pairs)} pairs -> {result.version}; fresh like-rate {curve[-1][0]:.0%}, voter score "
                  f"{curve[-1][1]:.3f} (v1: {curve[0][0]:.0%}, {curve[0][1]:.3f})", flush=True)
        curves[loss], seconds[loss] = curve, time.perf_counter() - started

    header = ("loss", "v1 (start)", *(f"round {i + 1}" for i in range(args.rounds)), "score vs start", "seconds")
    rows = [(loss, *(f"{rate:.0%} / {score:.3f}" for rate, score in curve),
             f"{(curve[-1][1] - curve[0][1]):+.3f} ({curve[-1][1] / curve[0][1]:.2f}x)", f"{seconds[loss]:.0f}")
            for loss, curve in curves.items()]
    command = "python bench/loss_curve.py " + " ".join(sys.argv[1:])
    body = (table(header, rows) + f"\n\nCells: like-rate / mean voter score (the share of its seven checks a reply "
            f"passes: a reply is liked only if it passes all). The simulated voter on sampled {args.tokens}-token replies "
            f"(the app's sampling, one fixed seed) to {len(fresh)} fresh papers, after each round. A round: two sampled replies to each of {args.papers} "
            f"training papers from the version serving, judged by the voter; kto / aot_unpaired train on all of "
            f"them as thumbs, dpo / ipo / aot on the pairs the voter prefers one of; {settings.loop.seed_anchors} seed "
            f"anchor rows ({settings.loop.seed_anchors // 2} pairs) beside them; beta {args.beta}; the gate off.")
    publish(args.name, "Losses: the simulated voter's like-rate, round by round, per loss", command, body)


if __name__ == "__main__":
    main()
