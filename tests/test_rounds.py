"""A KTO round on a tiny random Llama: what it trains, what it must leave alone, and how it fails."""

import weakref

import pytest
import torch
from safetensors.torch import load_file

import trainer.train.round
from trainer.contracts import VersionMeta
from trainer.data import without_turn_end
from trainer.model.base import twin
from trainer.model.yielding import attached
from trainer.store.versions import VersionStore
from trainer.train.recipe import adapter_config, round_config
from trainer.train.reference import ReferenceCache
from trainer.train.round import ADAPTER_WEIGHTS, RoundHooks, _trainer, plan_round, round_steps, train_round


def snapshot(model) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters()}


@pytest.mark.parametrize("n,expected", [(8, 4), (4, 2), (1, 1), (1000, 8)])
def test_round_steps_are_bounded(n, expected):
    assert round_steps(n, batch_size=4, accumulation=1, epochs=2.0, max_steps=8) == expected


def test_round_trains_lora_and_leaves_base_alone(tiny_base, settings, tmp_path, rows):
    versions = VersionStore(tmp_path / "versions")
    before = snapshot(tiny_base.model)
    steps = []
    result = train_round(tiny_base, rows(), versions.get("base"), settings, versions,
                         meta=VersionMeta(votes=["a:b"]), hooks=RoundHooks(progress=lambda s, t: steps.append((s, t))))
    assert result.version == "v0001" and versions.names() == ["v0001"]
    assert steps[0] == (0, 2) and steps[-1] == (2, 2)
    adapter = load_file(versions.get("v0001").path / ADAPTER_WEIGHTS)
    assert any("lora_B" in k for k in adapter) and all(t.abs().sum() > 0 for k, t in adapter.items() if "lora_B" in k)
    after = snapshot(tiny_base.model)
    assert before.keys() == after.keys(), "the base tree must not have LoRA layers injected"
    assert all(torch.equal(before[k], after[k]) for k in before), "base weights must not change"
    assert not tiny_base.model.training
    meta = result.meta
    assert meta.parent == "base" and meta.votes == ["a:b"] and meta.steps == 2
    assert (meta.label_counts.desirable, meta.label_counts.undesirable) == (4, 4)
    assert meta.recipe.beta == 0.5 and meta.recipe.learning_rate == 5e-4 and meta.recipe.r == 8
    assert meta.recipe.lr_scheduler_type == "cosine"
    assert [m["step"] for m in meta.metrics] == [1, 2] and all("rewards/chosen" in m for m in meta.metrics)
    assert meta == VersionMeta.read(versions.get("v0001").path / "meta.json"), "what was written reads back"


def test_round_continues_from_its_parent(tiny_base, settings, tmp_path, rows):
    versions = VersionStore(tmp_path / "versions")
    train_round(tiny_base, rows(), versions.get("base"), settings, versions)
    settings.round_overrides["learning_rate"] = 0.0  # a round that cannot move: it must equal its parent
    result = train_round(tiny_base, rows(), versions.get("v0001"), settings, versions)
    assert result.meta.continued_from_parent is True
    parent = load_file(versions.get("v0001").path / ADAPTER_WEIGHTS)
    child = load_file(versions.get(result.version).path / ADAPTER_WEIGHTS)
    assert parent.keys() == child.keys() and all(torch.equal(parent[k], child[k]) for k in parent)


@pytest.mark.parametrize("reference", ["base", "parent"])
def test_a_round_measures_its_rewards_against_its_reference(tiny_base, settings, tmp_path, rows, reference):
    """REFERENCE=parent: TRL's frozen "ref" copy of the parent's adapter is the reference, so the first step's
    rewards (taken before any update) are zero; against the base they are the parent's distance from it. Either
    way the version keeps one adapter, the round's."""
    versions = VersionStore(tmp_path / "versions")
    settings.round_overrides["learning_rate"] = 0.05  # a parent far enough from the base to tell them apart
    train_round(tiny_base, rows(), versions.get("base"), settings, versions)
    settings.training.reference = reference
    result = train_round(tiny_base, rows(), versions.get("v0001"), settings, versions)
    first = result.meta.metrics[0]
    rewards = [abs(first[k]) for k in ("rewards/chosen", "rewards/rejected") if k in first]
    if reference == "parent":
        assert max(rewards) < 1e-3 and first["kl"] < 1e-3
    else:
        assert max(rewards) > 1e-2
    assert result.meta.continued_from_parent is True
    parent = load_file(versions.get("v0001").path / ADAPTER_WEIGHTS)
    child = load_file(versions.get(result.version).path / ADAPTER_WEIGHTS)
    assert parent.keys() == child.keys(), "only the round's adapter is saved, not TRL's 'ref' copy"


