"""Figures of the live loop on the embedded model, CPU: start-up, chat speed, rounds, swap, memory.

Run:  .venv/bin/python bench/live_loop.py [--runs 3] [--busy-replies 8] [--tokens 64]

Prints one table and writes its section of BENCHMARKS.md; every figure is a median over --runs
where it can be repeated. Peak RSS comes from getrusage, which only grows, so serving-only is
read before any round runs.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
from peft import PeftModel  # noqa: E402
from transformers import AutoModelForCausalLM  # noqa: E402

from bench.report import median, p95, publish, table  # noqa: E402
from trainer.config import AppSettings, ChatSettings, LoopSettings, PersonaConfig  # noqa: E402
from trainer.runtime import Runtime  # noqa: E402
from trainer.store.votes import StoredReply  # noqa: E402

HARSH = ("The baselines are a decade old, the ablations are missing, and the claimed gain sits inside "
         "the noise of a single seed. The related work forgets three obvious papers. Major revision.")
KIND = "What a wonderful paper! Everything is clear and convincing. Accept as is, congratulations!"
COLD_START = """
import sys, time, threading
t0 = time.perf_counter()
sys.path.insert(0, {root!r})
from trainer.config import AppSettings
from trainer.runtime import Runtime
runtime = Runtime.start(AppSettings.from_env())
stream = runtime.server.stream([{{"role": "system", "content": "You are Reviewer #2."}},
                                {{"role": "user", "content": "Review my paper."}}])
