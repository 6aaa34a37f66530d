"""The preference losses: the unpaired AOT loss against a hand computation, and a round of every LOSS on the tiny
model that trains LoRA and publishes a version."""

import dataclasses

import pytest
import torch
from safetensors.torch import load_file

from trainer.config import LOSSES, SettingError, TrainingSettings
from trainer.data import paired_rows
from trainer.store.versions import VersionStore
from trainer.train.losses import aot_unpaired_loss
from trainer.train.reference import ReferenceCache
from trainer.train.round import ADAPTER_WEIGHTS, train_round


def test_unpaired_aot_loss_matches_a_hand_computation():
    liked = torch.tensor([0.5, -1.0, 2.0, 0.0])      # sorted: -1.0, 0.0, 0.5, 2.0
    disliked = torch.tensor([1.0, -0.5, 0.2, 3.0])   # sorted: -0.5, 0.2, 1.0, 3.0
    # Quantile by quantile, liked - disliked: -0.5, -0.2, -0.5, -1.0; with margin 0.1 the shortfalls are
    # 0.6, 0.3, 0.6, 1.1: mean 0.65.
    assert aot_unpaired_loss(liked, disliked, margin=0.1).item() == pytest.approx(0.65)
    assert aot_unpaired_loss(liked, disliked, margin=0.0).item() == pytest.approx(0.55)


def test_unpaired_aot_loss_matches_quantiles_of_unequal_counts():
    liked = torch.tensor([1.0, 3.0])       # at levels 0, 1/2, 1: 1.0, 2.0, 3.0
    disliked = torch.tensor([0.0, 2.5, 4.0])
    # liked - disliked: 1.0, -0.5, -1.0 -> hinge at margin 0: 0, 0.5, 1.0 -> mean 0.5
    assert aot_unpaired_loss(liked, disliked).item() == pytest.approx(0.5)


def test_unpaired_aot_loss_is_zero_when_every_liked_quantile_dominates_and_has_gradients_otherwise():
    liked = torch.tensor([1.0, 2.0, 5.0], requires_grad=True)
    assert aot_unpaired_loss(liked, torch.tensor([0.5, 1.5, 4.0]), margin=0.0).item() == 0.0
    disliked = torch.tensor([0.5, 3.0, 4.0], requires_grad=True)
    loss = aot_unpaired_loss(liked, disliked, margin=0.0)
    loss.backward()
    # Only the middle quantile (2.0 vs 3.0) falls short: the liked 2.0 is pushed up, the disliked 3.0 down.
    assert loss.item() == pytest.approx(1 / 3)
    assert liked.grad.tolist() == pytest.approx([0, -1 / 3, 0]) and disliked.grad.tolist() == pytest.approx([0, 1 / 3, 0])


def test_unpaired_aot_loss_of_one_label_is_zero_and_connected():
    liked = torch.tensor([1.0, 2.0], requires_grad=True)
    loss = aot_unpaired_loss(liked, torch.zeros(0))
    assert loss.item() == 0.0 and loss.requires_grad


def test_the_loss_setting_names_what_it_accepts():
    with pytest.raises(SettingError, match="LOSS must be one of kto, aot_unpaired, dpo, ipo, aot"):
        TrainingSettings(loss="orpo")
    assert TrainingSettings(loss="ipo").paired and not TrainingSettings(loss="aot_unpaired").paired


@pytest.mark.parametrize("loss", LOSSES)
def test_every_loss_runs_a_round_and_publishes_a_version(loss, tiny_base, settings, tmp_path, rows):
    settings.training = dataclasses.replace(settings.training, loss=loss)
    versions = VersionStore(tmp_path / "versions")
    data = paired_rows(rows(8)) if settings.training.paired else rows(8)
    before = {k: v.clone() for k, v in tiny_base.model.state_dict().items()}
    result = train_round(tiny_base, data, versions.get("base"), settings, versions)
    # One pass over the rows: 8 unpaired rows make 2 batches of 4, their 4 pairs one.
    assert result.version == "v0001" and result.meta.loss == loss
    assert result.meta.steps == (1 if settings.training.paired else 2)
    adapter = load_file(versions.get("v0001").path / ADAPTER_WEIGHTS)
    assert all(t.abs().sum() > 0 for k, t in adapter.items() if "lora_B" in k), "LoRA must have moved"
    assert all(torch.equal(before[k], v) for k, v in tiny_base.model.state_dict().items()), "base untouched"
    assert all("rewards/chosen" in m for m in result.meta.metrics)
    assert result.meta.reference_rows_computed == len(data)
    # The reference (the base, the same in every round) is cached: a second round on the same rows computes none.
    cache = ReferenceCache()
    train_round(tiny_base, data, versions.get("base"), settings, versions, reference_cache=cache)
    again = train_round(tiny_base, data, versions.get("base"), settings, versions, reference_cache=cache)
    assert again.meta.reference_rows_computed == 0


def test_an_aot_unpaired_round_optimises_the_aot_loss(tiny_base, settings, tmp_path, rows):
    """A fresh adapter starts at the base (every reward 0): each quantile falls short by exactly the margin, so the
    first step's loss is the margin (KTO's would be about 0.5)."""
    settings.training = TrainingSettings(loss="aot_unpaired", aot_margin=0.1)
    versions = VersionStore(tmp_path / "versions")
    settings.round_overrides["max_steps"] = 1
    result = train_round(tiny_base, rows(8), versions.get("base"), settings, versions)
    assert result.meta.metrics[0]["loss"] == pytest.approx(0.1, abs=1e-4)


def test_rpo_keeps_raising_the_chosen_reply_where_dpo_stops(tiny_base, settings, tmp_path, rows):
    """rpo = DPO + the chosen reply's negative log-likelihood: with the same steps it makes the chosen reply itself
    likelier than DPO does, which mostly pushes the rejected one down (the margin is all DPO asks for)."""
    data = paired_rows(rows(16))
    settings.round_overrides.update(max_steps=6, num_train_epochs=6, logging_steps=1, learning_rate=2e-3)
    gains = {}
    for loss in ("dpo", "rpo"):
        settings.training = dataclasses.replace(settings.training, loss=loss)
        versions = VersionStore(tmp_path / loss)
        result = train_round(tiny_base, data, versions.get("base"), settings, versions)
        logps = [m["logps/chosen"] for m in result.meta.metrics]
        gains[loss] = logps[-1] - logps[0]
    assert gains["rpo"] > gains["dpo"] and gains["rpo"] > 0, gains
