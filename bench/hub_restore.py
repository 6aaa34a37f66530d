"""Votes and versions on the Hub: how long a cold start's restore of 1,000 votes and 10 versions takes, and how
long a push of one interval's votes takes (the longest votes sit unpushed is HUB_PUSH_SECONDS plus that).

    python bench/hub_restore.py [--votes 1000] [--versions 10] [--runs 3]

The Hub is the tests' local Hub server (tests/hub_server.py) on this machine, driven by the real
huggingface_hub client: the figures leave out the network between a Space and huggingface.co (each
request's round trip, and the transfer of the version files at the Hub's rate), which the last column
estimates. The restored store is checked row for row against the one that pushed.
"""

from __future__ import annotations

import argparse
import dataclasses
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from huggingface_hub import snapshot_download  # noqa: E402

from bench.papers import TRAIN  # noqa: E402
from bench.report import median, publish, table  # noqa: E402
from tests.hub_server import HubServer  # noqa: E402
from trainer.config import SHIPPED_ADAPTER, AppSettings, HubSettings  # noqa: E402
from trainer.contracts import VersionMeta  # noqa: E402
from trainer.store.events import event_files, read_events  # noqa: E402
from trainer.store.hub import PUSHED, HubSync, pull  # noqa: E402
from trainer.store.versions import VersionStore  # noqa: E402
from trainer.store.votes import StoredReply, VoteStore  # noqa: E402

TOKEN = "hf_bench"
NEW_VOTES_PER_INTERVAL = 50


def fill(folder: Path, votes: int, versions: int) -> tuple[VoteStore, VersionStore]:
    """A DATA_DIR as a busy Space leaves it: replies with real prompts, votes, rounds' marks, versions."""
    persona = AppSettings.from_env({}).persona.system_prompt
    store, versions_store = VoteStore(folder / "votes.sqlite3"), VersionStore(folder / "versions")
    cast_votes(store, 0, votes, persona)
    shipped = VersionMeta.read(SHIPPED_ADAPTER / "meta.json")
    per_round = votes // max(versions, 1)
    waiting = store.votes(waiting=True)
    for n in range(versions):
        name = versions_store.install(SHIPPED_ADAPTER, dataclasses.replace(shipped, parent=f"v{n:04d}"))
        versions_store.set_current(name, reason="round")
        chunk = waiting[n * per_round:(n + 1) * per_round]
        store.keep_for_gate(chunk[: per_round // 5])
        store.mark_trained(chunk[per_round // 5:], name)
    return store, versions_store


def cast_votes(store: VoteStore, start: int, count: int, persona: str) -> None:
    for i in range(start, start + count):
        title, abstract = TRAIN[i % len(TRAIN)]
        session = f"visitor-{i // 10}"
        prompt = [{"role": "system", "content": persona},
                  {"role": "user", "content": f"Title: {title}. Abstract: {abstract}"}]
        store.add_reply(StoredReply(id=f"reply-{i}", session=session, prompt=prompt, version="v0001",
                              completion=("The abstract claims far more than the experiments show; the baselines "
                                          "are weak and the ablations missing. Recommendation: reject. ") * 3))
        store.vote(f"reply-{i}", session, i % 3 != 0)


def rows(path: Path, name: str) -> list[tuple]:
    with sqlite3.connect(path) as db:
        return sorted(db.execute(f"SELECT * FROM {name}").fetchall())


def one_run(work: Path, votes: int, versions: int) -> dict[str, float]:
    server = HubServer(work / "hub", token=TOKEN).start()
    settings = HubSettings(repo="bench/reviewer2-data", token=TOKEN, endpoint=server.url, push_seconds=3600)
    try:
        store, versions_store = fill(work / "source", votes, versions)
        sync = HubSync(settings, work / "source", store, versions_store)
        sync.start()
        started = time.perf_counter()
        assert sync.flush(timeout=600)
        first_push = time.perf_counter() - started
        cast_votes(store, votes, NEW_VOTES_PER_INTERVAL, "You are Reviewer #2.")
        started = time.perf_counter()
        assert sync.flush(timeout=600)
        interval_push = time.perf_counter() - started
        sync.close()
        uploaded = sum(p.stat().st_size for p in server.files("dataset", settings.repo).values())

        started = time.perf_counter()
        snapshot_download(settings.repo, repo_type="dataset", local_dir=work / "download-only", allow_patterns=PUSHED,
                          endpoint=server.url, token=TOKEN)
        download_only = time.perf_counter() - started

        fresh = work / "fresh"
        fresh_votes, fresh_versions = VoteStore(fresh / "votes.sqlite3"), VersionStore(fresh / "versions")
        started = time.perf_counter()
        events, adopted = pull(settings, fresh, fresh_votes, fresh_versions)
        restore = time.perf_counter() - started
        for name in ("replies", "votes"):
            assert rows(fresh_votes.path, name) == rows(store.path, name), f"restored {name} differ"
        assert adopted == versions and fresh_versions.current() == versions_store.current()

        replay_store = VoteStore(work / "replay" / "votes.sqlite3")
        started = time.perf_counter()
        replay_store.apply_events(read_events(event_files(work / "download-only")))
        replay = time.perf_counter() - started
        return {"restore": restore, "download": download_only, "replay": replay, "events": events,
                "first_push": first_push, "interval_push": interval_push, "mib": uploaded / 2**20,
                "requests": 3 + 2 * len(server.files("dataset", settings.repo))}
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--votes", type=int, default=1000)
    parser.add_argument("--versions", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    runs = []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as work:
            runs.append(one_run(Path(work), args.votes, args.versions))
    m = {key: median([r[key] for r in runs]) for key in runs[0]}
    # A Space reaching huggingface.co: ~50 ms per request, version files at ~50 MiB/s (an estimate, not measured).
    remote = lambda seconds, mib=0.0, requests=0: seconds + 0.05 * requests + mib / 50  # noqa: E731
    rows_ = [
        (f"cold start restore: {args.votes:,} votes, {args.versions} versions ({m['events']:.0f} events, "
         f"{m['mib']:.0f} MiB)", f"{m['restore']:.2f}", f"{m['download']:.2f} (download alone)",
         f"{m['restore'] / m['download']:.2f}x", f"~{remote(m['restore'], m['mib'], m['requests']):.0f} s"),
        ("of which: events replayed into SQLite", f"{m['replay']:.2f}", "", "", ""),
        (f"push of one interval ({NEW_VOTES_PER_INTERVAL} new votes)", f"{m['interval_push']:.2f}", "", "",
         f"~{remote(m['interval_push'], 0, 4):.1f} s"),
        ("first push of everything", f"{m['first_push']:.2f}", "", "",
         f"~{remote(m['first_push'], m['mib'], m['requests']):.0f} s"),
    ]
    body = table(("figure", "seconds here", "plain alternative", "ratio", "to huggingface.co (est.)"), rows_)
    body += (f"\n\nLongest time a vote sits unpushed: HUB_PUSH_SECONDS (60 by default) plus one push "
             f"({m['interval_push']:.2f} s here), so a kill -9 loses at most about a minute of votes; a round's "
             "version is pushed as soon as it is published, and SIGTERM flushes. Median of "
             f"{args.runs} runs; the restored store matched the pushed one row for row in every run.")
    publish("hub-restore", "Votes and versions on the Hub: restore and push times",
            f"python bench/hub_restore.py --votes {args.votes} --versions {args.versions} --runs {args.runs}", body)


if __name__ == "__main__":
    main()
