"""Settings: the persona file and the environment, with errors that name the setting."""

import pytest
import torch

from trainer.config import DEFAULT_PERSONA_FILE, AppSettings, PersonaConfig, SettingError
from trainer.train.recipe import adapter_config, check_recipe, round_config


def test_shipped_persona_loads():
    persona = PersonaConfig.from_toml(DEFAULT_PERSONA_FILE)
    assert persona.name == "Reviewer #2" and "Reviewer #2" in persona.system_prompt and len(persona.examples) >= 3
    kind = PersonaConfig.from_toml(DEFAULT_PERSONA_FILE.parent / "kind.toml")  # the README's second persona
    assert kind.name == "Professor Kind" and not kind.seed_file and not kind.adapter
    assert kind.digest != persona.digest and len(kind.examples) >= 3 and kind.probe_prompts


@pytest.mark.parametrize("body,message", [
    ('[persona]\nname = "X"\n', "persona.system_prompt is required"),
    ('[persona]\nname = "X"\nsystem_prompt = ""\n', "persona.system_prompt must be a non-empty string"),
    ('[persona]\nname = "X"\nsystem_prompt = "s"\nexamples = [1]\n', "persona.examples must be a list"),
    ('[persona]\nname = "X"\nsystem_prompt = "s"\ncolour = "red"\n', "persona.colour is not a persona field"),
    ('name = "X"\n', "needs a [persona] table"),
    ('[persona\n', "is not valid TOML"),
])
def test_persona_errors_name_the_field(tmp_path, body, message):
    path = tmp_path / "p.toml"
    path.write_text(body)
    with pytest.raises(SettingError, match=message.replace("[", r"\[")):
        PersonaConfig.from_toml(path)


def test_environment_sets_every_part(tmp_path):
    settings = AppSettings.from_env({"DATA_DIR": str(tmp_path), "MIN_VOTES": "12", "CHAT_MAX_NEW_TOKENS": "64",
                                     "ADMIN_TOKEN": "t", "KTO_MAX_STEPS": "3", "LORA_R": "4", "DEVICE": "cpu"})
    assert settings.loop.min_votes == 12 and settings.chat.max_new_tokens == 64 and settings.loop.admin_token == "t"
    config = round_config(settings, tmp_path)
    assert config.max_steps == 3 and config.beta == 0.5 and config.learning_rate == 5e-4
    assert config.undesirable_weight_scale == 0.25 and settings.training.reference == "parent"
    assert config.lr_scheduler_type == "cosine" and config.gradient_checkpointing
    assert config.gradient_checkpointing_kwargs == {"use_reentrant": False}, "the prefix's gradients need it"
    assert config.bf16 == torch.cpu._is_avx512_bf16_supported(), "bf16 autocast exactly where the CPU has it"
    assert config.precompute_ref_log_probs
    assert round_config(settings, tmp_path, bf16=False).bf16 is False
    assert not round_config(AppSettings.from_env({"DATA_DIR": str(tmp_path), "KTO_BF16": "false"}), tmp_path).bf16
    adapter = adapter_config(settings)
    assert (adapter.r, adapter.lora_alpha, adapter.lora_dropout) == (4, 16, 0.05)


@pytest.mark.parametrize("env,message", [
    ({"MIN_VOTES": "many"}, "MIN_VOTES='many' is not a valid int"),
    ({"MIN_VOTES": "1"}, "MIN_VOTES must be >= 2"),
    ({"DEVICE": "tpu"}, "DEVICE must be one of auto, cpu, cuda"),
    ({"TRAINER_ENABLED": "maybe"}, "TRAINER_ENABLED='maybe' is not a valid true/false"),
    ({"CHAT_TOP_P": "2"}, "CHAT_TOP_P must be in"),
    ({"CHAT_CONCURRENCY": "64"}, "CHAT_CONCURRENCY is 64, above Gradio's 40 worker threads"),
    ({"CHAT_MAX_ROWS": "0"}, "CHAT_MAX_ROWS must be"),
    ({"PERSONA_FILE": "/nonexistent.toml"}, "PERSONA_FILE '/nonexistent.toml' does not exist"),
])
def test_bad_environment_names_the_setting(env, message):
    with pytest.raises(SettingError, match=message.replace("(", r"\(")):
        AppSettings.from_env(env)


