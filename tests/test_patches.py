"""Every patch of a library's private internals still patches what it was written for."""

import importlib.metadata

import torch
from trl.trainer import kto_trainer
from trl.trainer import utils as trl_utils

from trainer import patches
from trainer.train import trainers


def test_the_library_code_the_patches_rely_on_is_unchanged():
    changed = patches.changed_since_checked()
    installed = {name: importlib.metadata.version(name) for name in patches.CHECKED_AGAINST}
    assert not changed, (f"library code under trainer/patches.py changed (installed {installed}, checked against "
                         f"{patches.CHECKED_AGAINST}); re-check each patch that relies on:\n" + "\n".join(changed))


def test_a_changed_library_is_caught(monkeypatch):
    monkeypatch.setitem(patches.RELIED_ON, "trl.trainer.utils.hash_module", "0" * 16)
    monkeypatch.setitem(patches.RELIED_ON, "trl.trainer.utils.no_longer_there", "0" * 16)
    changed = patches.changed_since_checked()
    assert len(changed) == 2 and changed[0].startswith("trl.trainer.utils.hash_module: source digest")
    assert "gone" in changed[1]


def test_kto_fast_paths_swap_the_globals_and_put_them_back():
    before = (kto_trainer.hash_module, kto_trainer.add_fused_lm_head, trl_utils._use_triton,
              trl_utils._CHUNKED_LOGPROB_CHUNK_SIZE)
    with trainers.kto_fast_paths():
        assert trl_utils._CHUNKED_LOGPROB_CHUNK_SIZE == trainers.VOCABULARY_TILE
        assert trl_utils._use_triton(torch.device("cpu")) is True
        assert kto_trainer.hash_module is not before[0] and kto_trainer.add_fused_lm_head is not before[1]
    assert (kto_trainer.hash_module, kto_trainer.add_fused_lm_head, trl_utils._use_triton,
            trl_utils._CHUNKED_LOGPROB_CHUNK_SIZE) == before
