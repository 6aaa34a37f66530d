"""Round throughput: our KTO round against a plain TRL KTOTrainer script, same rows, same steps.

Run:  .venv/bin/python bench/round_throughput.py [--runs 3] [--rows 24] [--eval-rows 32]

The plain script is what the TRL docs show, with the seed recipe (lr 5e-4 cosine, beta 0.1,
batch 4, LoRA r8/a16/d0.05 all-linear) and TRL's other defaults; `use_cpu=True` is the one
change TRL's error message asks for on a CPU. Ours is `train_round` as the app runs it (gate
and early stopping off: they are not training), first with a cold reference cache (a round of
new votes) and then warm (the same rows again, as replayed votes are in the live loop). Both
adapters are scored on the same held-out seed rows.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from datasets import Dataset  # noqa: E402
from peft import LoraConfig  # noqa: E402
from trl import KTOConfig, KTOTrainer  # noqa: E402

from bench.report import median, publish, table  # noqa: E402
from trainer.config import AppSettings, GateSettings, LoopSettings, PersonaConfig  # noqa: E402
from trainer.data import conversational  # noqa: E402
from trainer.gate.evaluate import evaluate  # noqa: E402
from trainer.model.base import load_base, twin, with_adapter  # noqa: E402
from trainer.store.files import read_preferences  # noqa: E402
from trainer.store.versions import VersionStore  # noqa: E402
from trainer.train.recipe import round_config  # noqa: E402
from trainer.train.reference import ReferenceCache  # noqa: E402
from trainer.train.round import train_round  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def plain_round(base, rows: list[dict], steps: int, scratch: str) -> tuple[float, object]:
    """The plain script: seconds from building the trainer to the end of train(), and its model."""
    started = time.perf_counter()
    args = KTOConfig(output_dir=scratch, learning_rate=5e-4, lr_scheduler_type="cosine", beta=0.1,
                     per_device_train_batch_size=4, max_steps=steps, use_cpu=True, report_to="none",
                     save_strategy="no", disable_tqdm=True)
    lora = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.05, target_modules="all-linear", task_type="CAUSAL_LM")
    trainer = KTOTrainer(model=twin(base.model), args=args, train_dataset=Dataset.from_list(rows),
                         processing_class=base.tokenizer, peft_config=lora)
    trainer.train()
    return time.perf_counter() - started, trainer.model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rows", type=int, default=24, help="training rows; steps = rows / 4 (one epoch)")
    parser.add_argument("--eval-rows", type=int, default=32)
    args = parser.parse_args()
    persona = PersonaConfig.from_toml(ROOT / "personas" / "reviewer2.toml")
    settings = AppSettings(persona=persona, loop=LoopSettings(enabled=False),
                           gate=GateSettings(enabled=False, early_stop_every=0), shipped_adapter=None,
                           data_dir=Path(tempfile.mkdtemp(prefix="bench-rounds-")))
    settings.model.device = "cpu"
    base = load_base(settings.model)
    seed = ROOT / "data" / "seed.jsonl"
    rows = [conversational(r, persona.system_prompt) for r in read_preferences(seed, split="train")[:args.rows]]
    eval_rows = [conversational(r, persona.system_prompt)
                 for r in read_preferences(seed, split="eval")[:args.eval_rows]]
    steps = args.rows // 4
    settings.round_overrides = {"max_steps": steps, "num_train_epochs": 1.0}
    versions = VersionStore(settings.data_dir / "versions")
    plain, cold, warm, plain_auc, ours_auc = [], [], [], [], []
    for run in range(args.runs):
        with tempfile.TemporaryDirectory() as scratch:
            seconds, model = plain_round(base, rows, steps, scratch)
        plain.append(seconds)
        plain_auc.append(evaluate(base, model.eval(), eval_rows, "plain").auc)
        cache = ReferenceCache()
        for timings, label in ((cold, "cold"), (warm, "warm")):
            started = time.perf_counter()
            result = train_round(base, rows, versions.get("base"), settings, versions, reference_cache=cache)
            timings.append(time.perf_counter() - started)
        ours_auc.append(evaluate(base, with_adapter(base, versions.get(result.version).path), eval_rows, "ours").auc)
        print(f"run {run + 1}: plain {plain[-1]:.1f} s, ours cold {cold[-1]:.1f} s, warm {warm[-1]:.1f} s, "
              f"AUC plain {plain_auc[-1]:.3f} ours {ours_auc[-1]:.3f}", flush=True)

    examples = steps * 4
    config = round_config(settings, output_dir=".")
    body = table(("round", "seconds", "examples/s", "held-out AUC", "vs plain"), [
        ("plain TRL KTOTrainer script", f"{median(plain):.1f}", f"{examples / median(plain):.3f}",
         f"{median(plain_auc):.3f}", "1.00x"),
        ("ours, new rows (reference cache cold)", f"{median(cold):.1f}", f"{examples / median(cold):.3f}",
         f"{median(ours_auc):.3f}", f"{median(plain) / median(cold):.2f}x"),
        ("ours, replayed rows (reference cache warm)", f"{median(warm):.1f}", f"{examples / median(warm):.3f}",
         "", f"{median(plain) / median(warm):.2f}x"),
    ])
    body += (f"\n\n{examples} examples ({steps} steps of 4) per round, median of {args.runs}; AUC on "
             f"{len(eval_rows)} held-out seed rows. Ours: micro-batch {config.per_device_train_batch_size} x "
             f"{config.gradient_accumulation_steps}, bf16 autocast {config.bf16}, gradient checkpointing "
             f"{config.gradient_checkpointing}, reference log-probs cached per row, the shared prompt prefix encoded "
             f"once per batch, the LM head on completion positions only. Plain: TRL defaults "
             f"(bf16 autocast, gradient checkpointing), batch 4, reference passes on every step.")
    publish("rounds", "Round throughput: ours vs a plain TRL KTOTrainer script",
            f"python bench/round_throughput.py --runs {args.runs} --rows {args.rows} --eval-rows {args.eval_rows}",
            body)


if __name__ == "__main__":
    main()
