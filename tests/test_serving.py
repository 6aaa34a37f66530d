"""Serving on a tiny random Llama: streaming, stop, and a hot swap that never disturbs a reply in flight."""

import threading

import pytest

from trainer.rounds import train_round
from trainer.serving import Server
from trainer.versions import VersionStore

from .test_rounds import rows

MESSAGES = [{"role": "system", "content": "You are Reviewer #2."}, {"role": "user", "content": "Review this."}]


@pytest.fixture
def server(tiny_base, settings):
    settings.chat.max_new_tokens = 24
    return Server(tiny_base, settings.chat)


@pytest.fixture
def trained(tiny_base, settings, tmp_path):
    versions = VersionStore(tmp_path / "versions")
    settings.round_overrides["learning_rate"] = 0.05  # a tiny random model needs a big push to change its output
    result = train_round(tiny_base, rows(), versions.get("base"), settings, versions)
    return versions.get(result.version)


def test_stream_grows_and_reports_its_version(server):
    done = []
    stream = server.stream(MESSAGES, on_done=done.append)
    texts = list(stream)
    assert texts and all(b.startswith(a) for a, b in zip(texts, texts[1:]))
    assert done == [stream.completion] and stream.completion.version == "base"
    assert stream.completion.new_tokens > 0 and not stream.completion.stopped
    assert server.generating == 0 and server.wait_idle(0)


def test_stop_ends_generation_early(server):
    stop = threading.Event()
    stop.set()
    stream = server.stream(MESSAGES, stop=stop)
    list(stream)
    assert stream.completion.stopped and stream.completion.new_tokens == 1


def test_swap_mid_reply_keeps_the_reply_on_its_version(server, trained):
    reference = server.stream(MESSAGES)
    list(reference)  # what the base alone writes (greedy, so deterministic)

    new_version = server.load(trained.name, trained.path)
    in_flight = server.stream(MESSAGES)
    parts = iter(in_flight)
    next(parts)
    assert server.generating == 1 and not server.wait_idle(0)
    pause = server.swap(new_version)
    assert pause < 0.005, "a swap is a pointer move"
    list(parts)
    assert in_flight.completion.version == "base"
    assert in_flight.completion.text == reference.completion.text, "the reply in flight finished on the base"

    after = server.stream(MESSAGES)
    list(after)
    assert after.completion.version == trained.name and server.current.name == trained.name
    assert not server.current.model.training


def test_versions_share_the_base_weights(server, trained, tiny_base):
    version = server.load(trained.name, trained.path)
    base_storage = {p.data_ptr() for p in tiny_base.model.parameters()}
    frozen = {p.data_ptr() for n, p in version.model.named_parameters() if "lora_" not in n}
    assert frozen == base_storage, "a version must reuse the base tensors, not copy them"
