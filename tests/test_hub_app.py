"""The app as a process, as a Space runs it, keeping its votes on a local Hub: a kill -9 loses at most the
votes of the last push interval and nothing after a round's publish; SIGTERM (a Space restart) flushes; a
fresh disk restores the votes and serves the Hub's version. In Space mode (SPACE_ID, SYSTEM=spaces and the
OAuth variables a Space sets) it serves on localhost with the sign-in button, and keeps its votes in
<space id>-data by default. A tiny random model keeps every start to seconds."""

import signal

import httpx
from gradio_client import Client

from bench.app_process import start_app
from trainer.store.events import event_files, read_events
from trainer.store.votes import VoteStore

REPO = "tester/reviewer2-data"


def app_env(server, model_dir, **extra) -> dict:
    return {"MODEL_ID": str(model_dir), "DEVICE": "cpu", "SHIPPED_ADAPTER": "", "HUB_REPO": REPO,
            "HF_TOKEN": "hf_test", "HF_ENDPOINT": server.url, "HF_HUB_OFFLINE": "0", "CHAT_MAX_NEW_TOKENS": "4",
            "CHAT_TEMPERATURE": "0", "CHAT_DTYPE": "float32", "MIN_VOTES": "1000", "ADMIN_TOKEN": "sesame",
            "GATE_ENABLED": "false", "GATE_EARLY_STOP_EVERY": "0", "GATE_HOLDOUT_SHARE": "0", "KTO_MAX_STEPS": "1",
            "SEED_ANCHORS": "0", "TRAINER_POLL_SECONDS": "0.2", **extra}


def chat_and_vote(client: Client, n: int) -> None:
    """n replies in this client's chat, voted like / dislike in turn."""
    for i in range(n):
        history, _ = client.predict(f"Title: Paper {i}. Abstract: We claim {i}%.", api_name="/chat")
    rows = [row for row, message in enumerate(history) if message["role"] == "assistant"][1:]
    for k, row in enumerate(rows[-n:]):
        assert client.predict(row, "like" if k % 2 == 0 else "dislike", api_name="/vote") == "Vote recorded."


def on_hub(server, tmp_path, repo: str = REPO) -> VoteStore:
    """What the Hub holds: its event files replayed into a store of their own."""
    store = VoteStore(tmp_path / f"hub-check-{len(list(tmp_path.glob('hub-check-*')))}" / "votes.sqlite3")
    store.apply_events(read_events(event_files(server.repo_dir("dataset", repo) / "files")))
    return store


def test_kill_restart_and_sigterm_lose_nothing_beyond_the_last_interval(hub_server, tiny_model_dir, tmp_path,
                                                                         wait_for):
    first, url = start_app(tmp_path / "first", app_env(hub_server, tiny_model_dir, HUB_PUSH_SECONDS="2"))
    client = Client(url, verbose=False)
    chat_and_vote(client, 4)
    wait_for(lambda: sum(on_hub(hub_server, tmp_path).total_counts()) == 4, timeout=30)
    chat_and_vote(client, 2)  # within the next interval: may or may not be pushed before the kill
    first.kill()
    first.wait()
    kept = sum(on_hub(hub_server, tmp_path).total_counts())
    assert kept in (4, 6)

    # A fresh disk: the votes come back, waiting; a round's version reaches the Hub when it is published,
    # though the next scheduled push is ten minutes away.
    second, url = start_app(tmp_path / "second", app_env(hub_server, tiny_model_dir, HUB_PUSH_SECONDS="600"))
    client = Client(url, verbose=False)
    status = wait_for(lambda: (s := client.predict(api_name="/status"))["hub"]["state"] == "synced" and s,
                      timeout=30)
    assert sum(status["votes_total"].values()) == sum(status["votes_waiting"].values()) == kept
    assert status["hub"]["restored_events"] > 0
    assert "Round requested" in client.predict("sesame", api_name="/train_now")
    wait_for(lambda: client.predict(api_name="/status")["loop"]["rounds"] == 1, timeout=120, every=0.5)
    wait_for(lambda: (hub_server.repo_dir("dataset", REPO) / "files/versions/v0001/meta.json").is_file()
             and sum(on_hub(hub_server, tmp_path).waiting_counts()) == 0, timeout=30)
    second.kill()
    second.wait()

    third, url = start_app(tmp_path / "third", app_env(hub_server, tiny_model_dir, HUB_PUSH_SECONDS="600"))
    client = Client(url, verbose=False)
    status = client.predict(api_name="/status")
    assert status["serving"] == "v0001" and status["votes_waiting"] == {"desirable": 0, "undesirable": 0}
    chat_and_vote(client, 2)
    third.send_signal(signal.SIGTERM)  # as a Space restart does: the votes go up before it exits
    assert third.wait(timeout=60) == 0
    assert sum(on_hub(hub_server, tmp_path).total_counts()) == kept + 2


def test_space_mode_serves_with_sign_in_and_keeps_votes_in_the_spaces_own_repo(hub_server, tiny_model_dir,
                                                                                 tmp_path, wait_for):
    space = {"SPACE_ID": "tester/reviewer2", "SYSTEM": "spaces", "SPACE_AUTHOR_NAME": "tester",
             "SPACE_HOST": "tester-reviewer2.hf.space", "OAUTH_CLIENT_ID": "client-id",
             "OAUTH_CLIENT_SECRET": "client-secret", "OAUTH_SCOPES": "openid profile",
             "OPENID_PROVIDER_URL": hub_server.url}
    env = {**app_env(hub_server, tiny_model_dir, HUB_PUSH_SECONDS="1"), **space}
    del env["HUB_REPO"]  # the Space's own: tester/reviewer2-data
    process, url = start_app(tmp_path / "space", env)
    try:
        config = httpx.get(f"{url}config", timeout=30).json()
        buttons = {c["props"].get("value") for c in config["components"] if c.get("type") == "button"}
        assert "Sign in with Hugging Face" in buttons
        login = httpx.get(f"{url}login/huggingface", timeout=30, follow_redirects=False)
        assert login.status_code in (302, 307)
        assert login.headers["location"].startswith(f"{hub_server.url}/oauth/authorize?")
        assert "client_id=client-id" in login.headers["location"]
        client = Client(url, verbose=False)
        chat_and_vote(client, 2)
        wait_for(lambda: sum(on_hub(hub_server, tmp_path).total_counts()) == 2, timeout=30)
        assert client.predict(api_name="/status")["hub"]["repo"] == REPO
    finally:
        process.kill()
        process.wait()
