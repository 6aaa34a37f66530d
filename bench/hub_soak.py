"""The Hub's commit budget in steady use: how many commits an hour the app makes while visitors chat and vote.

    python bench/hub_soak.py [--minutes 60] [--visitors 4] [--pause 10] [--model embedded|tiny]

Starts `app.py` with HUB_REPO on the tests' local Hub server (tests/hub_server.py, the real
huggingface_hub client), every Hub setting at its default (pushes every HUB_PUSH_SECONDS = 300 s, a
round's publish, serving and marks in one commit, at most HUB_MAX_COMMITS_PER_HOUR = 30). --visitors
visitors, each from an address of its own, chat one paper after another in their own session and vote on
every reply, --pause seconds apart; MIN_VOTES is the default 8, so rounds run whenever enough votes wait.
`--model tiny` serves a 2-layer random Llama (rounds take seconds: as many rounds an hour as the votes
allow, the worst case for commits); `embedded` the SmolLM2 the app ships with.

After --minutes the app gets SIGTERM, as a Space restart sends: it ends its replies and flushes once.
The Hub's copy is then read into a fresh store and checked vote for vote against the app's database.
The local Hub answers as fast as this machine; the figures are counts, not times.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gradio_client import Client  # noqa: E402

from bench.app_process import start_app  # noqa: E402
from bench.papers import TRAIN  # noqa: E402
from bench.report import publish, table  # noqa: E402
from bench.voter import prompt_of  # noqa: E402
from tests.hub_server import HubServer  # noqa: E402
from trainer.config import HubSettings  # noqa: E402
from trainer.store.hub import pull  # noqa: E402
from trainer.store.versions import VersionStore  # noqa: E402
from trainer.store.votes import VoteStore  # noqa: E402

TOKEN = "hf_bench"
REPO = "bench/soak"
HOUR = 3600.0


def tiny_model(folder: Path) -> Path:
    """A 2-layer random Llama with a byte-level BPE trained on the seed set and SmolLM2's chat template."""
    from tests.tiny_model import tiny_llama, tiny_tokenizer

    tokenizer = tiny_tokenizer()
    tiny_llama(tokenizer).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def visitor(url: str, number: int, until: float, pause: float, tally: dict, lock: threading.Lock) -> None:
    """One visitor: a paper, the reply, a vote on it, a pause; again until `until`."""
    client = Client(url, verbose=False, headers={"X-Forwarded-For": f"198.51.100.{number + 1}"})
    rng = random.Random(number)
    turn = 0
    while time.time() < until:
        title, abstract = TRAIN[(number * 97 + turn) % len(TRAIN)]
        try:
            history, _ = client.predict(prompt_of(title, abstract), api_name="/chat")
            client.predict(len(history) - 1, "like" if rng.random() < 0.4 else "dislike", api_name="/vote")
            with lock:
                tally["votes"] += 1
        except Exception as err:  # counted, and the visitor goes on (a refused message, a restart)
            with lock:
                tally["errors"] += 1
                tally["last_error"] = str(err)[:200]
        turn += 1
        time.sleep(pause * rng.uniform(0.5, 1.5))


def votes_in(path: Path) -> list[tuple]:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT reply_id, voter, label, revision FROM votes ORDER BY reply_id, voter").fetchall()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--visitors", type=int, default=4)
    parser.add_argument("--pause", type=float, default=10.0, help="seconds between a visitor's messages (mean)")
    parser.add_argument("--model", choices=("tiny", "embedded"), default="tiny")
    parser.add_argument("--name", default="hub-soak")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-hub-soak-"))
    hub = HubServer(work / "hub", token=TOKEN).start()
    env = {"HUB_REPO": REPO, "HF_TOKEN": TOKEN, "HF_ENDPOINT": hub.url, "CHAT_MAX_NEW_TOKENS": "32",
           "ADMIN_TOKEN": "bench"}
    if args.model == "tiny":
        env["MODEL_ID"] = str(tiny_model(work / "tiny-model"))
        env["SHIPPED_ADAPTER"] = ""
    process, url = start_app(work / "state", env)
    admin = Client(url, verbose=False)
    started = time.time()
    until = started + args.minutes * 60
    tally, lock = {"votes": 0, "errors": 0, "last_error": ""}, threading.Lock()
    threads = [threading.Thread(target=visitor, args=(url, n, until, args.pause, tally, lock), daemon=True)
               for n in range(args.visitors)]
    for thread in threads:
        thread.start()
    status = {}
    while time.time() < until:
        time.sleep(min(60.0, max(0.0, until - time.time())))
        status = admin.predict(api_name="/status")
        print(f"  {(time.time() - started) / 60:.0f} min: {len(hub.commits)} commits, {tally['votes']} votes, "
              f"{status['loop']['rounds']} rounds, hub {status['hub']['state']} "
              f"({status['hub']['events_waiting']} events waiting)", flush=True)
    for thread in threads:
        thread.join(120)
    before_stop = len(hub.commits)
    process.send_signal(signal.SIGTERM)  # a Space restart: replies end, then one flush
    process.wait(120)
    elapsed = time.time() - started

    restored = work / "restored"
    votes, versions = VoteStore(restored / "votes.sqlite3"), VersionStore(restored / "versions")
    pull(HubSettings(repo=REPO, token=TOKEN, endpoint=hub.url), restored, votes, versions)
    local, on_hub = votes_in(work / "state" / "votes.sqlite3"), votes_in(restored / "votes.sqlite3")
    steady = [c for c in hub.commits if c["at"] <= started + args.minutes * 60]
    windows = [sum(1 for c in steady if start <= c["at"] < start + HOUR) for start in [c["at"] for c in steady]]
    rounds = status.get("loop", {}).get("rounds", 0)
    with_versions = sum(1 for c in steady if any(p.startswith("versions/") for p in c["paths"]))
    rows = [("minutes chatting", f"{args.minutes:.0f}"), ("visitors", args.visitors),
            ("votes cast", tally["votes"]), ("rounds run", rounds),
            ("commits while chatting", len(steady)), ("of them with versions (a round)", with_versions),
            ("commits an hour (while chatting)", f"{len(steady) / (args.minutes / 60):.1f}"),
            ("most commits in any hour", max(windows, default=0)),
            ("429s from the Hub", len(hub.refused)),
            ("commits at SIGTERM (the flush)", len(hub.commits) - before_stop),
            ("votes in the app's database", len(local)), ("votes restored from the Hub", len(on_hub)),
            ("restored == local, vote for vote", "yes" if local == on_hub else "NO"),
            ("visitor errors", f"{tally['errors']}{' (' + tally['last_error'] + ')' if tally['errors'] else ''}")]
    body = (table(("figure", "value"), rows) +
            f"\n\nModel: {args.model}; every Hub setting at its default (HUB_PUSH_SECONDS 300, "
            "HUB_MAX_COMMITS_PER_HOUR 30); MIN_VOTES 8; 32-token replies. Goal (issue: a public crowd): at most "
            f"about 30 commits an hour in steady use, nothing lost at SIGTERM. Run took {elapsed / 60:.0f} min.")
    command = (f"python bench/hub_soak.py --minutes {args.minutes:g} --visitors {args.visitors} "
               f"--pause {args.pause:g} --model {args.model}")
    publish(args.name, "Hub commit budget: commits an hour with visitors chatting and voting", command, body)
    (work / "commits.json").write_text(json.dumps(hub.commits))
    hub.stop()


if __name__ == "__main__":
    main()
