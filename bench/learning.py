"""Does the bot learn its voters' taste? Simulated voters (bench/voters.py) vote through the real app.

Every voter judges the replies of every version that serves, with 95% intervals.

Run:  .venv/bin/python bench/learning.py [--voter numbers] [--rounds 3] [--votes 24] [--tokens 128]
                                         [--fresh 48] [--samples 2] [--concurrency 8] [--name NAME]
                                         [--app-root TREE]   (a `git worktree` of an earlier revision)
                                         [--flood 50]   (a script's sessions from one address, voting against)
      .venv/bin/python bench/learning.py --from-dump RUN.json   (the tables of a run again, one stopped early too)

Starts `app.py` as a visitor finds it (default settings, but MIN_VOTES=--votes, CHAT_MAX_NEW_TOKENS=--tokens
and CHAT_CONCURRENCY=--concurrency) on a fresh DATA_DIR, and talks to it over HTTP with gradio_client only,
--concurrency visitors at once (the app decodes their replies together in one batch):

    measure   the serving version answers --fresh papers no round ever sees (bench/papers.py FRESH),
              --samples times each, every reply the first message of a new chat, sampled as the app
              samples; every voter judges every reply (no vote is cast)
    vote      --votes replies to training papers (bench/papers.py TRAIN, the next slice each round,
              wrapping around) get --voter's thumbs through /vote, each from the visitor that asked
              for it; `crowd` has the voters of bench/voters.py CROWD take turns, reply by reply;
              MIN_VOTES makes the app start a round by itself
              with --picks, each is a comparison instead (/compare: two sampled replies of the serving
              version) and the voter's pick (/pick): the reply it likes if it likes one; else, or if it
              likes both, the one passing more of its checks; "neither" when that ties and it likes
              neither, A when it likes both alike. A loss that reads pairs (--env LOSS=ipo) counts picks of a
              better reply toward MIN_VOTES; kto reads a pick as two rows (liked and disliked; "neither": two
              disliked), so MIN_VOTES then wants twice --votes (--env MIN_VOTES=48)
    wait      until the round ends (if the app starts none within a minute, ask /train_now; if that
              is refused, the round stalled)

Every visitor of the pool has an address of its own (X-Forwarded-For, as a Space's proxy sets it), so the
fans count as different people under the app's voter caps. With --flood N, each round also gets N votes
from one address (a script opening a session per reply) against the fans' taste: a dislike where the
round's fan would like the reply, a like where it would not. They are cast first, oldest-first order in
their favour, with the trainer paused until the fans have voted too; the rounds table says how many of them
the round took (its largest address share) and how many wait over the caps.

The starting version is measured twice, "start" and "start (again)", before any vote: how far two
measurements of one version land apart is the noise every later change is read against. Then vote,
wait and measure, --rounds times.

The tables (section --name of BENCHMARKS.md; learning-VOTER-TOKENS by default):

    per voter  a row per measurement: the version serving; the round's votes (up / down, by --voter)
               and what became of its version (served, rejected by the gate, failed, no round); the
               voter's like-rate and mean score (share of its checks passed), each with its 95%
               interval; the like-rate's change from "start" with the 95% interval of that change,
               paired by paper; the share of finished replies; mean words; the KL to the base of the
               round's version (from its meta.json)
    summary    a row per voter: whether it voted, its like-rate at "start" and "start (again)" and
               whether they agree (the interval of their difference holds 0), its like-rate at the
               last measurement and the change from "start"
    replies    what no voter decides: finished replies, replies that hit the token cap, mean words
               and distinct-2 (with its ratio to "start")

Intervals bootstrap over papers (bench/stats.py): the replies to one paper are correlated, so each
paper counts once, by its mean over its samples. A reply "hit the cap" when it ends no sentence and
has at least CAPPED_WORDS_PER_TOKEN x --tokens words. Every reply and vote goes to --dump as JSON.
"""

from __future__ import annotations

import argparse
import ast
import json
import queue
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gradio_client import Client  # noqa: E402

from bench.app_process import reply_text, start_app  # noqa: E402
from bench.papers import FRESH, TRAIN  # noqa: E402
from bench.report import publish, table  # noqa: E402
from bench.stats import Estimate, bootstrap, paired_difference, paper_means  # noqa: E402
from bench.voter import prompt_of  # noqa: E402
from bench.voters import CROWD, VOTERS, Judgement, judge_all  # noqa: E402
from trainer.gate.rubric import finished, words  # noqa: E402
from trainer.gate.rule import distinct_n  # noqa: E402

