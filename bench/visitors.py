"""Many visitors at once: batched serving against today's app (one reply at a time), through the real app.

Run:  .venv/bin/python bench/visitors.py [--runs 3] [--tokens 64] [--visitors 8] [--before REV] [--no-round]

Both apps run as processes (`app.py`, trainer off, greedy replies of at most --tokens tokens), driven
over HTTP by gradio_client visitors sending the persona's example papers:

    alone      one visitor, idle app: tokens/s and time to first token (--runs replies, at least 4)
    at once    --visitors visitors send at the same moment: aggregate tokens/s (all their tokens over
               the wall time from the first send to the last token) and the p95 time to first token
    few        4 visitors send at the same moment: the wall time until all 4 replies are done, against
               the mean time of one of those 4 replies sent alone
    tabs       the same, ours only, with ten open tabs polling the status line (2 s) and dashboard (5 s)
    memory     the app's peak RSS once all of that has run (VmHWM)

"Before" is the app at revision --before (a `git worktree` of it), which generates one reply at a
time. Then, ours only: the longest chat block at a swap with --visitors replies in flight (in this
process: the largest gap between streamed pieces around the swap, less that of the same window in a
run without one), and (unless --no-round) a round of 8 votes with chat idle against the same round
while 4 visitors chat without pause. Tokens are counted by re-tokenizing each reply.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from gradio_client import Client  # noqa: E402

from bench.app_process import peak_rss_mib, reply_text, start_app  # noqa: E402
from bench.report import median, p95, publish, table  # noqa: E402
from trainer.config import AppSettings  # noqa: E402

BEFORE = "c3e3667"  # the last revision that served one reply at a time
ADMIN_TOKEN = "bench-visitors"
TAB_TIMERS = {"status": 2.0, "dashboard": 5.0}
FEW = 4  # visitors of the "all replies done" row: a small group sending at once


def messages(count: int) -> list[str]:
    """`count` different papers, built from the persona's examples."""
    examples = AppSettings.from_env().persona.examples
    return [examples[i % len(examples)] + ("" if i < len(examples) else f" (revision {i // len(examples)})")
            for i in range(count)]


class Visitor:
    """One gradio_client visitor timing one reply: send, first streamed text, last."""

    def __init__(self, url: str, tokenizer):
        self.client, self.tokenizer = Client(url, verbose=False), tokenizer

    def reply(self, message: str, barrier: threading.Barrier | None = None) -> dict:
        self.client.reset_session()
        if barrier is not None:
            barrier.wait()
        sent = time.perf_counter()
        first = None
        job = self.client.submit(message, api_name="/chat")
        for history, _ in job:
            if first is None and len(history) > 2 and reply_text(history).strip():
                first = time.perf_counter()
        history = job.result()[0]
        ended = time.perf_counter()
        text = reply_text(history)
        tokens = len(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        return {"sent": sent, "first": (first or ended) - sent, "ended": ended, "tokens": tokens}


def at_once(url: str, tokenizer, texts: list[str]) -> dict:
    """Every visitor sends at the same moment; aggregate tokens/s and each one's time to first token."""
    visitors = [Visitor(url, tokenizer) for _ in texts]
    barrier = threading.Barrier(len(texts))
    results: list[dict] = [{}] * len(texts)

    def run(n: int) -> None:
        results[n] = visitors[n].reply(texts[n], barrier)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(len(texts))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = max(r["ended"] for r in results) - min(r["sent"] for r in results)
    return {"tokens_per_s": sum(r["tokens"] for r in results) / wall, "ttft": [r["first"] for r in results],
            "wall": wall}


class Tabs:
    """Open browser tabs, as far as the server sees them: each polls the status line and dashboard timers."""

    def __init__(self, url: str, count: int):
        config = httpx.get(f"{url}config", timeout=30).json()
        components = {c["id"]: c for c in config["components"]}
        ticks = [dep["id"] for dep in config["dependencies"]
                 if any(event == "tick" for _, event in dep["targets"])]
        timers = sorted(ticks, key=lambda fn: components[[t for t, _ in config["dependencies"][fn]["targets"]][0]]
                        ["props"].get("value", 0))
        self.fns = dict(zip(TAB_TIMERS, timers))  # the 2 s timer is the status line's, the 5 s the dashboard's
        self.url, self.count = url, count
        self._stop = threading.Event()
        self.calls = 0

    def __enter__(self) -> "Tabs":
        self._threads = [threading.Thread(target=self._poll, args=(f"tab{n}-{name}", self.fns[name], every))
                         for n in range(self.count) for name, every in TAB_TIMERS.items()]
        for thread in self._threads:
            thread.start()
        return self

    def _poll(self, session: str, fn_index: int, every: float) -> None:
        with httpx.Client(timeout=30) as http:
            while not self._stop.wait(every):
                http.post(f"{self.url}gradio_api/run/predict",
                          json={"data": [], "fn_index": fn_index, "session_hash": session}).raise_for_status()
                self.calls += 1

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()


def chat_figures(root: Path, work: Path, args, tokenizer, tabs: bool) -> dict:
    env = {"TRAINER_ENABLED": "0", "CHAT_MAX_NEW_TOKENS": str(args.tokens), "CHAT_TEMPERATURE": "0",
           "ADMIN_TOKEN": ADMIN_TOKEN}
    process, url = start_app(work / "state", env, root)
    try:
        texts = messages(args.visitors)
        visitor = Visitor(url, tokenizer)
        visitor.reply(texts[0])  # warm-up
        alone = [visitor.reply(texts[n % len(texts)]) for n in range(max(args.runs, FEW))]
        single_tps = [r["tokens"] / (r["ended"] - r["sent"]) for r in alone]
        crowd = [at_once(url, tokenizer, texts) for _ in range(args.runs)]
        few = [at_once(url, tokenizer, texts[:FEW]) for _ in range(args.runs)]
        figures = {"alone_tps": median(single_tps), "alone_ttft": median([r["first"] for r in alone]),
                   "crowd_tps": median([c["tokens_per_s"] for c in crowd]),
                   "crowd_p95_ttft": median([p95(c["ttft"]) for c in crowd]),
                   # the same FEW messages, one at a time alone: the mean time of one of their replies
                   "few_alone_s": statistics.mean(r["ended"] - r["sent"] for r in alone[:FEW]),
                   "few_wall_s": median([f["wall"] for f in few])}
        if tabs:
            with Tabs(url, 10) as polling:
                tabbed = [at_once(url, tokenizer, texts) for _ in range(args.runs)]
            figures["tabs_tps"] = median([c["tokens_per_s"] for c in tabbed])
            figures["tab_calls"] = polling.calls
        figures["peak_rss"] = peak_rss_mib(process)
        return figures
    finally:
        process.terminate()
        process.wait(30)


def worktree(rev: str, work: Path) -> Path:
    path = work / f"app-{rev}"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(path), rev], check=True,
                   capture_output=True)
    return path


