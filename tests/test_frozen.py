"""Frozen base linears keep no weight copy for backward, and give the same gradients."""

import torch
from peft import LoraConfig, get_peft_model

from trainer.model.base import twin
from trainer.train.frozen import keep_no_weight_copies


def _lora(tiny_base, patched: bool):
    model = twin(tiny_base.model)
    if patched:
        assert keep_no_weight_copies(model) == 2 * 7 + 1  # q k v o gate up down per layer, and the LM head
    torch.manual_seed(1)
    return get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False))


def _step(model, ids, autocast: bool):
    """Saved tensors (dtype, shape) and the LoRA gradients of one forward and backward."""
    saved = []

    def pack(t):
        saved.append((t.dtype, tuple(t.shape)))
        return t

    model.zero_grad()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), \
            torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    return saved, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_frozen_linears_save_no_bf16_weight_copies_and_give_the_same_gradients(tiny_base):
    ids = torch.randint(0, 500, (3, 5))
    weights = {(torch.bfloat16, tuple(p.shape)) for n, p in tiny_base.model.named_parameters() if p.dim() == 2}
    plain_saved, plain_grads = _step(_lora(tiny_base, False), ids, autocast=True)
    saved, grads = _step(_lora(tiny_base, True), ids, autocast=True)
    assert weights & set(plain_saved), "autocast keeps bf16 casts of the frozen weights for backward"
    assert not weights & set(saved)
    assert grads.keys() == plain_grads.keys() and grads
    for name in grads:
        torch.testing.assert_close(grads[name], plain_grads[name])  # bf16 either way: the same arithmetic

    _, exact = _step(_lora(tiny_base, False), ids, autocast=False)
    _, ours = _step(_lora(tiny_base, True), ids, autocast=False)
    for name in exact:
        torch.testing.assert_close(ours[name], exact[name], atol=1e-6, rtol=1e-5)


def test_layers_that_train_keep_plain_autograd(tiny_base):
    model = twin(tiny_base.model)
    layer = model.model.layers[0].mlp.down_proj
    keep_no_weight_copies(model)
    layer.weight = torch.nn.Parameter(layer.weight.detach().clone())  # unfrozen after the patch
    x = torch.randn(2, layer.in_features)
    layer(x).sum().backward()
    assert layer.weight.grad is not None and layer.weight.grad.shape == layer.weight.shape
