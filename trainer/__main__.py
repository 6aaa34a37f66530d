"""The trainer's command line: `python -m trainer {convert,train,export,eval,ship,versions,pull,push} ...`.

Settings come from the same environment as the app (see README.md), so a round trained here is
published exactly as the app would publish it, into the same DATA_DIR.

    python -m trainer convert              # convert the embedded model once, print its folder
    python -m trainer train                # one round on the waiting votes, then serve it
    python -m trainer train --data data/seed.jsonl --split train --parent base   # a round from a file
    python -m trainer train --loss dpo ...   # any LOSS: kto, aot_unpaired, dpo, ipo, aot
    python -m trainer export --out votes.jsonl [--paired]   # votes and picks as KTO (or DPO) rows
    python -m trainer eval --data data/seed.jsonl --split eval --version base v0001
    python -m trainer versions             # list versions and their round metrics
    python -m trainer versions --serve v0001   # move the serving pointer (a rollback)
    python -m trainer pull                 # a fresh DATA_DIR from the votes and versions kept on HUB_REPO
    python -m trainer push                 # what HUB_REPO lacks, now (the app pushes every HUB_PUSH_SECONDS)
    python -m trainer seed --persona FILE --out seed.jsonl   # draft a persona's seed set, for its owner to label
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import random
import sys
from pathlib import Path

from .config import LOSSES, AppSettings, SettingError, environment_help
from .contracts import TrainerError

# Every command imports what it needs when it runs: `--help` loads neither torch nor TRL.


def cmd_convert(settings: AppSettings, args: argparse.Namespace) -> int:
    from .model.base import resolve_source

    print(resolve_source(settings.model))
    return 0


def cmd_train(settings: AppSettings, args: argparse.Namespace) -> int:
    if args.loss is not None:
        settings.training = dataclasses.replace(settings.training, loss=args.loss)
    if args.steps is not None:
        settings.round_overrides["max_steps"] = args.steps
    if args.epochs is not None:
        settings.round_overrides["num_train_epochs"] = args.epochs
    settings.round_overrides.setdefault("disable_tqdm", False)  # a progress bar on the terminal
    from .train.recipe import check_recipe

    check_recipe(settings)
    if args.data is None:
        return _train_from_votes(settings)
    from .contracts import VersionMeta
    from .data import balanced_sample, conversational, paired_rows
    from .model.base import load_base
    from .store.files import read_preferences, sha256_of
    from .store.versions import VersionStore
    from .train.round import train_round

    rows = [conversational(r, settings.persona.system_prompt) for r in read_preferences(args.data, args.split)]
    if settings.training.paired:  # a liked and a disliked completion of the same prompt make a pair
        rows = paired_rows(rows)
        if args.rows is not None:
            rows = random.Random(0).sample(rows, min(len(rows), max(1, args.rows // 2)))
    elif args.rows is not None:  # the reference pass then covers only the rows a round of few steps reads
        rows = balanced_sample(rows, args.rows, seed=0)
    versions = VersionStore(settings.data_dir / "versions")
    parent = versions.get(args.parent or versions.current())
    base = load_base(settings.model)
    # The exact command, with the training settings that came from the environment.
    env = " ".join(f"{k}={v}" for k, v in sorted(os.environ.items())
                   if k.startswith(("KTO_", "LORA_")) or k in ("LOSS", "AOT_MARGIN", "DPO_BETA", "REFERENCE"))
    meta = VersionMeta(command=f"{env} python -m trainer {' '.join(sys.argv[1:])}".strip(), data_file=str(args.data),
                       data_sha256=sha256_of(args.data), split=args.split)
    result = train_round(base, rows, parent, settings, versions, meta=meta)
    versions.set_current(result.version, reason="command line round")
    _print_round(result)
    return 0


def _train_from_votes(settings: AppSettings) -> int:
    from .runtime import Runtime

    settings.loop.enabled = False
    runtime = Runtime.start(settings)
    up, down = runtime.learner.waiting_counts()
    if not runtime.loop.can_train(up, down):
        print(f"error: no round can train on the waiting votes ({up} up, {down} down): a round needs waiting "
              "votes, of both kinds when SEED_ANCHORS is 0", file=sys.stderr)
        return 2
    result = runtime.loop.run_round()
    if result is None:
        print(f"error: the round failed: {runtime.loop.status().last_error}", file=sys.stderr)
        return 1
    if not result.passed:
        print(f"published {result.version}, kept from serving by the gate: {'; '.join(result.gate.reasons)}",
              file=sys.stderr)
        return 1
    _print_round(result)
    return 0


def _print_round(result) -> None:
    meta = result.meta
    print(f"published and serving {result.version} ({meta.rows} rows, {meta.steps} steps, "
          f"{meta.timings.total_s:.1f} s)")


def cmd_export(settings: AppSettings, args: argparse.Namespace) -> int:
    from .data import kto_rows, pair_rows, paired_rows, pick_rows
    from .store.files import write_rows
    from .store.votes import VoteStore

    store = VoteStore(settings.data_dir / "votes.sqlite3")
    votes, picks = store.all_votes(), store.all_picks()
    # Paired: every pick of a better reply, and thumbs of opposite labels on the same prompt.
    rows = paired_rows(kto_rows(votes)) + pair_rows(picks) if args.paired else kto_rows(votes) + pick_rows(picks)
    path = write_rows(rows, args.out)
    print(f"wrote {len(rows)} {'paired' if args.paired else 'KTO'} rows to {path}")
    return 0


def cmd_eval(settings: AppSettings, args: argparse.Namespace) -> int:
    from .data import conversational
    from .gate.evaluate import evaluate
    from .model.base import load_base, with_adapter
    from .store.files import read_preferences
    from .store.versions import VersionStore

    rows = [conversational(r, settings.persona.system_prompt) for r in read_preferences(args.data, args.split)]
    rows = rows[:args.limit] if args.limit else rows
    versions = VersionStore(settings.data_dir / "versions")
    if args.card:  # the base and the adapter in that folder, for its model card
        folders = {"base": None, Path(args.card).name: Path(args.card)}
    else:
        names = args.version or ["base", versions.current()]
        folders = {name: versions.get(name).path for name in dict.fromkeys(names)}  # unknown names fail here
    base = load_base(settings.model)
    beta = settings.beta
    results = []
    for name, path in folders.items():
        model = None if path is None else with_adapter(base, path)
        results.append(evaluate(base, model, rows, name, beta=beta, progress=True))
    print(format_eval_table(results))
    if args.card:
        from .card import write_card
        from .contracts import VersionMeta

        meta = VersionMeta.read(Path(args.card) / "meta.json")
        print(f"wrote {write_card(Path(args.card), meta, results, data=args.data, split=args.split)}")
    return 0


def format_eval_table(results) -> str:
    width = max([8] + [len(r.version) for r in results])
    lines = [f"{'version':{width}} {'rows':>5} {'AUC':>6} {'margin':>8} {'KL':>8} {'seconds':>8}"]
    lines += [f"{r.version:{width}} {r.rows:>5} {r.auc:>6.3f} {r.margin:>8.3f} {r.kl:>8.4f} {r.seconds:>8.1f}"
              for r in results]
    return "\n".join(lines)


def cmd_versions(settings: AppSettings, args: argparse.Namespace) -> int:
    from .store.versions import VersionStore

    store = VersionStore(settings.data_dir / "versions")
    if args.serve:
        store.set_current(args.serve, reason="command line")
        print(f"{args.serve} is now the current version; the app serves it from its next start")
        return 0
    current = store.current()
    print(f"{'':2}{'version':8} {'parent':8} {'rows':>5} {'steps':>5} {'loss':>7} {'margin':>7} {'seconds':>8}")
    for info in store.list():
        meta = info.meta
        last = (meta.metrics or [{}])[-1]
        mark = "*" if info.name == current else " "
        print(f"{mark:2}{info.name:8} {meta.parent or '-':8} {_cell(meta.rows):>5} {_cell(meta.steps):>5} "
              f"{_num(last.get('loss')):>7} {_num(last.get('rewards/margins')):>7} "
              f"{_num(meta.timings.total_s if meta.timings else None):>8}")
    return 0


def cmd_ship(settings: AppSettings, args: argparse.Namespace) -> int:
    """Copy a version out of DATA_DIR as a small adapter to commit: fp16 tensors, config and metadata."""
    import shutil

    import torch
    from safetensors.torch import load_file, save_file

    from .store.versions import VersionStore

    info = VersionStore(settings.data_dir / "versions").get(args.version)
    if info.path is None:
        print("error: the base has no adapter to ship", file=sys.stderr)
        return 2
    target = Path(args.to)
    target.mkdir(parents=True, exist_ok=True)
    tensors = load_file(info.path / "adapter_model.safetensors")
    save_file({k: v.to(torch.float16).contiguous() for k, v in tensors.items()},
              target / "adapter_model.safetensors", metadata={"format": "pt"})
    shutil.copy2(info.path / "adapter_config.json", target / "adapter_config.json")
    meta = dataclasses.replace(info.meta, storage_dtype="float16")
    (target / "meta.json").write_text(meta.to_json(), encoding="utf-8")
    from .card import write_card

    write_card(target, meta)
    print(f"shipped {args.version} to {target} (score it into its model card: python -m trainer eval --data FILE "
          f"--split eval --card {target})")
    return 0


def cmd_seed(settings: AppSettings, args: argparse.Namespace) -> int:
    """Draft a persona's seed set: `--samples` replies of the bare base, with the persona's system prompt and the
    chat's sampling, to each of its examples, probe_prompts and the lines of `--prompts`; written with
    "label": null for the owner to set to true (in character, liked) or false, and about a quarter of the
    prompts in the eval split (the gate's rows and probe papers). The persona file then names it as
    `seed_file`, and `train --data FILE --split train --parent base` makes the persona's v1."""
    from .config import PersonaConfig
    from .model.base import load_base
    from .serve.server import Server
    from .store.files import write_rows

    persona = PersonaConfig.from_toml(args.persona) if args.persona else settings.persona
    extra = [line.strip() for line in Path(args.prompts).read_text(encoding="utf-8").splitlines()
             if line.strip()] if args.prompts else []
    prompts = list(dict.fromkeys([*persona.examples, *persona.probe_prompts, *extra]))
    if not prompts:
        raise SettingError("no prompts to draft replies for: give the persona examples or probe_prompts, or "
                           "--prompts FILE (one message per line)")
    out = Path(args.out)
    if out.exists() and not args.force:
        raise SettingError(f"{out} exists (labels may be in it); --force writes over it")
    server = Server(load_base(settings.model), settings.chat, persona.system_prompt)
    try:
        requests = [(server.current, [{"role": "system", "content": persona.system_prompt},
                                      {"role": "user", "content": prompt}], 1_000 * index + sample)
                    for index, prompt in enumerate(prompts) for sample in range(args.samples)]
        replies = server.sample(requests, max_new_tokens=None)
    finally:
        server.decoder.close()
    held_out = set(random.Random(0).sample(prompts, len(prompts) // 4)) if len(prompts) >= 4 else set()
    rows = [{"prompt": messages[-1]["content"], "completion": reply.text, "label": None,
             "split": "eval" if messages[-1]["content"] in held_out else "train"}
            for (_, messages, _), reply in zip(requests, replies)]
    write_rows(rows, out)
    print(f"drafted {len(rows)} replies to {len(prompts)} prompts in {out} ({len(held_out)} prompts held out as "
          f"eval). Set each \"label\" to true (what {persona.name} should say) or false, or delete the row; then "
          f"name it in the persona file (seed_file) and make its v1: python -m trainer train --data {out} "
          "--split train --parent base")
    return 0


def _hub_stores(settings: AppSettings):
    from .store.versions import VersionStore
    from .store.votes import VoteStore

    if not settings.hub.repo or not settings.hub.token:
        raise SettingError("set HUB_REPO (a dataset repo id) and HF_TOKEN (a token that can write it)")
    return (VoteStore(settings.data_dir / "votes.sqlite3"), VersionStore(settings.data_dir / "versions"))


def cmd_pull(settings: AppSettings, args: argparse.Namespace) -> int:
    """Restore DATA_DIR from HUB_REPO, as the app does on a fresh disk."""
    import time

    from .store.hub import SYNCED_KEY, pull

    votes, versions = _hub_stores(settings)
    if votes.meta(SYNCED_KEY) == settings.hub.repo:
        print(f"{settings.data_dir} has already read {settings.hub.repo}; it only pushes from here on")
        return 0
    started = time.perf_counter()
    events, adopted = pull(settings.hub, settings.data_dir, votes, versions)
    up, down = votes.total_counts()
    print(f"restored {events} events ({up} up / {down} down votes) and {adopted} versions from "
          f"{settings.hub.repo} into {settings.data_dir} in {time.perf_counter() - started:.1f} s; "
          f"current version: {versions.current()}")
    return 0


def cmd_push(settings: AppSettings, args: argparse.Namespace) -> int:
    """Push every event and version HUB_REPO lacks, now."""
    from .store.hub import push

    votes, versions = _hub_stores(settings)
    print(push(settings.hub, settings.data_dir, votes, versions))
    return 0


def _num(value: object) -> str:
    return f"{value:.3f}" if isinstance(value, (int, float)) else "-"


def _cell(value: object) -> str:
    return "-" if value is None else str(value)


def _environment_epilog() -> str:
    rows = environment_help()
    width = max(len(variable) for variable, _, _ in rows)
    lines = ["settings, read from the environment (the app reads the same; see README.md):"]
    for variable, default, text in rows:
        lines.append(f"  {variable:<{width}}  {text}" + (f" [default: {default}]" if default else ""))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainer", description=__doc__.split("\n\n")[0],
                                     epilog=_environment_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("convert", help="convert the embedded model to safetensors once; print its folder")
    train = commands.add_parser("train", help="run one round (on the waiting votes and picks, or a file) and serve it")
    train.add_argument("--data", help="preference file (JSONL, parquet, or a saved dataset) instead of the votes")
    train.add_argument("--split", help="only rows whose 'split' field has this value, e.g. train")
    train.add_argument("--parent", help="version to continue from ('base' for a fresh adapter); default: current")
    train.add_argument("--steps", type=int, help="most optimizer steps (KTO_MAX_STEPS)")
    train.add_argument("--epochs", type=float, help="passes over the rows, within --steps")
    train.add_argument("--rows", type=int, help="a fixed sample of this many rows of the file, half of each label "
                                                "(for a paired loss: half as many pairs)")
    train.add_argument("--loss", choices=LOSSES, help="the round's loss (LOSS); paired losses pair the file's liked "
                                                      "and disliked completions of each prompt")
    export = commands.add_parser("export", help="write every vote and pick as KTO (or paired) rows, JSONL or parquet")
    export.add_argument("--out", required=True, help="output file, .jsonl or .parquet")
    export.add_argument("--paired", action="store_true", help="(prompt, chosen, rejected) rows for DPO")
    evaluation = commands.add_parser("eval", help="AUC, reward margin and KL of versions on a preference file")
    evaluation.add_argument("--data", required=True, help="preference file with prompt, completion, label")
    evaluation.add_argument("--split", help="only rows whose 'split' field has this value, e.g. eval")
    evaluation.add_argument("--version", nargs="+", help="versions to score; default: base and the current one")
    evaluation.add_argument("--limit", type=int, help="score only the first N rows")
    evaluation.add_argument("--card", metavar="FOLDER", help="score the base and the adapter in FOLDER (a shipped "
                                                             "one) and write the table into FOLDER/README.md")
    ship = commands.add_parser("ship", help="copy a version out as a small fp16 adapter folder to commit")
    ship.add_argument("version", help="version to copy, e.g. v0001")
    ship.add_argument("to", help="target folder, e.g. adapters/reviewer2-v1")
    versions = commands.add_parser("versions", help="list adapter versions, or serve another one")
    versions.add_argument("--serve", metavar="VERSION", help="move the serving pointer to VERSION (or 'base')")
    commands.add_parser("pull", help="restore a fresh DATA_DIR from HUB_REPO (votes, versions, the serving pointer)")
    commands.add_parser("push", help="push the events and versions HUB_REPO lacks, now")
    seed = commands.add_parser("seed", help="draft a persona's seed set: sampled replies for its owner to label")
    seed.add_argument("--persona", help="persona file (default: PERSONA_FILE)")
    seed.add_argument("--out", required=True, help="the draft to write, .jsonl (then labelled by hand)")
    seed.add_argument("--prompts", help="more messages to draft replies for, one per line")
    seed.add_argument("--samples", type=int, default=3, help="replies drafted per prompt")
    seed.add_argument("--force", action="store_true", help="write over an existing --out")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        settings = AppSettings.from_env()
        handler = {"convert": cmd_convert, "train": cmd_train, "export": cmd_export, "eval": cmd_eval,
                   "ship": cmd_ship, "versions": cmd_versions, "pull": cmd_pull, "push": cmd_push,
                   "seed": cmd_seed}[args.command]
        return handler(settings, args)
    except (TrainerError, OSError) as err:  # the project's own errors (SettingError, VersionError, DataFileError,
        # HubConflict, ...), and files or the Hub out of reach (HfHubHTTPError is an OSError), carry clear
        # messages; anything else is a bug, here or in a library, and keeps its traceback
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