ADMIN_TOKEN = "bench-learning"
# Replies cut at the 128-token cap ran 96-99 words (BENCHMARKS.md, learning-before): about 0.75 words a
# token. An unfinished reply of at least 0.6 words a token is that long because it hit the cap.
CAPPED_WORDS_PER_TOKEN = 0.6
# Documentation ranges (RFC 5737): a fan per pool visitor, and the flood's one address.
FAN_ADDRESSES = [f"198.51.100.{n}" for n in range(1, 255)]
FLOOD_ADDRESS = "203.0.113.7"

Item = TypeVar("Item")
Result = TypeVar("Result")


@dataclass
class Reply:
    """One sampled reply to a fresh paper, as every voter judged it."""

    title: str
    sample: int
    text: str
    judgements: dict[str, Judgement]


@dataclass
class Measurement:
    """The replies of the version serving at one point of the run ("start", "round 2", ...)."""

    label: str
    serving: str
    seconds: float
    replies: list[Reply]


@dataclass
class Vote:
    """One thumb cast through /vote, by `voter`, on a reply to a training paper; `note` is the app's answer."""

    title: str
    voter: str
    text: str
    liked: bool
    note: str


@dataclass
class RoundResult:
    """One round's votes and what became of the version it trained."""

    number: int
    votes: list[Vote]
    seconds: float
    version: str | None
    outcome: str  # served, rejected by the gate, failed: ..., no round: ...
    rejection: str | None
    kl: float | None
    flood: int = 0  # votes cast by the flood this round (--flood)
    voters: int | None = None  # the round's meta.json: distinct voters of its new votes
    largest_address_share: float | None = None  # and the largest share of them from one address
    deferred: int | None = None  # waiting votes over a voter or address cap, left for later rounds

    @property
    def up(self) -> int:
        return sum(v.liked for v in self.votes)

    @property
    def down(self) -> int:
        return len(self.votes) - self.up


class Visitors:
    """--concurrency gradio_client visitors, one per worker thread, so their replies are in flight together.

    A task borrows an idle visitor for all its calls, so a vote goes out through the session that got the reply.
    """

    def __init__(self, url: str, count: int, addresses: list[str] | None = None):
        self.idle: queue.Queue[Client] = queue.Queue()
        for n in range(count):
            headers = {"X-Forwarded-For": addresses[n % len(addresses)]} if addresses else None
            self.idle.put(Client(url, verbose=False, headers=headers))
        self.pool = ThreadPoolExecutor(count)
        self.count = count

    def map(self, task: Callable[[Client, Item], Result], items: list[Item], label: str) -> list[Result]:
        done, lock, started = 0, threading.Lock(), time.time()

        def run(item: Item) -> Result:
            nonlocal done
            client = self.idle.get()
            try:
                result = task(client, item)
            finally:
                self.idle.put(client)
            with lock:
                done += 1
                if done % (2 * self.count) == 0 or done == len(items):
                    print(f"  {label}: {done}/{len(items)} replies, {time.time() - started:.0f} s", flush=True)
            return result

        return list(self.pool.map(run, items))

    def close(self) -> None:
        self.pool.shutdown()


def start_learning_app(data_dir: Path, args: argparse.Namespace, extra_env: dict[str, str]):
    return start_app(data_dir, {"MIN_VOTES": str(args.votes), "CHAT_MAX_NEW_TOKENS": str(args.tokens),
                                "CHAT_CONCURRENCY": str(args.concurrency), "ADMIN_TOKEN": ADMIN_TOKEN, **extra_env},
                     root=args.app_root)


def ask(client: Client, title: str, abstract: str) -> tuple[str, int]:
    """A new chat's first reply to the paper, and its row in the chat (for a vote)."""
    client.reset_session()
    history, _ = client.predict(prompt_of(title, abstract), api_name="/chat")
    return reply_text(history), len(history) - 1


def measure(visitors: Visitors, label: str, serving: str, papers: list[tuple[str, str]], samples: int) -> Measurement:
    """Every paper answered `samples` times by the serving version, each reply judged by every voter."""
    def one(client: Client, job: tuple[int, tuple[str, str]]) -> Reply:
        sample, (title, abstract) = job
        text, _ = ask(client, title, abstract)
        return Reply(title, sample, text, judge_all(text, title, abstract))

    started = time.time()
    jobs = [(sample, paper) for sample in range(samples) for paper in papers]
    replies = visitors.map(one, jobs, label)
    return Measurement(label, serving, time.time() - started, replies)


