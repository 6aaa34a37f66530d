"""End to end on the embedded SmolLM2 model: the real app on localhost, driven by gradio_client.

Chat, vote on 8 replies, trigger a round as admin, and see the new version serving: a new reply is
tagged with it, its LoRA weights moved away from their zero start, and the base weights did not move.
"""

import tempfile

import httpx
import pytest
from gradio_client import Client
from safetensors.torch import load_file

from trainer.config import AppSettings, ChatSettings, GateSettings, LoopSettings, ModelSettings
from trainer.runtime import Runtime


@pytest.fixture
def running_app(tmp_path, embedded_dir, persona, launch):
    settings = AppSettings(
        persona=persona,
        model=ModelSettings(cache_dir=embedded_dir.parent, device="cpu"),
        chat=ChatSettings(max_new_tokens=16, temperature=0.0, max_message_chars=2000),  # greedy: repeatable
        # A high threshold, so that the round below is the one the admin asked for.
        loop=LoopSettings(min_votes=100, poll_seconds=0.5, admin_token="sesame"),
        gate=GateSettings(enabled=False, early_stop_every=0, holdout_share=0.0),
        data_dir=tmp_path / "state",
        shipped_adapter=None,
        round_overrides={"max_steps": 4},  # 16 rows: the 8 votes and the 8 default anchors, all read
    )
    runtime = Runtime.start(settings)
    return runtime, launch(runtime)


def base_checksum(model) -> float:
    return float(sum(p.detach().double().sum() for p in model.parameters()))


def raw_post(url: str, endpoint: str, data: list) -> str:
    """Call an endpoint over plain HTTP, as an anonymous script would; returns the event stream text."""
    event = httpx.post(f"{url}gradio_api/call/{endpoint}", json={"data": data}, timeout=30).json()["event_id"]
    return httpx.get(f"{url}gradio_api/call/{endpoint}/{event}", timeout=60).text


@pytest.mark.e2e
def test_chat_vote_round_swap(running_app, wait_for):
    runtime, url = running_app
    client = Client(url, verbose=False)
    base_before = base_checksum(runtime.base.model)

    job = client.submit("Title: Paper 0. Abstract: We claim a 0% gain.", api_name="/chat")
    job.result()
    assert len(job.outputs()) > 2, "the reply should arrive as a stream of partial texts"
    for i in range(1, 8):
        history, _ = client.predict(f"Title: Paper {i}. Abstract: We claim a {i}% gain.", api_name="/chat")
    assert len(history) == 1 + 16  # greeting + 8 turns
    reply_rows = [row for row, message in enumerate(history) if message["role"] == "assistant"][1:]
    assert len(reply_rows) == 8

    # Votes that point at anything but a stored reply of this chat are refused, and count for nothing.
    for forged in (0, 1, 99, "1"):
        with pytest.raises(Exception, match="Only Reviewer #2's replies"):
            client.predict(forged, "like", api_name="/vote")
    for forged in ("two", "2.5", "", None):
        with pytest.raises(Exception, match="a whole number such as 2"):
            client.predict(forged, "like", api_name="/vote")
    for n, row in enumerate(reply_rows):
        assert client.predict(row, "like" if n % 2 == 0 else "dislike", api_name="/vote") == "Vote recorded."
    assert client.predict(reply_rows[0], "like", api_name="/vote") == "Vote retracted."
    assert client.predict(reply_rows[0], "like", api_name="/vote") == "Vote recorded."
    assert runtime.votes.waiting_counts() == (4, 4)

    # "Train now" refuses anonymous callers, through the client and over raw HTTP alike.
    with pytest.raises(Exception, match="Not authorized"):
        client.predict("wrong", api_name="/train_now")
    assert "Not authorized" in raw_post(url, "train_now", [""])
    assert client.predict("sesame", api_name="/status")["serving"] == "base"
    assert "Round requested" in client.predict("sesame", api_name="/train_now")

    # The round ends (its votes marked trained) after its version serves, unmerged then merged.
    status = wait_for(lambda: (s := client.predict(api_name="/status"))["loop"]["rounds"] == 1 and s,
                      timeout=300, every=0.5)
    assert status["serving"] == "v0001", status
    assert status["votes_waiting"] == {"desirable": 0, "undesirable": 0}

    history, _ = client.predict("Title: Paper 9. Abstract: A new claim.", api_name="/chat")
    new_row = len(history) - 1
    trained = runtime.votes.votes(waiting=False)
    assert len(trained) == 8 and {v.version for v in trained} == {"base"}
    # The reply written after the swap is tagged with the new version.
    assert client.predict(new_row, "like", api_name="/vote") == "Vote recorded."
    latest = runtime.votes.votes(waiting=True)[0]
    assert latest.version == "v0001" and latest.completion == history[-1]["content"][0]["text"]

    # Every admin endpoint refuses anonymous callers; the token holder can roll back and export.
    for endpoint, data in (("pause", [""]), ("resume", ["nope"]), ("rollback", ["", "base"]),
                           ("export_votes", ["wrong"])):
        assert "Not authorized" in raw_post(url, endpoint, data), endpoint
        with pytest.raises(Exception, match="Not authorized"):
            client.predict(*data, api_name=f"/{endpoint}")
    assert runtime.server.current.name == "v0001" and runtime.loop.status().state == "idle"
    assert "Trainer paused" in raw_post(url, "pause", ["sesame"]) and runtime.loop.status().state == "paused"
    assert "Trainer resumed" in raw_post(url, "resume", ["sesame"]) and runtime.loop.status().state == "idle"
    assert client.predict("sesame", "base", api_name="/rollback") == "Now serving base."
    assert client.predict(api_name="/status")["serving"] == "base"
    exported = client.predict("sesame", api_name="/export_votes")
    assert len(open(exported, encoding="utf-8").read().splitlines()) == 9

    adapter = load_file(runtime.versions.get("v0001").path / "adapter_model.safetensors")
    lora_b = [t for name, t in adapter.items() if "lora_B" in name]
    assert lora_b and all(t.abs().sum() > 0 for t in lora_b), "LoRA B starts at zero; a round must move it"
    assert base_checksum(runtime.base.model) == base_before, "the shared base weights must not change"
    assert not runtime.base.model.training and not runtime.server.current.model.training


def test_export_works_with_data_dir_outside_the_working_and_temp_folders(settings, tiny_base, launch, send,
                                                                         tmp_path, monkeypatch):
    """Gradio serves files from the working folder and the temp folder only, unless told; a Space's DATA_DIR
    (say /data/state) is neither."""
    for folder in ("work", "tmp"):
        (tmp_path / folder).mkdir()
    monkeypatch.chdir(tmp_path / "work")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    settings.data_dir = tmp_path / "data"
    runtime = Runtime(settings, tiny_base)
    session = send(runtime, runtime.chat.new_session(), "A paper.")
    runtime.chat.vote(session, 2, "like", "alice")
    client = Client(launch(runtime), verbose=False)
    exported = client.predict("sesame", api_name="/export_votes")
    assert len(open(exported, encoding="utf-8").read().splitlines()) == 1