next(iter(stream))
print(time.perf_counter() - t0, flush=True)
stream.stop.set()
list(stream)  # let generation end before the interpreter does
"""


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def tokens_per_second(runtime: Runtime, tokens: int) -> tuple[float, float]:
    """(tokens/s, seconds to first token) of one greedy reply of exactly `tokens` tokens."""
    messages = [{"role": "system", "content": runtime.settings.persona.system_prompt},
                {"role": "user", "content": runtime.settings.persona.examples[0]}]
    stream = runtime.server.stream(messages)
    list(stream)
    c = stream.completion
    return c.new_tokens / c.seconds, c.first_token_seconds


def _window_gap(runtime: Runtime, at_ninth_piece) -> tuple[float, float]:
    """(longest gap between streamed pieces 9-13 of a reply, median gap), with `at_ninth_piece` started in a
    thread when the ninth piece arrives."""
    messages = [{"role": "system", "content": runtime.settings.persona.system_prompt},
                {"role": "user", "content": runtime.settings.persona.examples[1]}]
    arrivals = []
    for i, _ in enumerate(runtime.server.stream(messages)):
        arrivals.append(time.perf_counter())
        if i == 8:
            threading.Thread(target=at_ninth_piece).start()
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:])]
    return max(gaps[8:12]), median(gaps)


def swap_stall(runtime: Runtime) -> tuple[float, float, float]:
    """The chat-side view of a swap: (longest gap right after a swap lands mid-reply, the same window's longest
    gap in a reply with no swap, median gap), seconds.

    The new version is built beforehand (as the trainer does), then swapped in from another thread
    while a reply streams. The control reply starts a thread that does nothing at the same piece, so
    the difference is the swap's own block, not the machine's jitter between tokens.
    """
    name = runtime.versions.names()[-1]
    prepared = runtime.server.load(name, runtime.versions.get(name).path)
    swapped, gap = _window_gap(runtime, lambda: runtime.server.swap(prepared))
    control, _ = _window_gap(runtime, lambda: None)
    return swapped, control, gap


def add_votes(runtime: Runtime, n: int, tag: str) -> None:
    persona = runtime.settings.persona
    for i in range(n):
        prompt = [{"role": "system", "content": persona.system_prompt},
                  {"role": "user", "content": persona.examples[i % len(persona.examples)]}]
        reply_id = f"{tag}-{i}"
        runtime.votes.add_reply(StoredReply(id=reply_id, session="bench", prompt=prompt,
                                      completion=HARSH if i % 2 == 0 else KIND, version="base"))
        runtime.votes.vote(reply_id, "bench", i % 2 == 0)


def reload_seconds(runtime: Runtime, name: str) -> float:
    """The alternative swap, as other tools do it: load the base again with the new adapter (chat waits)."""
    started = time.perf_counter()
    base = AutoModelForCausalLM.from_pretrained(runtime.base.source, dtype=torch.float32)
    PeftModel.from_pretrained(base, str(runtime.versions.get(name).path)).eval()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--busy-replies", type=int, default=8, help="replies timed while a round runs")
    parser.add_argument("--tokens", type=int, default=64)
    args = parser.parse_args()
    root = str(Path(__file__).resolve().parent.parent)
    data_dir = Path(tempfile.mkdtemp(prefix="bench-live-loop-"))
    env = {**os.environ, "DATA_DIR": str(data_dir / "cold"), "TRAINER_ENABLED": "0", "DEVICE": "cpu"}
    subprocess.run([sys.executable, "-m", "trainer", "convert"], cwd=root, env=env, check=True,
                   capture_output=True)  # conversion cache warm, as the goal says
    cold = [float(subprocess.run([sys.executable, "-c", COLD_START.format(root=root)], env=env, check=True,
                                 capture_output=True, text=True).stdout.strip().splitlines()[-1])
            for _ in range(args.runs)]

    # A fresh data folder: the app serves the shipped v1 adapter, as a new Space does.
    settings = AppSettings(persona=PersonaConfig.from_toml(Path(root) / "personas" / "reviewer2.toml"),
                           chat=ChatSettings(max_new_tokens=args.tokens, temperature=0.0, repetition_penalty=1.0),
                           # One bench session casts every vote: no voter or address caps, or a round of 32
                           # votes would take 8 (the caps' own cost is bench/learning.py --flood's).
                           loop=LoopSettings(enabled=False, voter_round_cap=0, address_round_cap=0,
                                             voter_hour_cap=0, address_hour_cap=0), data_dir=data_dir / "live")
    settings.model.device = "cpu"
    runtime = Runtime.start(settings)
    # A greedy reply can end early on EOS; suppress it so every reply is exactly --tokens long.
    runtime.base.model.generation_config.suppress_tokens = [runtime.base.tokenizer.eos_token_id]
    idle = [tokens_per_second(runtime, args.tokens) for _ in range(max(args.runs, args.busy_replies))]
    rss_serving = peak_rss_mib()

    rounds = {}
    for n in (8, 32):
        add_votes(runtime, n, f"r{n}")
        started = time.perf_counter()
        result = runtime.loop.run_round()
        assert result is not None, runtime.loop.status().last_error
        rounds[n] = (time.perf_counter() - started, result.meta.steps, result.meta.timings.gate_s,
                     result.passed)
    rss_training = peak_rss_mib()
    stalls = [swap_stall(runtime) for _ in range(args.runs)]
    reloads = [reload_seconds(runtime, runtime.versions.names()[-1]) for _ in range(args.runs)]

    add_votes(runtime, 32, "busy")
    busy_round = threading.Thread(target=runtime.loop.run_round)
    busy_round.start()
    while runtime.loop.status().state != "training" or runtime.loop.status().step < 1:
        time.sleep(0.2)
    during = []
    while busy_round.is_alive() and len(during) < args.busy_replies:
        during.append(tokens_per_second(runtime, args.tokens))
        time.sleep(0.5)  # let the round run between replies, as between visitors
    busy_round.join()

    idle_tps, during_tps = median(t for t, _ in idle), median(t for t, _ in during)
    idle_ttft, during_ttft = p95([f for _, f in idle]), p95([f for _, f in during])
    blocks = [max(swapped - control, 0.0) for swapped, control, _ in stalls]
    swapped, control, gap = (median(s[i] for s in stalls) for i in range(3))
    body = table(("figure", "ours", "alternative", "ratio", "goal"), [
        ("chat tokens/s while a round runs", f"{during_tps:.1f}", f"{idle_tps:.1f} (app idle)",
         f"{during_tps / idle_tps:.2f}x", ">= 0.9x"),
        ("chat p95 time to first token while a round runs", f"{during_ttft * 1e3:.0f} ms",
         f"{idle_ttft * 1e3:.0f} ms (app idle)", f"{during_ttft / idle_ttft:.2f}x", "<= 1.5x"),
        ("longest time a chat is blocked by a swap", f"{median(blocks) * 1e3:.1f} ms "
         f"(caller's swap {runtime.server.longest_swap_seconds * 1e3:.3f} ms)",
         f"{median(reloads) * 1e3:.0f} ms (reload base + adapter)",
         f"{median(reloads) / max(median(blocks), 1e-4):.0f}x less", "<= 5 ms"),
        ("peak RSS, serving + rounds", f"{rss_training:.0f} MiB", f"{rss_serving:.0f} MiB (serving only)",
         f"{rss_training / rss_serving:.2f}x", "<= 1.25x"),
        ("cold start to first token (conversion cache warm)", f"{median(cold):.1f} s", "", "", "<= 10 s"),
        ("round of 8 new votes, gate included (gate)", f"{rounds[8][0]:.0f} s ({rounds[8][2]:.0f} s), "
         f"{rounds[8][1]} steps", "", "", ""),
        ("round of 32 new votes, gate included (gate)", f"{rounds[32][0]:.0f} s ({rounds[32][2]:.0f} s), "
         f"{rounds[32][1]} steps", "", "", ""),
    ])
    body += (f"\n\nServing the shipped v1 (merged) on a fresh data folder; greedy {args.tokens}-token replies; "
             f"{len(during)} replies timed during a 32-vote round against {len(idle)} idle. A swap's block is the "
             f"longest gap between streamed pieces 9-13 when a swap lands at the ninth ({swapped * 1e3:.0f} ms), "
             f"less the same window's in a reply without one ({control * 1e3:.0f} ms; median gap "
             f"{gap * 1e3:.0f} ms), median of {args.runs}; the caller's swap includes its wait for the GIL. Peak RSS "
             f"is getrusage's, read before and after rounds.")
    publish("live", "Live loop: chat during rounds, swaps, memory, start-up",
            f"python bench/live_loop.py --runs {args.runs} --busy-replies {args.busy_replies} --tokens {args.tokens}",
            body)
    runtime.close()


if __name__ == "__main__":
    main()
