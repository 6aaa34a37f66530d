"""Vote to version: from a round's last vote to its version judged (served or refused), with its breakdown.

Run:  .venv/bin/python bench/vote_to_version.py [--runs 2] [--visitors 4]

The app as a Space runs it (default settings: the shipped v1 serving, the gate on, 256-token sampled
replies), in this process with its learning loop on. Each case casts MIN_VOTES votes on the bot's own
sampled replies to seed papers, from voters of 4 votes each; the last vote is cast once the loop has
had its idle time (the serving version's probe replies sampled ahead: Gate.prepare), and the clock
runs from it to the round's verdict. "With chat" keeps --visitors visitors chatting (each asks again
as soon as a reply ends) from just before the last vote to the verdict; their replies give the chat
figures beside the same visitors' with no round running. The denominator is a plain TRL KTOTrainer
script (bench/round_throughput.py) on as many seed rows, for the same steps: training alone.

Writes its section of BENCHMARKS.md; figures are medians over --runs.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.report import median, p95, publish, table  # noqa: E402
from bench.round_throughput import plain_round  # noqa: E402
from trainer.config import AppSettings  # noqa: E402
from trainer.data import conversational  # noqa: E402
from trainer.runtime import Runtime  # noqa: E402
from trainer.store.files import read_preferences  # noqa: E402
from trainer.store.votes import StoredReply  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
VOTES_PER_VOTER = 4  # under VOTER_ROUND_CAP (8): the caps are on, as on a Space


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class RssTimeline:
    """This process's resident memory every 20 ms, for peaks by phase (getrusage's peak only grows)."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, float]] = []  # (time.time(), MiB)
        threading.Thread(target=self._sample, daemon=True).start()

    def _sample(self) -> None:
        page = resource.getpagesize() / 2**20
        while True:
            with open("/proc/self/statm") as statm:
                self.samples.append((time.time(), int(statm.read().split()[1]) * page))
            time.sleep(0.02)

    def peak(self, start: float, end: float) -> float:
        return max((mib for t, mib in list(self.samples) if start <= t <= end), default=0.0)


class Visitors:
    """`count` visitors chatting without pause; each reply's time to first token and tokens/s."""

    def __init__(self, runtime: Runtime, count: int, papers: list[str]):
        self.runtime, self.count, self.papers = runtime, count, papers
        self.stop = threading.Event()
        self.replies: list[tuple[float, float]] = []  # (first token s, tokens/s)
        self.threads = [threading.Thread(target=self._chat, args=(i,), daemon=True) for i in range(count)]

    def _chat(self, index: int) -> None:
        persona, k = self.runtime.settings.persona, index
        while not self.stop.is_set():
            messages = [{"role": "system", "content": persona.system_prompt},
                        {"role": "user", "content": self.papers[k % len(self.papers)]}]
            k += self.count
            stream = self.runtime.server.stream(messages)
            for _ in stream:
                if self.stop.is_set():
                    stream.stop.set()
            stream.wait()
            done = stream.completion
            if done is not None and not done.stopped and done.new_tokens > 1 and done.first_token_seconds:
                self.replies.append((done.first_token_seconds, done.new_tokens / done.seconds))

    def __enter__(self) -> "Visitors":
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join()


def cast_votes(runtime: Runtime, papers: list[str], count: int, tag: str) -> list[tuple[str, str, bool]]:
    """`count` stored replies of the serving version (sampled, in one batch) to seed papers, with the votes to
    cast on them: (reply id, voter, liked)."""
    persona = runtime.settings.persona
    prompts = [[{"role": "system", "content": persona.system_prompt}, {"role": "user", "content": paper}]
               for paper in papers[:count]]
    served = runtime.server.current
    completions = runtime.server.sample([(served, prompt, 7_000 + i) for i, prompt in enumerate(prompts)])
    votes = []
    for i, (prompt, completion) in enumerate(zip(prompts, completions)):
        reply_id, voter = f"{tag}-{i}", f"{tag}-voter-{i // VOTES_PER_VOTER}"
        runtime.votes.add_reply(StoredReply(id=reply_id, session=voter, prompt=prompt, completion=completion.text,
                                      version=completion.version))
        votes.append((reply_id, voter, len(completion.text.split()) < 80 and completion.ended))
    return votes


def vote(runtime: Runtime, reply_id: str, voter: str, liked: bool) -> None:
    runtime.votes.vote(reply_id, voter, liked)
    runtime.chat.on_vote()  # as Chat.vote does: the loop wakes


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.05)