def cast_votes(visitors: Visitors, papers: list[tuple[str, str]], voters: list[str],
               against: bool = False) -> list[Vote]:
    """A reply to each paper, voted on by the paper's voter right after, from the same session (`against`: the
    opposite thumb, as the flood votes)."""
    def one(client: Client, job: tuple[str, tuple[str, str]]) -> Vote:
        voter, (title, abstract) = job
        text, row = ask(client, title, abstract)
        liked = VOTERS[voter](text, title, abstract).liked != against
        note = client.predict(row, "like" if liked else "dislike", api_name="/vote")
        return Vote(title, f"against {voter}" if against else voter, text, liked, note)

    return visitors.map(one, list(zip(voters, papers, strict=True)), "flood" if against else "votes")


def choose(first: Judgement, second: Judgement) -> str:
    """A voter's pick between two replies: a / b / neither (bench/learning.py's doc)."""
    rank_a, rank_b = (first.liked, first.score), (second.liked, second.score)
    if rank_a != rank_b:
        return "a" if rank_a > rank_b else "b"
    return "a" if first.liked else "neither"


def cast_picks(visitors: Visitors, papers: list[tuple[str, str]], voters: list[str]) -> list[Vote]:
    """A comparison of two replies to each paper, picked by the paper's voter right after, from the same session.
    Recorded as a Vote on the picked reply (liked: a reply was picked; "neither": not liked, reply A's text)."""
    def one(client: Client, job: tuple[str, tuple[str, str]]) -> Vote:
        voter, (title, abstract) = job
        client.reset_session()
        a, b, _ = client.predict(prompt_of(title, abstract), api_name="/compare")
        choice = choose(VOTERS[voter](a, title, abstract), VOTERS[voter](b, title, abstract))
        note = client.predict(choice, api_name="/pick")
        return Vote(title, voter, b if choice == "b" else a, choice != "neither", f"{choice}: {note}")

    return visitors.map(one, list(zip(voters, papers, strict=True)), "picks")


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


def round_result(number: int, votes: list[Vote], status: dict, seconds: float, data_dir: Path,
                 flood: int = 0) -> RoundResult:
    """What became of a round, from the status once it ended and its version's meta.json."""
    loop = status["loop"]
    meta = version_meta(data_dir, loop["last_version"] or "")
    candidate = (meta.get("gate") or {}).get("candidate") or {}
    if status.get("stalled"):
        outcome = f"no round: {status['stalled']}"
    elif loop["last_error"]:
        outcome = f"failed: {loop['last_error']}"
    else:
        outcome = "rejected by the gate" if loop["last_rejection"] else "served"
    return RoundResult(number, votes, seconds, loop["last_version"], outcome, loop["last_rejection"],
                       candidate.get("kl"), flood, meta.get("voters"), meta.get("largest_address_share"),
                       meta.get("deferred_votes"))


# -- figures of a measurement -----------------------------------------------------------------------------

def liked_by_paper(measurement: Measurement, voter: str) -> dict[str, float]:
    return paper_means((r.title, r.judgements[voter].liked) for r in measurement.replies)


def score_by_paper(measurement: Measurement, voter: str) -> dict[str, float]:
    return paper_means((r.title, r.judgements[voter].score) for r in measurement.replies)


def share(measurement: Measurement, test: Callable[[str], bool]) -> float:
    return sum(test(r.text) for r in measurement.replies) / len(measurement.replies)


def mean_words(measurement: Measurement) -> float:
    return sum(len(words(r.text)) for r in measurement.replies) / len(measurement.replies)


def like_rate(measurement: Measurement, voter: str) -> Estimate:
    return bootstrap(list(liked_by_paper(measurement, voter).values()))


def score(measurement: Measurement, voter: str) -> Estimate:
    return bootstrap(list(score_by_paper(measurement, voter).values()))


def percent(e: Estimate) -> str:
    return f"{e.mean:.0%} [{e.lo * 100:.0f}, {e.hi * 100:.0f}]"


def points(e: Estimate) -> str:
    return f"{e.mean * 100:+.0f} [{e.lo * 100:+.0f}, {e.hi * 100:+.0f}] pts"


