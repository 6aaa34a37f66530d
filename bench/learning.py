"""Does the bot learn its voters' taste? The simulated voter (bench/voter.py) votes through the real app.

Run:  .venv/bin/python bench/learning.py [--rounds 3] [--votes 24] [--tokens 128] [--fresh 24] [--name NAME]

Starts `app.py` as a visitor finds it (default settings but MIN_VOTES=--votes and replies of --tokens
tokens) on a fresh DATA_DIR, and talks to it over HTTP with gradio_client only:

    measure   the serving version answers --fresh papers no round ever sees (bench/papers.py FRESH),
              each as the first message of a new chat; the voter judges each reply (not a vote)
    vote      --votes replies to training papers (bench/papers.py TRAIN), each in a new chat, get
              the voter's thumbs through /vote; MIN_VOTES makes the app start a round by itself
    wait      until the round ends (or, if the app starts none within a minute, say it stalled)

then measure again, --rounds times. The table gives, per round: the version serving, the votes,
the like-rate on fresh papers, the voter's mean rubric score, mean reply words, the share of
finished replies, distinct-2, and the KL to the base and gate verdict of the round's version (read
from its meta.json). Every reply and vote goes to --dump as JSON for a closer look.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gradio_client import Client  # noqa: E402

from bench.app_process import reply_text, start_app  # noqa: E402
from bench.papers import FRESH, TRAIN  # noqa: E402
from bench.report import publish, table  # noqa: E402
from bench.voter import prompt_of, verdict  # noqa: E402
from trainer.gate.rubric import words  # noqa: E402
from trainer.gate.rule import distinct_n  # noqa: E402

ADMIN_TOKEN = "bench-learning"


def start_learning_app(data_dir: Path, votes: int, tokens: int, extra_env: dict[str, str]):
    return start_app(data_dir, {"MIN_VOTES": str(votes), "CHAT_MAX_NEW_TOKENS": str(tokens),
                                "ADMIN_TOKEN": ADMIN_TOKEN, **extra_env})


def reply_to(client: Client, prompt: str) -> tuple[str, int]:
    """A new chat's first reply to `prompt`, and its row in the chat (for a vote)."""
    client.reset_session()
    history, _ = client.predict(prompt, api_name="/chat")
    return reply_text(history), len(history) - 1


def measure(client: Client, papers: list[tuple[str, str]]) -> dict:
    replies = []
    for title, abstract in papers:
        prompt = prompt_of(title, abstract)
        reply, _ = reply_to(client, prompt)
        judged = verdict(reply, prompt)
        replies.append({"title": title, "reply": reply, "liked": judged.liked, "score": judged.score,
                        "checks": asdict(judged)})
    texts = [r["reply"] for r in replies]
    return {"like_rate": sum(r["liked"] for r in replies) / len(replies),
            "score": sum(r["score"] for r in replies) / len(replies),
            "words": sum(len(words(t)) for t in texts) / len(texts),
            "finished": sum(r["checks"]["finished"] for r in replies) / len(replies),
            "distinct2": distinct_n(texts), "replies": replies}


def vote(client: Client, papers: list[tuple[str, str]]) -> list[dict]:
    cast = []
    for title, abstract in papers:
        prompt = prompt_of(title, abstract)
        reply, row = reply_to(client, prompt)
        liked = verdict(reply, prompt).liked
        note = client.predict(row, "like" if liked else "dislike", api_name="/vote")
        cast.append({"title": title, "reply": reply, "liked": liked, "note": note})
    return cast


def round_marks(loop: dict) -> tuple:
    """What changes when a round ends, served, rejected or failed."""
    return loop["rounds"], loop["last_error"], loop["last_round_seconds"]


def wait_for_round(client: Client, before: tuple, timeout: float = 1800) -> dict:
    """The status once a round ended after `before` (round_marks); {"stalled": reason} if none started."""
    started = time.time()
    asked = False
    while time.time() - started < timeout:
        status = client.predict(api_name="/status")
        loop = status["loop"]
        if round_marks(loop) != before and loop["state"] != "training":
            return status
        if loop["state"] != "training" and time.time() - started > 60 and not asked:
            answer = client.predict(ADMIN_TOKEN, api_name="/train_now")
            asked = True
            if not answer.startswith("Round requested"):
                return {**status, "stalled": answer}
        time.sleep(3)
    raise TimeoutError("the round did not end in time")


