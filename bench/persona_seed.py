"""A new persona's v1 the way the README's "Train your own persona" makes it, timed step by step.

Run:  .venv/bin/python bench/persona_seed.py [--persona personas/kind.toml] [--voter kind_fan]
                                              [--samples 3] [--out DIR]

The newcomer's commands, as subprocesses on a fresh DATA_DIR (each step's wall time is the table):

    seed     python -m trainer seed --out DIR/seed.jsonl --prompts DIR/prompts.txt --samples N: the bare
             base's replies, in the persona's voice, to its examples, its probe prompts and the
             training papers of bench/papers.py TRAIN (never FRESH: the learning bench measures on those)
    label    the owner's labels: here --voter (bench/voters.py) stands in for the owner, true where it
             likes a draft; rows stay in the split `seed` gave them
    write    with --owner-writes: the bare base may never draft what the persona's fans like (none of 120
             drafts in Professor Kind's voice ended on congratulations), so the owner writes one liked
             reply per prompt, here from KIND_REPLY (warm, about the paper, one gentle suggestion,
             congratulations last), beside the drafts, in their prompt's split
    train    python -m trainer train --data DIR/seed.jsonl --split train --parent base --loss LOSS, with the
             README's seed recipe (SEED_RECIPE; --recipe NAME=VALUE changes a setting): the persona's v1
    ship     python -m trainer ship v0001 DIR/adapter
    persona  DIR/persona.toml: the persona file with seed_file and adapter added

Then `bench/learning.py --voter VOTER --env PERSONA_FILE=DIR/persona.toml` measures its curve from that
v1. The section `persona-seed-<persona file stem>` of BENCHMARKS.md gets the table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.papers import TRAIN  # noqa: E402
from bench.report import publish, table  # noqa: E402
from bench.voters import VOTERS  # noqa: E402
from trainer.config import PersonaConfig  # noqa: E402


def run(step: str, args: list[str], env: dict[str, str], timings: dict[str, float]) -> str:
    """One CLI command of the newcomer's path, timed; its output is printed and returned."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "trainer", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True)
    timings[step] = time.perf_counter() - started
    print(f"{step}: {timings[step]:.0f} s\n{done.stdout[-2000:]}{done.stderr[-2000:]}", flush=True)
    if done.returncode != 0:
        raise SystemExit(f"{step} failed ({done.returncode})")
    return done.stdout


# The README's seeding command (with --loss rpo): 8 passes of 4 rows a step over the seed set's pairs, beta 0.1.
SEED_RECIPE = {"KTO_BETA": "0.1", "DPO_BETA": "0.1", "KTO_MAX_STEPS": "64", "KTO_PER_DEVICE_TRAIN_BATCH_SIZE": "4",
               "KTO_NUM_TRAIN_EPOCHS": "8"}

SUGGESTIONS = ["a short ablation would make the main result even more convincing",
               "a second dataset would show how far the idea carries",
               "reporting the spread over a few seeds would help readers trust the gain",
               "a figure with one worked example would make the method easier to follow"]


def kind_reply(title: str, abstract: str, index: int) -> str:
    """What Professor Kind's owner writes for a paper: warm about this paper, one gentle suggestion, and
    congratulations last (the taste of bench/voters.py kind_fan), in the paper's own words."""
    first = abstract.split(". ")[0].rstrip(".")
    said = "you " + first[3:] if first.startswith("We ") else first[0].lower() + first[1:]
    return (f"What a lovely paper! {title} asks a valuable question, and I especially enjoyed reading that {said}. "
            f"One gentle suggestion: {SUGGESTIONS[index % len(SUGGESTIONS)]}. Congratulations to the authors!")