def swap_block(args) -> dict:
    """In this process: the largest gap between streamed pieces around a swap, 8 replies in flight."""
    from trainer.runtime import Runtime

    settings = AppSettings.from_env({"DATA_DIR": tempfile.mkdtemp(prefix="bench-swap-"), "TRAINER_ENABLED": "0",
                                     "CHAT_MAX_NEW_TOKENS": str(args.tokens), "CHAT_TEMPERATURE": "0"})
    runtime = Runtime.start(settings)
    server = runtime.server
    prompts = [[{"role": "system", "content": settings.persona.system_prompt}, {"role": "user", "content": text}]
               for text in messages(args.visitors)]
    versions = [server.current, server.load("base", None)]  # the shipped v1 and the base, swapped in turn

    def largest_gap(swap_to=None) -> tuple[float, float]:
        """The largest gap between pieces 9 to 14 of the first reply; a swap (if any) lands at the ninth."""
        streams = [server.stream(messages) for messages in prompts]
        stamps, swap_seconds = [], 0.0
        for n, _ in enumerate(streams[0]):
            stamps.append(time.perf_counter())
            if n == 8 and swap_to is not None:
                swap_seconds = server.swap(swap_to)
        for stream in streams:
            list(stream)
        return max(b - a for a, b in zip(stamps[8:13], stamps[9:14])), swap_seconds

    blocks, calls = [], []
    for run in range(args.runs):
        plain, _ = largest_gap()
        swapped, seconds = largest_gap(versions[(run + 1) % 2])
        blocks.append(swapped - plain)
        calls.append(seconds)
    runtime.close()
    return {"block": max(0.0, median(blocks)), "swap_call": median(calls), "batch": server.decoder.largest_batch}


def round_seconds(url: str, client: Client, tokenizer, texts: list[str]) -> float:
    """Cast 8 votes (alternating like / dislike) and wait for the round they start; its seconds."""
    before = client.predict(api_name="/status")["loop"]["rounds"]
    for n in range(8):
        client.reset_session()
        history, _ = client.predict(texts[n % len(texts)] + f" (vote {n})", api_name="/chat")
        client.predict(len(history) - 1, "like" if n % 2 == 0 else "dislike", api_name="/vote")
    while True:
        loop = client.predict(api_name="/status")["loop"]
        if loop["rounds"] > before and loop["state"] != "training" or loop["last_error"]:
            if loop["last_error"]:
                raise RuntimeError(loop["last_error"])
            return loop["last_round_seconds"]
        time.sleep(2)


