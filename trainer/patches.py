"""The registry of every use of a library's private internals, with the library code it was checked against.

The patches live beside their users; each says what it changes and why. `RELIED_ON` names the
library code each one depends on, with a digest of that code's source as it was in the versions of
`CHECKED_AGAINST` (requirements.txt pins them); `changed_since_checked()` lists what differs in the
installed libraries, and tests/test_patches.py fails loudly on any of it, naming the patch to re-check.

- TRL's KTOTrainer and DPOTrainer (train/trainers.py: `ReferenceCachingKTOTrainer`,
  `ReferenceCachingDPOTrainer`, `kto_fast_paths`, `unpaired_aot_margin`).
- transformers' checkpointed layers (train/prefix.py: `layers_keep_caches`,
  `checkpointing_keeps_caches`): let a layer keep a passed-in cache under checkpointing, and read
  which checkpointing it uses.
- transformers' quantizer flag (model/base.py: `clear_quantized_flag`): a dequantized GGUF load may
  be saved.
- torch's CPU feature probe (model/base.py: `cpu_has_native_bf16`).
- transformers' cache layers, whose rows and columns the decode loop rearranges (serve/kv.py).

It imports nothing of the project and no library until a check resolves the names.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
from typing import Any

CHECKED_AGAINST = {"trl": "1.16.0", "transformers": "5.23.0", "torch": "2.13.0"}

# Library code the patches depend on -> sha256 (first 16 hex digits) of its source when checked.
RELIED_ON = {
    # kto_fast_paths: KTOTrainer.__init__ calls the module-level hash_module and add_fused_lm_head.
    "trl.trainer.kto_trainer.KTOTrainer.__init__": "df42c2c259c9abf6",
    "trl.trainer.utils.hash_module": "6b2d3f18279485e6",
    # kto_fast_paths: the fused head reads _use_triton and _CHUNKED_LOGPROB_CHUNK_SIZE at call time.
    "trl.trainer.utils.add_fused_lm_head": "422d009f04b66659",
    "trl.kernels.chunked_logprob._use_triton": "f0510984e05ac05c",
    # ReferenceCachingKTOTrainer._prepare_dataset: the parent tokenizes conversational rows through the chat
    # template (every completion ends with the end-of-turn token and what follows it), keeps columns it does not
    # know, and builds KL_completion_ids by rotating completion_ids by one within each batch of
    # per_device_train_batch_size.
    "trl.trainer.kto_trainer.KTOTrainer._prepare_dataset": "d22cf45470e637d6",
    # ReferenceCachingKTOTrainer overrides it and calls it on the rows it lacks.
    "trl.trainer.kto_trainer.KTOTrainer._precompute_ref_logps": "bb13017be7eeb8f2",
    # unpaired_aot_margin: under loss_type apo_zero_unpaired, _compute_loss calls `F.sigmoid` (the module's
    # torch.nn.functional) on beta * the liked rows' log-ratios, then on the disliked rows', each only if present.
    "trl.trainer.kto_trainer.KTOTrainer._compute_loss": "70e5262bf7b4fc77",
    # ReferenceCachingDPOTrainer: __init__ calls the module-level hash_module and add_fused_lm_head, and
    # _precompute_ref_logps (overridden) returns the dataset with ref_chosen_logps / ref_rejected_logps added;
    # compute_ref_log_probs(model, batch) gives them for one collated batch (the adapter off).
    "trl.trainer.dpo_trainer.DPOTrainer.__init__": "632f447c71dcb043",
    "trl.trainer.dpo_trainer.DPOTrainer._precompute_ref_logps": "f2c098c7da6ca701",
    "trl.trainer.dpo_trainer.DPOTrainer.compute_ref_log_probs": "90611af9cbadb8ec",
    # layers_keep_caches / checkpointing_keeps_caches.
    "transformers.modeling_layers.GradientCheckpointingLayer.__call__": "b11681464e3ee0eb",
    "transformers.modeling_utils.PreTrainedModel._set_gradient_checkpointing": "0f3ae9682e2795f0",
    # clear_quantized_flag: save_pretrained refuses a model whose hf_quantizer is set.
    "transformers.modeling_utils.PreTrainedModel.save_pretrained": "979de0ea85d74159",
    "torch.cpu._is_avx512_bf16_supported": "28fa7aa703299622",
    # serve/kv.py (not a patch, but it reads and writes a cache layer's tensors): a DynamicLayer keeps its
    # keys and values as `keys` / `values` [batch, heads, positions, head_dim], grows them by concatenation on
    # the positions axis, and counts its positions from their shape.
    "transformers.cache_utils.DynamicLayer.update": "15d634e7095acc0e",
    "transformers.cache_utils.DynamicLayer.batch_select_indices": "6083cb87b43cb935",
    "transformers.cache_utils.DynamicLayer.get_seq_length": "968c30ace32c39bb",
}

def _resolve(name: str) -> Any:
    """The object a dotted name points at: the longest importable module, then attributes."""
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            target = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attribute in parts[cut:]:
            target = getattr(target, attribute)
        return target
    raise ImportError(name)


def source_digest(name: str) -> str:
    return hashlib.sha256(inspect.getsource(_resolve(name)).encode()).hexdigest()[:16]


def changed_since_checked() -> list[str]:
    """The relied-on library code whose source is not what the patches were checked against (or is gone)."""
    changed = []
    for name, digest in RELIED_ON.items():
        try:
            now = source_digest(name)
        except (ImportError, AttributeError, OSError, TypeError) as err:
            changed.append(f"{name}: gone ({type(err).__name__}: {err})")
            continue
        if now != digest:
            changed.append(f"{name}: source digest {now}, checked against {digest}")
    return changed


# -- TRL's KTOTrainer ------------------------------------------------------------------------------