def fraction(e: Estimate) -> str:
    return f"{e.mean:.2f} [{e.lo:.2f}, {e.hi:.2f}]"


def agreement(first: Measurement, again: Measurement, voter: str) -> tuple[Estimate, bool]:
    """The like-rate difference between two measurements of one version, and whether its interval holds 0."""
    difference = paired_difference(liked_by_paper(first, voter), liked_by_paper(again, voter))
    return difference, difference.contains(0.0)


# -- tables ----------------------------------------------------------------------------------------------

def voter_table(voter: str, measurements: list[Measurement], rounds: dict[str, RoundResult]) -> str:
    start = liked_by_paper(measurements[0], voter)
    rows = []
    for m in measurements:
        result = rounds.get(m.label)
        change = "" if m is measurements[0] else points(paired_difference(start, liked_by_paper(m, voter)))
        rows.append((m.label, m.serving, f"{result.up} / {result.down}" if result else "",
                     f"{result.version}, {result.outcome}" if result else "", percent(like_rate(m, voter)), change,
                     fraction(score(m, voter)), f"{share(m, finished):.0%}", f"{mean_words(m):.0f}",
                     "" if result is None or result.kl is None else f"{result.kl:.3f}"))
    header = ("measured", "serving", "votes up / down", "round's version", "like-rate [95%]", "vs start [95%]",
              "score [95%]", "finished", "words", "KL to base")
    return table(header, rows)


def summary_table(measurements: list[Measurement], voting: set[str]) -> str:
    first, again, last = measurements[0], measurements[1], measurements[-1]
    rows = []
    for voter in VOTERS:
        difference, agree = agreement(first, again, voter)
        start = liked_by_paper(first, voter)
        rows.append((voter, "yes" if voter in voting else "", percent(like_rate(first, voter)),
                     percent(like_rate(again, voter)), f"{'yes' if agree else 'NO'} ({points(difference)})",
                     f"{last.label}: {percent(like_rate(last, voter))}",
                     points(paired_difference(start, liked_by_paper(last, voter)))))
    header = ("voter", "voted", "start", "start (again)", "start agrees with itself", "last", "last vs start")
    return table(header, rows)


def rounds_table(rounds: list[RoundResult]) -> str:
    """Who the rounds' votes came from: the fans' thumbs, the flood's, and what the voter caps let in."""
    def share(value: float | None) -> str:
        return "" if value is None else f"{value:.0%}"

    rows = [(f"round {r.number}", f"{r.up} / {r.down}", r.flood, f"{r.version}, {r.outcome}",
             "" if r.voters is None else r.voters, share(r.largest_address_share),
             "" if r.deferred is None else r.deferred) for r in rounds]
    header = ("round", "votes up / down (fans and flood)", "of them the flood's", "round's version",
              "voters trained on", "largest address share", "left waiting over a cap")
    return table(header, rows)


def replies_table(measurements: list[Measurement], tokens: int) -> str:
    def capped(text: str) -> bool:
        return not finished(text) and len(words(text)) >= CAPPED_WORDS_PER_TOKEN * tokens

    start = distinct_n([r.text for r in measurements[0].replies])
    rows = []
    for m in measurements:
        distinct = distinct_n([r.text for r in m.replies])
        rows.append((m.label, m.serving, f"{share(m, finished):.0%}", f"{share(m, capped):.0%}",
                     f"{mean_words(m):.0f}", f"{distinct:.2f} ({distinct / max(start, 1e-9):.2f}x)",
                     f"{m.seconds:.0f} s"))
    header = ("measured", "serving", "finished", "hit the cap", "words", "distinct-2 (vs start)", "measured in")
    return table(header, rows)


# -- the run ---------------------------------------------------------------------------------------------