def one_case(runtime: Runtime, papers: list[str], count: int, visitors: int, tag: str, memory: RssTimeline) -> dict:
    """One round of `count` votes, the last cast at an idle, prepared app; its figures."""
    runtime.settings.loop.min_votes = count
    votes = cast_votes(runtime, papers, count, tag)
    for reply_id, voter, liked in votes[:-1]:
        vote(runtime, reply_id, voter, liked)
    draw = len(runtime.versions.names())
    wait_for(lambda: runtime.gate.is_prepared(draw) and runtime.loop.status().state == "idle", 600,
             "the loop never prepared the gate")
    rounds = runtime.loop.status().rounds
    crowd = Visitors(runtime, visitors, papers[count:]) if visitors else None
    if crowd:
        crowd.__enter__()
        time.sleep(2.0)  # the visitors' first replies are under way
    cast = time.time()
    vote(runtime, *votes[-1])
    wait_for(lambda: runtime.loop.status().rounds > rounds or runtime.loop.status().last_error, 1800,
             "the round never ended")
    judged = time.time()
    if crowd:
        crowd.__exit__(None, None, None)
    status = runtime.loop.status()
    if status.last_error:
        raise RuntimeError(status.last_error)
    meta = runtime.versions.get(status.last_version).meta
    timings = meta.timings
    scorings = len(meta.early_stopping.scores) if meta.early_stopping else 0
    # The round's phases, back from its end: the gate ends as the version is judged (a swap follows).
    prepared = judged - timings.gate_s - timings.train_s
    phases = {"before": (cast - 30, cast), "prepare": (prepared - timings.prepare_s, prepared),
              "train": (prepared, prepared + timings.train_s), "gate": (judged - timings.gate_s, judged)}
    rss = {phase: memory.peak(*window) for phase, window in phases.items()}
    return {"votes": count, "seconds": judged - cast, "recorded": timings.vote_to_version_s,
            "prepare": timings.prepare_s, "train": timings.train_s, "gate": timings.gate_s,
            "start": (judged - cast) - timings.total_s, "steps": meta.steps, "rows": meta.rows,
            "scorings": scorings, "passed": meta.gate.passed if meta.gate else None,
            "probes": meta.gate.probe_s or 0.0, "score": meta.gate.score_s or 0.0,
            "looks": meta.gate.looks if meta.gate else 0,
            "auc": meta.gate.candidate.auc if meta.gate else None,
            "pairs": meta.gate.candidate.pair_accuracy if meta.gate else None,
            "chat": list(crowd.replies) if crowd else [], "rss": rss}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--visitors", type=int, default=4)
    parser.add_argument("--counts", type=int, nargs="+", default=[8, 24])
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="bench-vote-to-version-"))
    settings = AppSettings.from_env({"DATA_DIR": str(data_dir), "DEVICE": "cpu"})
    settings.hub.repo = ""  # this disk only
    memory = RssTimeline()
    runtime = Runtime.start(settings)
    seed = read_preferences(settings.gate.seed_file, split="train")
    papers = list(dict.fromkeys(conversational(r, settings.persona.system_prompt)["prompt"][-1]["content"]
                                for r in seed))
    print(f"{len(papers)} papers; serving {runtime.server.current.name}", flush=True)
    rss_serving = peak_rss_mib()
    idle_chat = []
    if args.visitors:
        with Visitors(runtime, args.visitors, papers) as idle_crowd:
            time.sleep(60)
        idle_chat = list(idle_crowd.replies)

    # A first round, so that later ones replay earlier votes, as on a Space that has run a while.
    warm = one_case(runtime, papers, 24, 0, "warm", memory)
    print(f"warm-up round: {warm['seconds']:.0f} s", flush=True)
    cases: dict[tuple[int, bool], list[dict]] = {}
    offset = 24
    for run in range(args.runs):
        for count in args.counts:
            for busy in (False, True) if args.visitors else (False,):
                chunk = papers[offset % len(papers):] + papers[:offset % len(papers)]
                offset += count
                case = one_case(runtime, chunk, count, args.visitors if busy else 0, f"r{run}-{count}-{int(busy)}",
                                memory)
                cases.setdefault((count, busy), []).append(case)
                print(f"{count} votes{' with chat' if busy else ''}: {case['seconds']:.0f} s (prepare "
                      f"{case['prepare']:.0f}, train {case['train']:.0f} with {case['scorings']} scorings, gate "
                      f"{case['gate']:.0f} = probes {case['probes']:.0f} ({case['looks']} looks) + "
                      f"score {case['score']:.0f}, start {case['start']:.1f}), {case['steps']} steps, passed "
                      f"{case['passed']}", flush=True)
    rss_rounds = peak_rss_mib()

    plain = {}
    for count in args.counts:
        steps, rows = cases[(count, False)][0]["steps"], cases[(count, False)][0]["rows"]
        with tempfile.TemporaryDirectory() as scratch:
            plain[count] = plain_round(runtime.base, [conversational(r, settings.persona.system_prompt)
                                                      for r in seed[:rows]], steps, scratch)[0]
        print(f"plain TRL, {rows} rows, {steps} steps: {plain[count]:.0f} s", flush=True)
    runtime.close()

    goals = {8: 60, 24: 120}
    rows = []
    for (count, busy), runs in sorted(cases.items()):
        m = {key: median([r[key] for r in runs]) for key in ("seconds", "prepare", "train", "gate", "start", "probes",
                                                               "score")}
        steps = median([r["steps"] for r in runs])
        verdicts = ", ".join("served" if r["passed"] else "refused" for r in runs)
        who = f"{args.visitors} visitors chatting" if busy else "chat idle"
        rows.append((f"{count} votes, {who}", f"{m['seconds']:.0f} s",
                     f"{m['start']:.1f} / {m['prepare']:.0f} / {m['train']:.0f} / {m['gate']:.0f} "
                     f"({m['probes']:.0f} + {m['score']:.0f})",
                     f"{steps:.0f} ({median([r['scorings'] for r in runs]):.0f})",
                     verdicts + "".join(f" ({r['looks']} looks)" for r in runs if r["looks"] > 1)[:14],
                     f"{plain[count]:.0f} s", f"{m['seconds'] / plain[count]:.2f}x", f"<= {goals.get(count, '?')} s"))
    body = table(("round", "vote to version", "start / prepare / train / gate (probes + score), s",
                  "steps (early-stop scorings)",
                  "verdicts", "plain TRL round, training only", "ratio", "goal"), rows)

    during = [r for runs in (cases.get((c, True), []) for c in args.counts) for case in runs for r in case["chat"]]
    figures = [("peak RSS, serving + rounds", f"{rss_rounds:.0f} MiB", f"{rss_serving:.0f} MiB (serving)",
                f"{rss_rounds / rss_serving:.2f}x", "<= 1.25x")]
    if during and idle_chat:
        idle_tps, during_tps = median([t for _, t in idle_chat]), median([t for _, t in during])
        idle_ttft, during_ttft = p95([f for f, _ in idle_chat]), p95([f for f, _ in during])
        figures[:0] = [(f"chat tokens/s per reply, {args.visitors} visitors", f"{during_tps:.1f}", f"{idle_tps:.1f}",
                        f"{during_tps / idle_tps:.2f}x", ">= 0.9x"),
                       (f"p95 time to first token, {args.visitors} visitors", f"{during_ttft * 1e3:.0f} ms",
                        f"{idle_ttft * 1e3:.0f} ms", f"{during_ttft / idle_ttft:.2f}x", "<= 1.5x")]
    body += "\n\n" + table(("figure", "during rounds", "no round", "ratio", "goal"), figures)
    by_phase = [(f"{count} votes", *(f"{median([r['rss'][phase] for r in runs]):.0f}"
                                     for phase in ("before", "prepare", "train", "gate")))
                for (count, busy), runs in sorted(cases.items()) if not busy]
    body += "\n\nPeak RSS by phase, MiB (sampled every 20 ms; medians; serving alone at start: " \
            f"{rss_serving:.0f} MiB):\n\n" + table(
                ("round", "30 s before the last vote (replies sampled, gate prepared)", "prepare (reference pass)",
                 "train", "gate (probe replies, scoring)"), by_phase)
    body += (f"\n\nDefault settings (shipped v1 serving, gate on, 256-token sampled replies, voter caps on), "
             f"median of {args.runs} per case after a warm-up round of 24 votes ({warm['seconds']:.0f} s), so that "
             f"rounds replay earlier votes. Start: from the last vote to the round's first work (the loop wakes on a "
             f"vote); prepare: rows and the trainer; train: its steps with early stopping's scorings; gate: the "
             f"candidate's probe replies and scores (the serving version's probe replies were sampled while the app "
             f"was idle, unless visitors were chatting).")
    if during:
        body += f" Chat: {len(during)} replies during rounds, {len(idle_chat)} with no round, by the same visitors."

    publish("vote-to-version", "Vote to version: from a round's last vote to its version judged",
            f"python bench/vote_to_version.py --runs {args.runs} --visitors {args.visitors}", body)


if __name__ == "__main__":
    main()