def test_disliked_rows_can_weigh_less_than_the_class_balance_sets(settings, rows):
    """KTO_UNDESIRABLE_WEIGHT_SCALE multiplies lambda_U after the class balance (0.25 by default); 1 leaves it
    as the balance set it."""
    unbalanced = rows(8)[:2] + [row for row in rows(16) if not row["label"]]  # 1 liked : 9 disliked
    weights = plan_round(unbalanced, settings).weights
    assert (weights.desirable, weights.undesirable) == (2.0, 0.25)
    settings.round_overrides["undesirable_weight_scale"] = "1"  # as the environment gives it
    assert plan_round(unbalanced, settings).weights.undesirable == 1.0


def test_round_with_another_lora_shape_starts_fresh(tiny_base, settings, tmp_path, rows):
    versions = VersionStore(tmp_path / "versions")
    train_round(tiny_base, rows(), versions.get("base"), settings, versions)
    settings.adapter_overrides["r"] = 4
    result = train_round(tiny_base, rows(), versions.get("v0001"), settings, versions)
    assert result.meta.continued_from_parent is False and result.meta.recipe.r == 4


def test_crash_mid_round_publishes_nothing(tiny_base, settings, tmp_path, rows):
    versions = VersionStore(tmp_path / "versions")

    def explode(step, total):
        if step == 1:
            raise RuntimeError("power cut")

    with pytest.raises(RuntimeError, match="power cut"):
        train_round(tiny_base, rows(), versions.get("base"), settings, versions, hooks=RoundHooks(progress=explode))
    assert versions.names() == [] and versions.current() == "base"
    assert not list((tmp_path / "versions").glob(".staging-*"))


def test_reference_log_probs_are_computed_once_per_row_and_reused(tiny_base, settings, tmp_path, rows):
    versions = VersionStore(tmp_path / "versions")
    cache = ReferenceCache()
    first = train_round(tiny_base, rows(), versions.get("base"), settings, versions, reference_cache=cache)
    assert first.meta.reference_rows_computed == len(rows()) and len(cache) > 0
    again = train_round(tiny_base, rows(), versions.get("base"), settings, versions, reference_cache=cache)
    assert again.meta.reference_rows_computed == 0, "a row seen before needs no reference pass"
    fresh = train_round(tiny_base, rows(), versions.get("base"), settings, versions)
    # Cached figures are the very ones a fresh reference pass gives: the same round, the same losses.
    assert [m["loss"] for m in again.meta.metrics] == pytest.approx([m["loss"] for m in fresh.meta.metrics])


def test_training_tree_is_freed_before_the_gate_and_the_gate_still_pauses_for_chat(
        tiny_base, settings, tmp_path, monkeypatch, rows):
    versions = VersionStore(tmp_path / "versions")
    trees = []
    make_twin = trainer.train.round.twin
    monkeypatch.setattr(trainer.train.round, "twin", lambda model: trees.append(weakref.ref(made := make_twin(model)))
                        or made)
    pauses, seen = [], {}

    def gate(adapter_dir):
        seen["alive"] = [tree() is not None for tree in trees]
        seen["pauses"] = len(pauses)
        with attached(make_twin(tiny_base.model)) as model:  # as the gate's scoring does
            model(input_ids=torch.tensor([[1, 2, 3]]))
        seen["pauses_in_gate"] = len(pauses) - seen["pauses"]

    train_round(tiny_base, rows(), versions.get("base"), settings, versions,
                hooks=RoundHooks(yield_to_chat=lambda: pauses.append(1)), gate=gate)
    assert len(trees) == 1 and seen["alive"] == [False], "the trainer's tree must be gone when the gate builds its own"
    assert seen["pauses"] > 0 and seen["pauses_in_gate"] > 0


