"""Chat speed: the app through gradio_client vs model.generate; adapter versions vs the bare base.

Run:  .venv/bin/python bench/chat_speed.py [--runs 5] [--tokens 64]

1. The app is launched in this process on a fresh data folder (so it serves the shipped v1
   adapter, as a new Space does) and driven over HTTP by gradio_client; the plain alternative is
   `model.generate` with a TextIteratorStreamer on the very model object the app serves. Greedy,
   same prompt, runs interleaved.
2. Decoding speed of a LoRA version served merged (the default), served unmerged (PEFT's LoRA
   layers), and the bare base, through the app's own Server. Replies are exactly --tokens long.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gradio_client import Client  # noqa: E402
from transformers import TextIteratorStreamer  # noqa: E402

import app  # noqa: E402
from bench.report import median, publish, table  # noqa: E402
from trainer.config import AppSettings, ChatSettings, LoopSettings, PersonaConfig  # noqa: E402
from trainer.runtime import Runtime  # noqa: E402
from trainer.serve.server import Server  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MESSAGE = "Title: Sparse attention for tabular data. Abstract: We beat XGBoost on two datasets."


def reply_text(message: dict) -> str:
    """Gradio 6 sends a message's content as a list of typed parts."""
    content = message["content"]
    return content if isinstance(content, str) else "".join(part.get("text", "") for part in content)


def through_app(client: Client) -> tuple[float, float, str]:
    """(seconds to the first reply text, seconds to the end, reply) of a first message in a new chat."""
    client.reset_session()  # a new visitor: no earlier turns in the prompt
    started = time.perf_counter()
    first = None
    job = client.submit(MESSAGE, api_name="/chat")
    for history, *_ in job:
        if first is None and history and history[-1]["role"] == "assistant" and reply_text(history[-1]):
            first = time.perf_counter() - started
    history = job.outputs()[-1][0]
    return first, time.perf_counter() - started, reply_text(history[-1])


def through_generate(runtime: Runtime, max_new_tokens: int) -> tuple[float, float, str]:
    """The same reply from model.generate on the served model, streamed the standard way."""
    tokenizer = runtime.base.tokenizer
    messages = [{"role": "system", "content": runtime.settings.persona.system_prompt},
                {"role": "user", "content": MESSAGE}]
    started = time.perf_counter()
    inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                           return_dict=True)
    streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
    thread = threading.Thread(target=runtime.server.current.model.generate, kwargs=dict(
        **inputs, max_new_tokens=max_new_tokens, do_sample=False, streamer=streamer,
        repetition_penalty=runtime.settings.chat.repetition_penalty, pad_token_id=tokenizer.pad_token_id))
    thread.start()
    first, text = None, ""
    for piece in streamer:
        if first is None and piece.strip():
            first = time.perf_counter() - started
        text += piece
    thread.join()
    return first, time.perf_counter() - started, text.strip()


def decode_speed(server: Server, runtime: Runtime, tokens: int) -> float:
    messages = [{"role": "system", "content": runtime.settings.persona.system_prompt},
                {"role": "user", "content": MESSAGE}]
    stream = server.stream(messages)
    list(stream)
    return stream.completion.new_tokens / stream.completion.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=64)
    args = parser.parse_args()
    settings = AppSettings(persona=PersonaConfig.from_toml(ROOT / "personas" / "reviewer2.toml"),
                           chat=ChatSettings(max_new_tokens=args.tokens, temperature=0.0),
                           loop=LoopSettings(enabled=False),
                           data_dir=Path(tempfile.mkdtemp(prefix="bench-chat-")))
    settings.model.device = "cpu"
    runtime = Runtime.start(settings)
    demo = app.build_app(runtime).queue()
    _, url, _ = demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True)
    client = Client(url, verbose=False)
    tokenizer = runtime.base.tokenizer
    served = runtime.server.current.name
    through_app(client)  # warm-up: first compiles, first connection
    through_generate(runtime, args.tokens)
    app_runs, plain_runs = [], []
    for _ in range(args.runs):
        app_runs.append(through_app(client))
        plain_runs.append(through_generate(runtime, args.tokens))
    assert app_runs[-1][2] == plain_runs[-1][2], \
        f"greedy: the same reply expected:\n{app_runs[-1][2]!r}\n{plain_runs[-1][2]!r}"
    tokens = len(tokenizer(app_runs[-1][2], add_special_tokens=False)["input_ids"])
    app_tps = median(tokens / total for _, total, _ in app_runs)
    plain_tps = median(tokens / total for _, total, _ in plain_runs)
    app_ttft, plain_ttft = median(f for f, _, _ in app_runs), median(f for f, _, _ in plain_runs)
    demo.close()

    # Adapter versions vs the bare base, through the app's Server, replies of exactly --tokens.
    runtime.base.model.generation_config.suppress_tokens = [tokenizer.eos_token_id]
    version = runtime.versions.get(served)
    chat = ChatSettings(max_new_tokens=args.tokens, temperature=0.0, repetition_penalty=1.0)
    merged, unmerged = Server(runtime.base, chat), Server(runtime.base, chat)
    merged.swap(merged.load(version.name, version.path))
    unmerged.chat = ChatSettings(max_new_tokens=args.tokens, temperature=0.0, repetition_penalty=1.0,
                                 merge_adapter=False)
    unmerged.swap(unmerged.load(version.name, version.path))
    bare = Server(runtime.base, chat)
    speeds = {"base": [], "merged": [], "unmerged": []}
    for _ in range(args.runs):
        for key, server in (("base", bare), ("merged", merged), ("unmerged", unmerged)):
            speeds[key].append(decode_speed(server, runtime, args.tokens))
    base_tps = median(speeds["base"])
    runtime.close()

    body = table(("figure", "ours", "plain alternative", "ratio", "goal"), [
        ("chat tokens/s through the app (gradio_client)", f"{app_tps:.1f}", f"{plain_tps:.1f} (model.generate)",
         f"{app_tps / plain_tps:.2f}x", ">= 0.9x"),
        ("chat time to first token", f"{app_ttft * 1e3:.0f} ms", f"{plain_ttft * 1e3:.0f} ms (model.generate)",
         f"{plain_ttft / app_ttft:.2f}x speed", ">= 0.9x"),
        (f"tokens/s serving {served}, LoRA merged (default)", f"{median(speeds['merged']):.1f}",
         f"{base_tps:.1f} (bare base)", f"{median(speeds['merged']) / base_tps:.2f}x", ">= 0.9x"),
        (f"tokens/s serving {served}, LoRA unmerged (PEFT)", f"{median(speeds['unmerged']):.1f}",
         f"{base_tps:.1f} (bare base)", f"{median(speeds['unmerged']) / base_tps:.2f}x", "(before)"),
    ])
    body += (f"\n\nGreedy {tokens}-token replies to one prompt (system prompt + a paper), median of {args.runs} "
             f"interleaved runs. Tokens/s counts the whole reply time, first token included. The app's "
             f"figures include Gradio's queue, server-sent events and the client parsing them, in the same "
             f"process on the same cores; the app starts each reply from its cached system prompt "
             f"(CHAT_CACHE_SYSTEM_PROMPT), model.generate prefills the whole prompt.")
    publish("chat", "Chat speed: the app vs model.generate, adapters vs the bare base",
            f"python bench/chat_speed.py --runs {args.runs} --tokens {args.tokens}", body)


if __name__ == "__main__":
    main()
