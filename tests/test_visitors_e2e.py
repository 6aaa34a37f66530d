"""Several visitors at once, end to end: the real app on localhost, the embedded model, gradio_client visitors.

Visitors sending together are decoded in one batch, and each gets the reply he gets alone (greedy):
no crossed streams. One visitor's stop leaves the others running; a swap mid-batch leaves each stored
reply tagged with the version it started on; a visitor over the concurrency limit sees his place in
the queue, and a second message while his reply streams is refused with a clear message.
"""

import json
import sqlite3
import threading

import pytest
from gradio_client import Client
from gradio_client.utils import Status

from trainer.config import SHIPPED_ADAPTER, AppSettings, ChatSettings, GateSettings, LoopSettings, ModelSettings
from trainer.contracts import VersionMeta
from trainer.runtime import Runtime

PAPERS = ["Title: Attention Is Mostly What You Need. Abstract: We remove 40% of the attention heads.",
          "Title: Deep Learning Predicts Crop Yields. Abstract: A CNN on satellite images beats a linear model.",
          "Title: A Novel Blockchain for Peer Review. Abstract: We store every review on a public chain.",
          "Title: Coffee and Citations. Abstract: Professors who drink more coffee are cited more often."]
CONCURRENCY = 3


@pytest.fixture
def running_app(tmp_path, embedded_dir, persona, launch):
    settings = AppSettings(
        persona=persona,
        model=ModelSettings(cache_dir=embedded_dir.parent, device="cpu"),
        # Greedy and float32: replies are exactly repeatable (bf16 kernels may round differently by batch size).
        chat=ChatSettings(max_new_tokens=24, temperature=0.0, concurrency=CONCURRENCY, dtype="float32"),
        loop=LoopSettings(min_votes=100, admin_token="sesame", enabled=False),
        gate=GateSettings(enabled=False),
        data_dir=tmp_path / "state",
        shipped_adapter=None,
    )
    runtime = Runtime.start(settings)
    return runtime, launch(runtime)


def last_reply(history: list[dict]) -> str:
    return "".join(part["text"] for part in history[-1]["content"])


def stored_replies(runtime: Runtime) -> dict[str, tuple[str, str, bool]]:
    """Every stored reply by the visitor's message: (text, version, stopped)."""
    with sqlite3.connect(runtime.votes.path) as db:
        rows = db.execute("SELECT prompt, completion, version, stopped FROM replies").fetchall()
    return {json.loads(prompt)[-1]["content"]: (text, version, bool(stopped))
            for prompt, text, version, stopped in rows}


@pytest.mark.e2e
def test_visitors_at_once_each_get_their_own_reply(running_app, wait_for):
    runtime, url = running_app
    alone = {}
    for paper in PAPERS[:CONCURRENCY]:
        history, _ = Client(url, verbose=False).predict(paper, api_name="/chat")
        alone[paper] = last_reply(history)
    assert len(set(alone.values())) == CONCURRENCY

    visitors = [Client(url, verbose=False) for _ in range(CONCURRENCY)]
    jobs = [visitor.submit(paper, api_name="/chat") for visitor, paper in zip(visitors, PAPERS)]
    together = {paper: last_reply(job.result()[0]) for paper, job in zip(PAPERS, jobs)}
    assert together == alone, "each visitor got the reply he gets alone"
    assert runtime.server.decoder.largest_batch == CONCURRENCY, "their replies were decoded in one batch"


def queue_place(job):
    """The job's status while it waits in the queue with a known place, else None."""
    status = job.status()
    return status if status.code == Status.IN_QUEUE and status.rank is not None else None


@pytest.mark.e2e
def test_stop_swap_queue_and_one_reply_per_visitor(running_app, wait_for):
    runtime, url = running_app
    runtime.settings.chat.max_new_tokens = 128  # long enough for everything below to happen mid-reply
    visitors = [Client(url, verbose=False) for _ in range(CONCURRENCY + 1)]
    jobs = [visitor.submit(paper, api_name="/chat") for visitor, paper in zip(visitors[:2], PAPERS)]
    wait_for(lambda: runtime.server.generating == 2, timeout=30)

    # A second message from a visitor whose reply still streams is refused, with a clear message.
    with pytest.raises(Exception, match="still writing"):
        visitors[0].predict(PAPERS[3], api_name="/chat")

    # The visitor over the limit waits in the queue and is told where.
    jobs += [visitor.submit(paper, api_name="/chat") for visitor, paper in zip(visitors[2:], PAPERS[2:])]
    waiting = wait_for(lambda: next((n for n in (2, 3) if queue_place(jobs[n])), None), timeout=30, every=0.02)
    place = queue_place(jobs[waiting])
    assert place is not None and place.rank == 0 and place.queue_size >= 1
    first_served = [0, 1, 5 - waiting]
    wait_for(lambda: runtime.server.generating == CONCURRENCY, timeout=30)

    # A new version lands mid-batch (the shipped adapter, installed as an admin would).
    name = runtime.versions.install(SHIPPED_ADAPTER, VersionMeta.read(SHIPPED_ADAPTER / "meta.json"))
    threading.Thread(target=runtime.rollout.serve, args=(name, "test swap"), daemon=True).start()
    wait_for(lambda: runtime.server.current.name == name, timeout=60)
    assert set(runtime.server.in_flight()) == {"base"}

    # One visitor stops; the others run on to their end, and the one who waited gets his turn.
    visitors[1].predict(api_name="/stop")
    for n in (0, 2, 3):
        assert last_reply(jobs[n].result()[0])
    wait_for(lambda: runtime.server.generating == 0, timeout=60)

    stored = wait_for(lambda: len(replies := stored_replies(runtime)) == 4 and replies, timeout=10)
    assert {stored[PAPERS[n]][1] for n in first_served} == {"base"}, "in flight at the swap: the base's"
    assert [stored[PAPERS[n]][2] for n in first_served] == [False, True, False], "only one was stopped"
    assert stored[PAPERS[waiting]][1] == name, "the visitor who waited in the queue was served by the new version"
    assert stored[PAPERS[waiting]][0] and not stored[PAPERS[waiting]][2]
