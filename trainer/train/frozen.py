"""Frozen base linears that keep no copy of their weight for backward.

Under bf16 autocast every linear casts its fp32 weight to bf16, and autograd keeps that cast for
backward (it needs the weight for the input's gradient). Autocast caches casts only of weights
that require grad, so the frozen base's casts are made fresh in every forward and all of them are
held until backward: about 200 MiB per forward of SmolLM2-135M, twice per micro-step when the
prompt prefix is encoded apart (prefix.py), more than the activations themselves. A frozen
weight's gradient is never needed and its input is never saved, so the only thing backward needs
is the weight itself: this keeps a reference to the fp32 parameter and casts it again in backward.
"""

from __future__ import annotations

import types

import torch
import torch.nn.functional as F


class _FrozenLinearFunction(torch.autograd.Function):
    """y = x W^T + b for a frozen W, b: saves only W (the parameter itself, no copy)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        ctx.save_for_backward(weight)
        ctx.input_dtype = x.dtype
        return F.linear(x, weight, bias)  # autocast, if on, applies here as in nn.Linear

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        (weight,) = ctx.saved_tensors
        grad_input = grad_output.matmul(weight.to(grad_output.dtype)) if ctx.needs_input_grad[0] else None
        return (grad_input.to(ctx.input_dtype) if grad_input is not None else None), None, None


def _frozen_forward(self: torch.nn.Linear, x: torch.Tensor) -> torch.Tensor:
    if self.weight.requires_grad or (self.bias is not None and self.bias.requires_grad):
        return F.linear(x, self.weight, self.bias)  # unfrozen since: plain autograd
    return _FrozenLinearFunction.apply(x, self.weight, self.bias)


def keep_no_weight_copies(model: torch.nn.Module) -> int:
    """Make the frozen plain `nn.Linear` layers of `model`'s own tree save no weight copy; returns how many.

    Only exact `nn.Linear` instances: quantized subclasses (bitsandbytes) keep their own forward.
    Patch a tree used only for training (a twin): the module objects change, never the parameters.
    """
    layers = [m for m in model.modules() if type(m) is torch.nn.Linear and not m.weight.requires_grad]
    for layer in layers:
        layer.forward = types.MethodType(_frozen_forward, layer)
    return len(layers)