def test_every_step_of_a_round_reads_both_labels(tiny_base, settings, tmp_path, rows):
    """Rows listed liked first, then disliked (as anchors and balanced samples come): TRL's KTOTrainer reads them
    in order, so only our ordering keeps a step from training on one label."""
    versions = VersionStore(tmp_path / "versions")
    listed = sorted(rows(16), key=lambda r: not r["label"])
    settings.round_overrides.update(max_steps=4, num_train_epochs=1.0)
    result = train_round(tiny_base, listed, versions.get("base"), settings, versions, seed=5)
    assert [m["step"] for m in result.meta.metrics] == [1, 2, 3, 4]
    for m in result.meta.metrics:
        assert "rewards/chosen" in m and "rewards/rejected" in m, f"step {m['step']} read one label only: {m}"


def test_only_a_liked_reply_that_ended_trains_its_end_of_turn(tiny_base, settings, tmp_path, rows):
    """The chat template closes every completion with <|im_end|>; a reply cut at the token cap must not teach
    the model where (not) to end, nor a disliked one that it should not end. Liked, ended replies keep it, and
    the KL completions are the same completions."""
    listed = rows(8)
    for i, row in enumerate(listed):
        row["ends_turn"] = i % 4 < 2  # ended and cut replies of both labels
    plan = plan_round(listed, settings, seed=1)
    args = round_config(settings, output_dir=str(tmp_path), max_steps=plan.steps)
    kto = _trainer(settings, twin(tiny_base.model), args, plan, tiny_base, adapter_config(settings), [],
                   ReferenceCache())
    data, end = kto.train_dataset, tiny_base.tokenizer.eos_token_id
    assert sorted(data["ends_turn"]) == [False] * 4 + [True] * 4
    keeps = [ended and liked for ended, liked in zip(data["ends_turn"], data["label"])]
    assert sorted(keeps) == [False] * 6 + [True] * 2, "one liked-and-ended row in each of four kinds"
    for ids, keep in zip(data["completion_ids"], keeps):
        assert (end in ids[-3:]) is keep, tiny_base.tokenizer.decode(ids)
    batch = args.per_device_train_batch_size
    for start in range(0, len(data), batch):
        completions, kl = data["completion_ids"][start:start + batch], data["KL_completion_ids"][start:start + batch]
        assert kl == completions[-1:] + completions[:-1], "TRL's rotation, over the completions as trained"
    assert without_turn_end([5, 6, end, 9], end) == [5, 6] and without_turn_end([5, 6], end) == [5, 6]
    assert without_turn_end([end, 9], end) == [end, 9], "never an empty completion"


def test_a_long_conversation_is_cut_oldest_turn_first_and_never_dropped(tiny_base, settings, tmp_path, rows):
    """TRL drops a row whose prompt alone reaches max_length, and cuts a long one's reply from the right;
    the round cuts the prompt instead, so every row trains with its reply's ending."""
    settings.round_overrides.update(max_length=96, max_steps=1, num_train_epochs=1.0)
    listed = rows(4)
    history = [{"role": "user", "content": "An earlier paper about graphs. " * 12},
               {"role": "assistant", "content": "Reject. " * 20}]
    listed[0] = {**listed[0], "prompt": listed[0]["prompt"][:1] + history * 3 + listed[0]["prompt"][1:]}
    plan = plan_round(trainer.train.round.fitted_rows(listed, tiny_base, settings), settings)
    args = round_config(settings, output_dir=str(tmp_path), max_steps=plan.steps)
    kto = _trainer(settings, twin(tiny_base.model), args, plan, tiny_base, adapter_config(settings), [],
                   ReferenceCache())
    data, end = kto.train_dataset, tiny_base.tokenizer.eos_token_id
    assert len(data) == 4, "no row dropped"
    for prompt, completion, label in zip(data["prompt_ids"], data["completion_ids"], data["label"]):
        assert len(prompt) + len(completion) <= 96
        assert (end in completion[-3:]) is label, "the reply kept whole, with its end of turn where it is trained"
