"""Shared by the bench scripts that drive the real app over HTTP: start `app.py` as a process, read replies.

`start_app` runs the app of a source tree (this checkout, or a `git worktree` of another revision
for a before/after figure) on a free port with the given environment, and waits until it answers.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from gradio_client import Client

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(data_dir: Path, env: dict[str, str], root: Path = ROOT) -> tuple[subprocess.Popen, str]:
    """Start `root`/app.py on a fresh port with DATA_DIR=`data_dir` and `env`; returns (process, url)."""
    port = free_port()
    env = {**os.environ, "DATA_DIR": str(data_dir), "GRADIO_SERVER_PORT": str(port),
           "GRADIO_ANALYTICS_ENABLED": "False", **env}
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    log = open(data_dir.parent / f"{data_dir.name}.log", "w")
    process = subprocess.Popen([sys.executable, str(root / "app.py")], cwd=root, env=env, stdout=log,
                               stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    for _ in range(600):
        if process.poll() is not None:
            raise RuntimeError(f"the app exited with {process.returncode}; see {log.name}")
        try:
            Client(url, verbose=False)
            return process, url
        except Exception:
            time.sleep(1)
    process.kill()
    raise RuntimeError("the app did not come up in 10 minutes")


def reply_text(history: list[dict]) -> str:
    """The text of the chat's last message (Gradio may send it as message parts)."""
    content = history[-1]["content"]
    if isinstance(content, list):
        content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return str(content)


def peak_rss_mib(process: subprocess.Popen) -> float:
    """The process's peak resident set (VmHWM), in MiB."""
    for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc")