@pytest.mark.parametrize("env,message", [
    ({"KTO_NOT_A_FIELD": "1"}, "KTO_NOT_A_FIELD names no field of RoundConfig"),
    ({"KTO_MAX_STEPS": "many"}, "KTO_MAX_STEPS='many' is not a valid int"),
    ({"LORA_R": "wide"}, "LORA_R='wide' is not a valid int"),
])
def test_bad_recipe_settings_name_the_setting_at_start_up(env, message):
    """KTO_ / LORA_ settings are text until the recipe (TRL, PEFT) reads them: the app and the CLI's training
    commands check them at start-up (Runtime, cmd_train)."""
    settings = AppSettings.from_env(env)
    with pytest.raises(SettingError, match=message):
        check_recipe(settings)


def test_beta_is_resolved_without_trl():
    assert AppSettings.from_env({}).beta == 0.5 and AppSettings.from_env({"KTO_BETA": "0.05"}).beta == 0.05
    with pytest.raises(SettingError, match="KTO_BETA='low' is not a valid float"):
        AppSettings.from_env({"KTO_BETA": "low"})
    pairs = {"KTO_BETA": "0.05", "DPO_BETA": "0.2"}
    assert AppSettings.from_env({**pairs, "LOSS": "dpo"}).beta == 0.2, "DPO_BETA is the pair losses' beta"
    assert AppSettings.from_env(pairs).beta == 0.05, "and only theirs"
    assert AppSettings.from_env({"KTO_BETA": "0.05", "LOSS": "ipo"}).beta == 0.1, "unset: the seed recipe's"
    with pytest.raises(SettingError, match="DPO_BETA must be > 0"):
        AppSettings.from_env({"DPO_BETA": "0"})


def test_a_pair_round_config_takes_dpo_beta(tmp_path):
    from trainer.train.recipe import PairedRoundConfig, round_config
    settings = AppSettings.from_env({"LOSS": "aot", "DPO_BETA": "0.3", "KTO_MAX_STEPS": "3"})
    paired = PairedRoundConfig.from_round(round_config(settings, tmp_path), ("aot",))
    assert paired.beta == 0.3 and paired.max_steps == 3 and paired.loss_type == ["aot"]


def test_on_a_space_its_owner_is_admin_and_votes_go_to_its_own_repo_given_a_token():
    space = {"SPACE_ID": "org/reviewer2", "SPACE_AUTHOR_NAME": "org"}
    settings = AppSettings.from_env(space)
    assert settings.loop.admin_users == ["org"] and settings.hub.repo == ""  # no token: local only
    settings = AppSettings.from_env({**space, "HF_TOKEN": "hf_secret", "ADMIN_USER": "alice,bob"})
    assert settings.hub.repo == "org/reviewer2-data" and settings.loop.admin_users == ["alice", "bob"]
    assert "hf_secret" not in repr(settings)
    chosen = AppSettings.from_env({**space, "HF_TOKEN": "t", "HUB_REPO": "me/votes", "HUB_PUSH_SECONDS": "30"})
    assert chosen.hub.repo == "me/votes" and chosen.hub.push_seconds == 30


@pytest.mark.parametrize("env,message", [({"HUB_REPO": "a/b/c"}, "HUB_REPO must be a repo id"),
                                         ({"HUB_PUSH_SECONDS": "0"}, "HUB_PUSH_SECONDS must be > 0")])
def test_hub_settings_errors_name_the_setting(env, message):
    with pytest.raises(SettingError, match=message):
        AppSettings.from_env(env)
