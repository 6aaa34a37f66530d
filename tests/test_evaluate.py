"""Scoring versions: the AUC statistic, batched rewards (rows of one prompt continuing from its encoded prefix)
equal to one-by-one ones, and v1 beats the base."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from trainer.config import AppSettings
from trainer.gate.evaluate import _encode, auc, evaluate
from trainer.model.base import load_base
from trainer.runtime import Runtime
from trainer.serve.server import Server

ROOT = Path(__file__).resolve().parent.parent


def test_auc_counts_pairs_and_half_ties():
    assert auc([2.0, 3.0], [0.0, 1.0]) == 1.0
    assert auc([0.0, 1.0], [2.0, 3.0]) == 0.0
    assert auc([1.0, 1.0], [1.0]) == 0.5
    assert auc([1.0, 3.0], [2.0]) == 0.5


def test_base_is_its_own_reference(tiny_base, rows):
    result = evaluate(tiny_base, None, rows(6), "base")
    assert (result.auc, result.margin, result.kl) == (0.5, 0.0, 0.0)


def test_batched_rewards_match_one_by_one(tiny_base, settings, trained_version, trained_model, rows):
    version, model = trained_version, trained_model
    data = rows(6)
    data[1]["completion"][0]["content"] += " And the statistics are shaky." * 3  # uneven lengths: padding
    other = [{**row, "prompt": row["prompt"][:-1] + [{"role": "user", "content": "Review: a faster sort."}]}
             for row in rows(2)]
    data = data[:3] + other + data[3:]  # two prompts, interleaved: each prompt's rows share its prefix pass
    batched = evaluate(tiny_base, model, data, version.name, batch_size=4)
    assert batched.kl > 0
    expected, kl_sum, kl_tokens = [], 0.0, 0
    for row in data:  # one row at a time, full logits: no padding or position selection to get wrong
        ids, start = _encode(tiny_base.tokenizer, row, 1024)
        x = torch.tensor([ids])
        with torch.inference_mode():
            pi = torch.log_softmax(model(input_ids=x).logits[0, :-1], -1)
            with model.disable_adapter():
                ref = torch.log_softmax(model(input_ids=x).logits[0, :-1], -1)
        target = x[0, 1:, None]
        expected.append(0.1 * float((pi.gather(-1, target) - ref.gather(-1, target))[start - 1:].sum()))
        kl_sum += float((pi.exp() * (pi - ref)).sum(-1)[start - 1:].sum())
        kl_tokens += len(ids) - start
    liked = [e for e, r in zip(expected, data) if r["label"]]
    disliked = [e for e, r in zip(expected, data) if not r["label"]]
    assert batched.rewards_desirable == pytest.approx(liked, rel=1e-4, abs=1e-5)
    assert batched.rewards_undesirable == pytest.approx(disliked, rel=1e-4, abs=1e-5)
    assert batched.kl == pytest.approx(kl_sum / kl_tokens, rel=1e-4)
    served = Server(tiny_base, settings.chat).load(version.name, version.path).model  # LoRA merged
    assert evaluate(tiny_base, served, data, version.name).rewards_desirable == pytest.approx(liked, rel=1e-3, abs=1e-4)


def test_known_rows_are_not_scored_again_and_give_the_same_figures(tiny_base, trained_version, trained_model, rows):
    version, model = trained_version, trained_model
    data = rows(6)
    data[5]["completion"][0]["content"] += " Also, the figures are unreadable."  # a row the first call lacks
    known = {}
    first = evaluate(tiny_base, model, data[:5], version.name, known=known)
    assert first.scored_rows == 2 and len(known) == 2, "rows(n) alternates two rows: each is scored once"
    built = []
    again = evaluate(tiny_base, lambda: built.append(1) or model, data, version.name, known=known)
    assert again.scored_rows == 1 and built == [1] and len(known) == 3
    fresh = evaluate(tiny_base, model, data, version.name)
    assert fresh.scored_rows == 3
    assert (again.auc, again.rewards_desirable, again.rewards_undesirable) == (fresh.auc, fresh.rewards_desirable,
                                                                        fresh.rewards_undesirable)
    assert again.kl == pytest.approx(fresh.kl, rel=1e-6)
    untouched = evaluate(tiny_base, lambda: pytest.fail("every row is known: no model needed"), data, version.name,
                         known=known)
    assert untouched.scored_rows == 0 and untouched.rewards_desirable == fresh.rewards_desirable


@pytest.mark.e2e
def test_shipped_v1_beats_the_base_on_held_out_papers(tmp_path, embedded_dir):
    env = {**os.environ, "DATA_DIR": str(tmp_path), "MODEL_CACHE_DIR": str(embedded_dir.parent), "DEVICE": "cpu"}
    # The app installs and serves the shipped adapter on a fresh DATA_DIR; the command line scores it.
    settings = AppSettings.from_env({k: v for k, v in env.items() if k in ("DATA_DIR", "MODEL_CACHE_DIR", "DEVICE")})
    runtime = Runtime(settings, load_base(settings.model))
    assert runtime.server.current.name == "v0001" and runtime.versions.current() == "v0001"
    assert runtime.versions.get("v0001").meta.installed_from.endswith("reviewer2-v1")
    out = subprocess.run([sys.executable, "-m", "trainer", "eval", "--data", "data/seed.jsonl", "--split", "eval",
                          "--limit", "48", "--version", "base", "v0001"], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    table = {line.split()[0]: line.split() for line in out.stdout.splitlines()[-2:]}
    base_auc, v1_auc = float(table["base"][2]), float(table["v0001"][2])
    assert base_auc == 0.5 and v1_auc > 0.75, out.stdout
    assert float(table["v0001"][3]) > 0, "liked rows must get the larger mean reward"


def test_a_reply_the_model_never_ended_is_scored_without_the_end_of_turn(tokenizer):
    """The gate scores rows as rounds train them: a cut reply stays open, an ended one keeps <|im_end|>."""
    row = {"prompt": [{"role": "system", "content": "Be harsh."}, {"role": "user", "content": "My paper."}],
           "completion": [{"role": "assistant", "content": "The baselines are"}], "label": False}
    ended, start = _encode(tokenizer, row, max_length=512)
    cut, cut_start = _encode(tokenizer, {**row, "ends_turn": False}, max_length=512)
    assert cut_start == start and tokenizer.eos_token_id in ended[start:]
    assert tokenizer.eos_token_id not in cut[start:] and cut == ended[:len(cut)]


def test_auc_without_a_label_is_chance_so_it_favours_no_version():
    """A persona without seed data may hold gate votes of one label only: nothing to rank, nothing refused for."""
    assert auc([0.3, 0.1], []) == auc([], [0.2]) == auc([], []) == 0.5
