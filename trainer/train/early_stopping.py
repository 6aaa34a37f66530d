"""Early stopping inside a round: score the adapter on gate rows every few steps, keep the best step.

The DPO-in-practice notes found the best model at the peak of held-out reward accuracy: that is the
score of rounds on pairs (rewards/accuracy on the held-out pairs); rounds on unpaired rows score AUC. A round has a few dozen held-out rows, so an AUC within `tolerance` (the gate's
GATE_AUC_TOLERANCE) of the best so far is as good as the best, and then the later step is kept:
it has read more of the votes. (A reward-margin tiebreak used to keep the first scored step of
most rounds: margins on the seed rows fall while a round learns from votes.)
"""

from __future__ import annotations

from typing import Callable

import torch
from peft import get_peft_model_state_dict, set_peft_model_state_dict
from transformers import TrainerCallback

from ..contracts import EarlyStopScore, EarlyStopSummary

# (the adapter's model, the step, the round's autocast dtype or None) -> its score on held-out rows. The gate
# provides it (Gate.early_stop_scorer): training does not import the gate.
EarlyStopScorer = Callable[[torch.nn.Module, int, "torch.dtype | None"], EarlyStopScore]


class EarlyStopping(TrainerCallback):
    """Stops training once `patience` scorings in a row fell below the best score by more than `tolerance`;
    remembers the weights of the latest step within it."""

    def __init__(self, score: EarlyStopScorer, every: int, patience: int, tolerance: float = 0.0,
                 on_pairs: bool = False):
        self.score, self.every, self.patience = score, every, patience
        self.on_pairs = on_pairs  # score by rewards/accuracy on the rows' pairs, not AUC
        self.tolerance = tolerance
        self.history: list[EarlyStopScore] = []
        self.best: float | None = None  # the best score so far
        self.best_step = 0
        self.best_weights: dict[str, torch.Tensor] | None = None
        self.stale = 0
        self.max_steps = 0

    def on_step_end(self, args, state, control, model=None, **kwargs):
        self.max_steps = state.max_steps
        if state.global_step % self.every and state.global_step != state.max_steps:
            return
        model.eval()
        # Under the round's own mixed precision (its forwards run so).
        autocast = torch.bfloat16 if args.bf16 else torch.float16 if args.fp16 else None
        result = self.score(model, state.global_step, autocast)
        model.train()
        self.history.append(result)
        score = result.pair_accuracy if self.on_pairs and result.pair_accuracy is not None else result.auc
        if self.best is None or score >= self.best - self.tolerance:
            self.best = score if self.best is None else max(self.best, score)
            self.best_step, self.stale = state.global_step, 0
            self.best_weights = {k: v.detach().clone() for k, v in get_peft_model_state_dict(model).items()}
        else:
            self.stale += 1
            if self.stale >= self.patience:
                control.should_training_stop = True

    def restore_best(self, model) -> None:
        if self.best_weights is not None:
            set_peft_model_state_dict(model, self.best_weights)

    def summary(self, final_step: int) -> EarlyStopSummary:
        return EarlyStopSummary(scores=self.history, best_step=self.best_step, stopped_at=final_step,
                                stopped_early=final_step < self.max_steps, restored_best=self.best_step != final_step)