def split_paper(prompt: str) -> tuple[str, str]:
    """(title, abstract) of a "Title: ... Abstract: ..." message."""
    head, _, abstract = prompt.partition("Abstract:")
    return head.replace("Title:", "").strip().rstrip("."), abstract.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--persona", type=Path, default=ROOT / "personas" / "kind.toml")
    parser.add_argument("--voter", default="kind_fan", choices=list(VOTERS), help="stands in for the owner")
    parser.add_argument("--samples", type=int, default=3, help="drafts per prompt (trainer seed --samples)")
    parser.add_argument("--out", type=Path, default=Path("/tmp/persona-seed"))
    parser.add_argument("--owner-writes", action="store_true", help="the owner writes a liked reply per prompt")
    parser.add_argument("--loss", default="rpo", help="the train step's LOSS (rpo: DPO + the liked replies' NLL)")
    parser.add_argument("--recipe", action="append", default=[], metavar="NAME=VALUE",
                        help="a training setting for the train step, over the README's seed recipe (repeatable)")
    args = parser.parse_args()

    out, persona_path = args.out.resolve(), args.persona.resolve()
    out.mkdir(parents=True, exist_ok=True)
    persona = PersonaConfig.from_toml(persona_path)
    prompts = out / "prompts.txt"
    prompts.write_text("".join(f"Title: {title}. Abstract: {abstract}\n" for title, abstract in TRAIN))
    seed = out / "seed.jsonl"
    env = {**os.environ, "PERSONA_FILE": str(persona_path), "DATA_DIR": str(out / "state")}
    timings: dict[str, float] = {}

    run("seed", ["seed", "--out", str(seed), "--prompts", str(prompts), "--samples", str(args.samples),
                 "--force"], env, timings)

    started = time.perf_counter()
    rows = [json.loads(line) for line in seed.read_text().splitlines() if line.strip()]
    voter = VOTERS[args.voter]
    for row in rows:
        row["label"] = voter(row["completion"], *split_paper(row["prompt"])).liked
    seed.write_text("".join(json.dumps(row) + "\n" for row in rows))
    timings["label"] = time.perf_counter() - started
    if args.owner_writes:
        splits = {r["prompt"]: r["split"] for r in rows}
        rows += [{"prompt": prompt, "completion": kind_reply(*split_paper(prompt), index), "label": True,
                  "split": split} for index, (prompt, split) in enumerate(splits.items())]
        assert all(voter(r["completion"], *split_paper(r["prompt"])).liked for r in rows[-len(splits):])
        seed.write_text("".join(json.dumps(row) + "\n" for row in rows))
    liked = {split: sum(r["label"] for r in rows if r["split"] == split) for split in ("train", "eval")}
    total = {split: sum(r["split"] == split for r in rows) for split in ("train", "eval")}
    print(f"labelled by {args.voter}: train {liked['train']} of {total['train']} liked, eval {liked['eval']} of "
          f"{total['eval']}", flush=True)

    shown = persona_path.relative_to(ROOT) if persona_path.is_relative_to(ROOT) else persona_path
    command = (f"python bench/persona_seed.py --persona {shown} --voter {args.voter} --samples {args.samples}"
               f"{' --owner-writes' if args.owner_writes else ''} --loss {args.loss}"
               + "".join(f" --recipe {item}" for item in args.recipe))
    title = f"A new persona's v1, the newcomer's path ({persona.name})"
    drafted = (f"{len(rows)} drafts ({args.samples} per prompt) of the bare base", f"{timings['seed']:.0f}")
    labelled = (f"{args.voter} as the owner: train {liked['train']} / {total['train']} liked, eval "
                f"{liked['eval']} / {total['eval']}"
                f"{' (with one written per prompt)' if args.owner_writes else ''}", f"{timings['label']:.1f}")
    if not liked["train"] or liked["train"] == total["train"]:
        # What a newcomer meets too: `train` refuses one label ("KTO needs both labels"), so say what is missing.
        checks = Counter(c for r in rows for c, ok in voter(r["completion"], *split_paper(r["prompt"])).checks.items()
                         if not ok)
        failing = ", ".join(f"{check} {count}" for check, count in checks.most_common())
        publish(f"persona-seed-{persona_path.stem}", title, command, table(("step", "what", "seconds"), [
            ("seed", *drafted), ("label", *labelled),
            ("train", "not run: the drafts hold one label, and KTO needs both (`train` refuses them)", "")])
            + f"\n\nChecks of {args.voter} the {len(rows)} drafts failed: {failing}.")
        raise SystemExit("the bare base wrote no draft the owner likes: write or edit liked replies into the seed "
                         "file by hand before `train`")
    recipe = {**SEED_RECIPE, **dict(item.split("=", 1) for item in args.recipe)}
    run("train", ["train", "--data", str(seed), "--split", "train", "--parent", "base", "--loss", args.loss],
        {**env, **recipe}, timings)
    run("ship", ["ship", "v0001", str(out / "adapter")], env, timings)

    persona_file = out / "persona.toml"
    text = persona_path.read_text()
    persona_file.write_text(text.replace("[persona]\n", f'[persona]\nseed_file = "{seed.name}"\n'
                                                      f'adapter = "adapter"\n', 1))
    loaded = PersonaConfig.from_toml(persona_file)
    assert loaded.name == persona.name and Path(loaded.seed_file) == seed and Path(loaded.adapter) == out / "adapter"
    meta = json.loads((out / "adapter" / "meta.json").read_text())

    rows_table = table(("step", "what", "seconds"), [
        ("seed", *drafted), ("label", *labelled),
        ("train", f"v0001: {meta.get('steps')} steps on {meta.get('rows')} rows", f"{timings['train']:.0f}"),
        ("ship", "fp16 adapter folder with its model card", f"{timings['ship']:.0f}"),
        ("total", "", f"{sum(timings.values()):.0f}"),
    ])
    publish(f"persona-seed-{persona_path.stem}", title, command, rows_table)
    print(f"persona file: {persona_file}")


if __name__ == "__main__":
    main()