def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--voter", default="numbers", choices=[*VOTERS, "crowd"],
                        help="who votes in the rounds (crowd: the voters of bench/voters.py CROWD take turns)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--votes", type=int, default=24, help="votes per round (MIN_VOTES)")
    parser.add_argument("--tokens", type=int, default=128, help="reply length cap (CHAT_MAX_NEW_TOKENS)")
    parser.add_argument("--fresh", type=int, default=48, help=f"fresh papers per measurement (at most {len(FRESH)})")
    parser.add_argument("--samples", type=int, default=2, help="sampled replies per fresh paper")
    parser.add_argument("--concurrency", type=int, default=8, help="visitors at once (CHAT_CONCURRENCY)")
    parser.add_argument("--name", help="BENCHMARKS.md section (default learning-VOTER-TOKENS)")
    parser.add_argument("--dump", type=Path, default=Path(tempfile.gettempdir()) / "bench-learning.json")
    parser.add_argument("--env", action="append", default=[], help="extra app setting NAME=VALUE")
    parser.add_argument("--flood", type=int, default=0,
                        help="votes a round gets from one address against the fans' taste (a session per vote)")
    parser.add_argument("--picks", action="store_true",
                        help="each vote is a pick between two replies (/compare, /pick); see the doc for MIN_VOTES")
    parser.add_argument("--app-root", type=Path, default=ROOT,
                        help="source tree whose app.py runs (a `git worktree` of an earlier revision: a before figure)")
    args = parser.parse_args()
    if not 1 <= args.fresh <= len(FRESH):
        parser.error(f"--fresh must be 1 to {len(FRESH)}, got {args.fresh}")
    if args.rounds < 0:
        parser.error(f"--rounds must be 0 or more, got {args.rounds}")
    if args.flood < 0:
        parser.error(f"--flood must be 0 or more, got {args.flood}")
    for flag in ("votes", "tokens", "samples", "concurrency"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag} must be 1 or more, got {getattr(args, flag)}")
    args.name = args.name or f"learning-{args.voter}-{args.tokens}"
    return args


def print_measurement(m: Measurement) -> None:
    likes = ", ".join(f"{voter} {percent(like_rate(m, voter))}" for voter in VOTERS)
    print(f"{m.label} ({m.serving}, {len(m.replies)} replies in {m.seconds:.0f} s): like-rate {likes}", flush=True)


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--from-dump":
        report_from_dump(Path(sys.argv[2]))
        return
    args = parse_args()
    extra = dict(item.split("=", 1) for item in args.env)
    voters = list(CROWD) if args.voter == "crowd" else [args.voter]
    fresh = FRESH[:args.fresh]

    work = Path(tempfile.mkdtemp(prefix="bench-learning-"))
    process, url = start_learning_app(work / "state", args, extra)
    admin = Client(url, verbose=False)
    visitors = Visitors(url, args.concurrency, FAN_ADDRESSES)
    flooders = Visitors(url, args.concurrency, [FLOOD_ADDRESS]) if args.flood else None
    measurements: list[Measurement] = []
    rounds: list[RoundResult] = []

    def serving() -> str:
        return admin.predict(api_name="/status")["serving"]

    try:
        for label in ("start", "start (again)"):
            measurements.append(measure(visitors, label, serving(), fresh, args.samples))
            print_measurement(measurements[-1])
        for voter in VOTERS:
            difference, agree = agreement(measurements[0], measurements[1], voter)
            print(f"start vs start (again), {voter}: {points(difference)}: "
                  f"{'agree' if agree else 'DISAGREE'}", flush=True)
        for number in range(1, args.rounds + 1):
            before = round_marks(admin.predict(api_name="/status")["loop"])
            first = (number - 1) * args.votes
            papers = [TRAIN[(first + i) % len(TRAIN)] for i in range(args.votes)]
            who = [voters[(first + i) % len(voters)] for i in range(args.votes)]
            flood: list[Vote] = []
            if flooders is not None:  # the trainer waits until the fans have voted too
                admin.predict(ADMIN_TOKEN, api_name="/pause")
                flood = cast_votes(flooders, [papers[i % len(papers)] for i in range(args.flood)],
                                   [who[i % len(who)] for i in range(args.flood)], against=True)
            votes = cast_picks(visitors, papers, who) if args.picks else cast_votes(visitors, papers, who)
            if flooders is not None:
                admin.predict(ADMIN_TOKEN, api_name="/resume")
            started = time.time()
            status = wait_for_round(admin, before)
            rounds.append(round_result(number, flood + votes, status, time.time() - started, work / "state",
                                       flood=len(flood)))
            result = rounds[-1]
            print(f"round {number}: {result.up} up / {result.down} down ({result.flood} of them the flood's) -> "
                  f"{result.version}, {result.outcome}{f' ({result.rejection})' if result.rejection else ''}; "
                  f"voters {result.voters}, largest address share {result.largest_address_share}, "
                  f"{result.deferred} left waiting over a cap", flush=True)
            measurements.append(measure(visitors, f"round {number}", status["serving"], fresh, args.samples))
            print_measurement(measurements[-1])
    finally:
        args.dump.write_text(json.dumps({"settings": {k: str(v) for k, v in vars(args).items()},
                                         "measurements": [asdict(m) for m in measurements],
                                         "rounds": [asdict(r) for r in rounds]}, indent=1))
        visitors.close()
        if flooders is not None:
            flooders.close()
        process.terminate()
        process.wait(30)

    report(args, measurements, rounds)