def round_figures(work: Path, args, tokenizer) -> dict:
    env = {"MIN_VOTES": "8", "CHAT_MAX_NEW_TOKENS": str(args.tokens), "ADMIN_TOKEN": ADMIN_TOKEN}
    process, url = start_app(work / "round-state", env)
    texts = messages(4)
    try:
        client = Client(url, verbose=False)
        idle = round_seconds(url, client, tokenizer, texts)
        stop, replies = threading.Event(), []

        def chatter(n: int) -> None:
            visitor = Visitor(url, tokenizer)
            while not stop.is_set():
                replies.append(visitor.reply(texts[n]))

        chatters = [threading.Thread(target=chatter, args=(n,)) for n in range(4)]
        for thread in chatters:
            thread.start()
        time.sleep(10)
        busy = round_seconds(url, client, tokenizer, texts)
        stop.set()
        for thread in chatters:
            thread.join()
        return {"idle": idle, "busy": busy, "chat_replies": len(replies),
                "chat_tps": statistics.mean(r["tokens"] / (r["ended"] - r["sent"]) for r in replies)}
    finally:
        process.terminate()
        process.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--visitors", type=int, default=8)
    parser.add_argument("--before", default=BEFORE, help="revision of today's app (one reply at a time)")
    parser.add_argument("--no-round", action="store_true", help="skip the round under chat (about 15 minutes)")
    args = parser.parse_args()
    from transformers import AutoTokenizer

    from trainer.model.base import resolve_source

    tokenizer = AutoTokenizer.from_pretrained(resolve_source(AppSettings.from_env().model))
    work = Path(tempfile.mkdtemp(prefix="bench-visitors-"))
    before_root = worktree(args.before, work)
    try:
        before = chat_figures(before_root, work / "before", args, tokenizer, tabs=False)
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(before_root)], check=False)
    ours = chat_figures(ROOT, work / "ours", args, tokenizer, tabs=True)
    swap = swap_block(args)
    rounds = None if args.no_round else round_figures(work, args, tokenizer)

    n = args.visitors
    rows = [
        (f"aggregate tokens/s, {n} visitors at once", f"{ours['crowd_tps']:.1f}",
         f"{before['crowd_tps']:.1f} (today's app)", f"{ours['crowd_tps'] / before['crowd_tps']:.2f}x", ">= 4x"),
        (f"p95 time to first token, {n} visitors at once", f"{ours['crowd_p95_ttft'] * 1e3:.0f} ms",
         f"{ours['alone_ttft'] * 1e3:.0f} ms (one visitor alone, idle app)",
         f"{ours['crowd_p95_ttft'] / ours['alone_ttft']:.2f}x", "<= 3x"),
        ("  the same in today's app", f"{before['crowd_p95_ttft'] * 1e3:.0f} ms",
         f"{before['alone_ttft'] * 1e3:.0f} ms", f"{before['crowd_p95_ttft'] / before['alone_ttft']:.1f}x", ""),
        ("tokens/s of a single visitor alone", f"{ours['alone_tps']:.1f}", f"{before['alone_tps']:.1f} (today's app)",
         f"{ours['alone_tps'] / before['alone_tps']:.2f}x", ">= 0.95x"),
        (f"{FEW} visitors at once, all replies done", f"{ours['few_wall_s']:.2f} s",
         f"{ours['few_alone_s']:.2f} s (one of their replies, alone)",
         f"{ours['few_wall_s'] / ours['few_alone_s']:.2f}x", "<= 2x"),
        (f"longest chat block at a swap, {swap['batch']} replies in flight", f"{swap['block'] * 1e3:.1f} ms",
         "reply without a swap", f"(swap call {swap['swap_call'] * 1e3:.3f} ms)", "<= 5 ms"),
        (f"aggregate tokens/s, {n} at once, 10 tabs open", f"{ours['tabs_tps']:.1f}",
         f"{ours['crowd_tps']:.1f} (no tab)", f"{ours['tabs_tps'] / ours['crowd_tps']:.2f}x", "~1x"),
        (f"peak RSS after {n} at once", f"{ours['peak_rss']:.0f} MiB", f"{before['peak_rss']:.0f} MiB (today's app)",
         f"{ours['peak_rss'] / before['peak_rss']:.2f}x", ""),
    ]
    if rounds is not None:
        rows.append(("round of 8 votes under 4 chatting visitors", f"{rounds['busy']:.0f} s",
                     f"{rounds['idle']:.0f} s (chat idle)", f"{rounds['busy'] / rounds['idle']:.2f}x", "<= 2x"))
    body = table(("figure", "ours", "plain alternative", "ratio", "goal"), rows)
    body += (f"\n\n{args.tokens}-token greedy replies to the persona's example papers (ours serves bf16 copies "
             "where the CPU has native bf16, today's app fp32, so a few replies differ; tokens are counted per reply); "
             f"medians of {args.runs} runs; ours with the default CHAT_CONCURRENCY "
             f"({AppSettings.from_env().chat.concurrency}). Today's app is revision {args.before}, which decodes one "
             "reply at a time (`queue(default_concurrency_limit=1)`). Times to first token are the visitor's, "
             "through Gradio's queue and server-sent events. Tabs: ten polling the status line every 2 s and the "
             f"dashboard every 5 s over HTTP ({ours['tab_calls']} calls).")
    if rounds is not None:
        body += (f" Round: MIN_VOTES=8, gate on; while it ran, 4 visitors chatting without pause got "
                 f"{rounds['chat_replies']} replies at {rounds['chat_tps']:.1f} tokens/s each.")
    publish("visitors", "Many visitors at once: batched serving vs one reply at a time",
            "python bench/visitors.py " + " ".join(sys.argv[1:]), body)


if __name__ == "__main__":
    main()
