"""Pause points: a trainer thread waits inside forward and backward passes, and only that thread waits."""

import threading

import torch
from peft import LoraConfig, get_peft_model

from trainer.model.base import twin
from trainer.model.yielding import attached, waiting_with
from trainer.store.versions import VersionStore
from trainer.train.recipe import round_config
from trainer.train.round import RoundHooks, train_round


def in_backward() -> bool:
    return torch._C._current_graph_task_id() != -1


def lora_twin(tiny_base):
    config = LoraConfig(r=4, target_modules="all-linear", task_type="CAUSAL_LM")
    return get_peft_model(twin(tiny_base.model), config)


def test_attached_model_pauses_at_every_layer_forward_and_backward(tiny_base):
    model = lora_twin(tiny_base)
    pauses = []
    ids = torch.tensor([[1, 5, 9, 14, 3, 7]])
    with waiting_with(lambda: pauses.append(in_backward())), attached(model):
        model(ids, labels=ids).loss.backward()
    linears = 2 * 7 + 1  # q k v o gate up down per layer, and the LM head
    assert pauses.count(False) == linears, "one pause before each linear layer's forward"
    # ...and in backward before each layer's gradient, but for the first q/k/v: their input is the
    # frozen embedding, so their frozen part has no gradient to wait for.
    assert pauses.count(True) == linears - 3

    pauses.clear()
    with waiting_with(lambda: pauses.append(in_backward())):
        model(ids)
    assert pauses == [], "hooks are removed when the block ends"


def test_other_threads_never_wait(tiny_base):
    model = lora_twin(tiny_base)
    waited_on = []
    ran = threading.Event()

    def chat():
        with torch.inference_mode():
            model(torch.tensor([[1, 2, 3]]))
        ran.set()

    with waiting_with(lambda: waited_on.append(threading.current_thread().name)), attached(model):
        thread = threading.Thread(target=chat, name="chat")
        thread.start()
        thread.join(10)
    assert ran.is_set() and waited_on == []


def test_without_a_wait_attaching_is_a_no_op(tiny_base):
    model = lora_twin(tiny_base)
    with attached(model):
        assert not any(m._forward_pre_hooks for m in model.modules())


def test_a_round_pauses_many_times_per_step(tiny_base, settings, tmp_path, rows):
    versions = VersionStore(tmp_path / "versions")
    pauses = []
    train_round(tiny_base, rows(), versions.get("base"), settings, versions,
                hooks=RoundHooks(yield_to_chat=lambda: pauses.append(in_backward())))
    steps = round_config(settings, output_dir=".").max_steps
    assert pauses.count(False) > steps * 2 * 7 * 3, "policy, KL and reference forwards all pause per layer"
    # Backward pauses per adapted layer; TRL's fused head does not call lm_head as a module.
    assert pauses.count(True) >= steps * (2 * 7 - 3)
