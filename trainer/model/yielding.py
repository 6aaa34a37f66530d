"""Training yields to chat inside its forward and backward passes, not only between steps.

On a 2-core CPU one KTO micro-step takes seconds. A trainer that pauses only between micro-steps
leaves a visitor's reply waiting behind the rest of one (time to first token doubles), and both
then share the cores. Here the thread that runs rounds registers how to wait (`waiting_with`),
and every model it runs is `attached`: hooks on its linear layers call that wait before each
layer's forward and before each layer's gradient in backward, so the trainer stops within tens
of milliseconds of a reply starting and the reply runs on an otherwise idle machine.

Hooks go only on module trees private to the trainer thread (twins): registering hooks on a tree
that chat is running could mutate a hook dict under a generating thread. They check the thread
anyway, so a tree that chat also runs would never make chat wait.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Callable, Iterator

import torch
from peft.tuners.lora import LoraLayer

_local = threading.local()


@contextmanager
def waiting_with(wait: Callable[[], None]) -> Iterator[None]:
    """While the block runs, attached models call `wait()` at each pause point on this thread."""
    previous = getattr(_local, "wait", None)
    _local.wait = wait
    try:
        yield
    finally:
        _local.wait = previous


def _pause() -> None:
    wait = getattr(_local, "wait", None)
    if wait is not None:
        wait()


def _before_forward(module: torch.nn.Module, args: tuple) -> None:
    _pause()


def _after_forward(module: torch.nn.Module, args: tuple, output: object) -> None:
    # Backward through this layer starts when its output's gradient arrives: pause there too. On
    # CPU the autograd engine runs on the thread that called backward, so the thread-local wait
    # is the trainer's.
    if isinstance(output, torch.Tensor) and output.requires_grad and getattr(_local, "wait", None) is not None:
        output.register_hook(_pause_in_backward)


def _pause_in_backward(grad: torch.Tensor) -> None:
    _pause()


@contextmanager
def attached(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Give `model` pause points for the block; a no-op unless this thread is `waiting_with` a wait."""
    if getattr(_local, "wait", None) is None:
        yield model
        return
    # LoRA's own A and B matmuls are too small to be worth a pause point; the layers they adapt are not.
    lora_parts = {id(part) for layer in model.modules() if isinstance(layer, LoraLayer)
                  for part in [*layer.lora_A.values(), *layer.lora_B.values()]}
    handles = []
    for module in model.modules():
        if isinstance(module, torch.nn.Linear) and id(module) not in lora_parts \
                and not getattr(module, "_pauses_for_chat", False):
            module._pauses_for_chat = True
            handles.append((module, module.register_forward_pre_hook(_before_forward),
                            module.register_forward_hook(_after_forward)))
    try:
        yield model
    finally:
        for module, before, after in handles:
            before.remove()
            after.remove()
            module._pauses_for_chat = False