def version_meta(data_dir: Path, name: str) -> dict:
    path = data_dir / "versions" / name / "meta.json"
    return json.loads(path.read_text()) if path.exists() else {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--votes", type=int, default=24, help="votes per round (MIN_VOTES)")
    parser.add_argument("--tokens", type=int, default=128, help="reply length cap (CHAT_MAX_NEW_TOKENS)")
    parser.add_argument("--fresh", type=int, default=len(FRESH), help="fresh papers measured after each round")
    parser.add_argument("--name", default="learning", help="BENCHMARKS.md section (e.g. learning-before)")
    parser.add_argument("--dump", type=Path, default=Path(tempfile.gettempdir()) / "bench-learning.json")
    parser.add_argument("--env", action="append", default=[], help="extra app setting NAME=VALUE")
    args = parser.parse_args()
    extra = dict(item.split("=", 1) for item in args.env)

    work = Path(tempfile.mkdtemp(prefix="bench-learning-"))
    process, url = start_learning_app(work / "state", args.votes, args.tokens, extra)
    client = Client(url, verbose=False)
    fresh = FRESH[:args.fresh]
    log: list[dict] = []
    try:
        serving = client.predict(api_name="/status")["serving"]
        log.append({"round": 0, "serving": serving, **measure(client, fresh)})
        print(f"round 0 ({serving}): like-rate {log[-1]['like_rate']:.0%}", flush=True)
        for round_number in range(1, args.rounds + 1):
            before = round_marks(client.predict(api_name="/status")["loop"])
            start = (round_number - 1) * args.votes
            papers = [TRAIN[(start + i) % len(TRAIN)] for i in range(args.votes)]
            cast = vote(client, papers)
            round_started = time.time()
            status = wait_for_round(client, before)
            loop = status["loop"]
            meta = version_meta(work / "state", loop["last_version"] or "")
            entry = {"round": round_number, "votes_up": sum(v["liked"] for v in cast),
                     "votes_down": sum(not v["liked"] for v in cast), "votes": cast,
                     "round_s": time.time() - round_started, "stalled": status.get("stalled"),
                     "version": loop["last_version"], "rejection": loop["last_rejection"],
                     "error": loop["last_error"], "kl": ((meta.get("gate") or {}).get("candidate") or {}).get("kl"),
                     "rubric": ((meta.get("gate") or {}).get("candidate") or {}).get("rubric")}
            serving = status["serving"]
            entry.update({"serving": serving, **measure(client, fresh)})
            log.append(entry)
            print(f"round {round_number}: {entry['votes_up']} up / {entry['votes_down']} down -> "
                  f"{entry['version']} ({entry['stalled'] or entry['error'] or entry['rejection'] or 'served'}); "
                  f"serving {serving}: like-rate {entry['like_rate']:.0%}", flush=True)
    finally:
        args.dump.write_text(json.dumps(log, indent=1))
        process.terminate()
        process.wait(30)

    start = log[0]
    rows = []
    for entry in log:
        if entry["round"] == 0:
            trained = "(start)"
        elif entry.get("stalled"):
            trained = f"{entry['votes_up']} up / {entry['votes_down']} down: no round ({entry['stalled']})"
        else:
            verdict_text = "rejected by the gate" if entry["rejection"] else "served"
            if entry["error"]:
                verdict_text = f"failed: {entry['error']}"
            trained = f"{entry['votes_up']} up / {entry['votes_down']} down -> {entry['version']}, {verdict_text}"
        rows.append((entry["round"], trained, entry["serving"], f"{entry['like_rate']:.0%}",
                     f"{(entry['like_rate'] - start['like_rate']) * 100:+.0f} pts", f"{entry['score']:.2f}",
                     f"{entry['words']:.0f}", f"{entry['finished']:.0%}",
                     f"{entry['distinct2']:.2f} ({entry['distinct2'] / max(start['distinct2'], 1e-9):.2f}x)",
                     "" if entry.get("kl") is None else f"{entry['kl']:.3f}"))
    header = ("round", "votes -> version", "serving", "like-rate (fresh)", "vs start", "rubric", "words",
              "finished", "distinct-2 (vs start)", "KL to base")
    command = "python bench/learning.py " + " ".join(sys.argv[1:])
    body = (table(header, rows) + f"\n\n{len(fresh)} fresh papers per measurement, {args.votes} votes per round, "
            f"{args.tokens}-token replies. Goal: like-rate +30 pts within 3 rounds, distinct-2 >= 0.8x of the start, "
            "KL within the gate's cap.")
    publish(args.name, f"Learning: the simulated voter's like-rate, round by round ({args.name})", command, body)


if __name__ == "__main__":
    main()