def run_command(args: argparse.Namespace) -> str:
    """The command line that runs `args` (also for a run re-rendered from its dump)."""
    flags = [f"--{name} {getattr(args, name)}" for name in ("voter", "rounds", "votes", "tokens", "fresh", "samples",
                                                            "concurrency", "name")]
    flags += [f"--flood {args.flood}"] if int(getattr(args, "flood", 0) or 0) else []
    flags += ["--picks"] if str(getattr(args, "picks", False)) == "True" else []  # a dump keeps "True" / "False"
    env = args.env if isinstance(args.env, list) else ast.literal_eval(args.env)  # a dump keeps the repr
    root = Path(args.app_root)
    tree = [] if root == ROOT else [f"--app-root {root} (a worktree of {git_revision(root)})"]
    return " ".join(["python bench/learning.py", *flags, *(f"--env {item}" for item in env), *tree])


def git_revision(tree: Path) -> str:
    """The commit a source tree has checked out (short form), or "?" where git cannot tell."""
    try:
        return subprocess.run(["git", "-C", str(tree), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


def report(args: argparse.Namespace, measurements: list[Measurement], rounds: list[RoundResult],
           note: str = "") -> None:
    """The tables of a run into BENCHMARKS.md (section --name)."""
    command = run_command(args)
    voters = list(CROWD) if args.voter == "crowd" else [args.voter]
    by_label = {f"round {r.number}": r for r in rounds}
    sections = [f"### {voter}{' (voted)' if voter in voters else ''}\n\n{voter_table(voter, measurements, by_label)}"
                for voter in VOTERS]
    body = ("\n\n".join([summary_table(measurements, set(voters)), *sections,
                         "### rounds: who voted\n\n" + rounds_table(rounds),
                         "### replies\n\n" + replies_table(measurements, args.tokens)])
            + f"\n\n{args.fresh} fresh papers x {args.samples} samples per measurement, {args.votes} "
              + ("picks per round (up: a reply picked, down: neither)" if str(getattr(args, "picks", False)) == "True"
                 else "votes per round")
              + f" by {args.voter}, {args.tokens}-token replies, {args.concurrency} visitors at once. Intervals: 95%, "
              "bootstrap over papers (bench/stats.py). Goal: each voting voter's like-rate +30 pts within 3 rounds "
              "with the interval of the change at least +15 while start agrees with itself, finished >= 90%, "
              "words within 1.3x of the start, KL within the gate's cap." + note)
    publish(args.name, f"Learning: the simulated voters' like-rates, round by round ({args.name})", command, body)


def report_from_dump(path: Path) -> None:
    """Re-render the tables of a run from its --dump (one stopped early included)."""
    dump = json.loads(path.read_text())
    settings = dump["settings"]
    args = argparse.Namespace(**{**settings, **{k: int(settings[k]) for k in
                                                ("rounds", "votes", "tokens", "fresh", "samples", "concurrency")}})
    measurements = [Measurement(m["label"], m["serving"], m["seconds"],
                                [Reply(r["title"], r["sample"], r["text"],
                                       {name: Judgement(**j) for name, j in r["judgements"].items()})
                                 for r in m["replies"]]) for m in dump["measurements"]]
    rounds = [RoundResult(**{**r, "votes": [Vote(**v) for v in r["votes"]]}) for r in dump["rounds"]]
    done = len(rounds)
    note = "" if done >= args.rounds else f" Stopped after {done} of {args.rounds} rounds (tables from the --dump)."
    measured = {m.label for m in measurements}
    for r in rounds:
        if f"round {r.number}" not in measured:  # stopped before the round's measurement
            note += (f" Round {r.number}: {r.up} up / {r.down} down -> {r.version}, {r.outcome}"
                     f"{f' ({r.rejection})' if r.rejection else ''}; not measured.")
    report(args, measurements, rounds, note)

if __name__ == "__main__":
    main()
