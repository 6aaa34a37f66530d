"""The preference losses a round can optimise, by name, and the one TRL lacks: the AOT paper's unpaired loss.

    kto            TRL's KTOTrainer (the KTO paper), on thumbs and on picks as one liked + one disliked row
    aot_unpaired   the same rows and trainer; the loss below replaces KTO's (train/trainers.py wires it in)
    dpo, ipo, aot  TRL's DPOTrainer (`loss_type` sigmoid / ipo / aot) on picks: (prompt, chosen, rejected)
    rpo            the same trainer and rows, DPO plus the chosen reply's negative log-likelihood (sigmoid + sft)

TRL's own `aot_unpaired` (a DPOTrainer loss) still takes (prompt, chosen, rejected) rows: it sorts
the chosen and the rejected halves of a paired batch apart. Thumbs are on different prompts, with
any number of each label in a batch, so here the implicit rewards of a KTO batch's liked and
disliked rows are matched quantile by quantile instead.
"""

from __future__ import annotations

import torch

# Our loss name -> TRL's DPOConfig.loss_type (TRL sums a list's losses, with loss_weights 1 each). rpo is DPO
# plus the mean negative log-likelihood of the chosen replies' tokens ("sft"), the RPO objective: the NLL term
# does not saturate, so it can teach a voice the model does not write yet (a new persona's seed), which
# DPO's and KTO's sigmoids stop pushing once the margin is a few nats.
DPO_LOSS_TYPES = {"dpo": ("sigmoid",), "ipo": ("ipo",), "aot": ("aot",), "rpo": ("sigmoid", "sft")}


def aot_unpaired_loss(liked: torch.Tensor, disliked: torch.Tensor, margin: float = 0.0) -> torch.Tensor:
    """The AOT paper's unpaired loss on one batch: liked rewards should dominate disliked ones at every quantile.

    `liked` and `disliked` are implicit rewards (beta * log pi_theta / pi_ref) of the batch's liked and
    disliked rows. Both are read at n evenly spaced quantile levels, n the larger count (with equal
    counts: both sorted, matched in order); every level where the disliked quantile comes within
    `margin` of the liked one (or beats it) costs that shortfall, a hinge, averaged over the levels.
    Zero when every liked quantile beats its disliked one by the margin. A batch of one label has no
    quantiles to match: its loss is zero (connected to the graph, so backward still runs).
    """
    if liked.numel() == 0 or disliked.numel() == 0:
        return (liked.sum() + disliked.sum()) * 0.0
    levels = torch.linspace(0, 1, max(liked.numel(), disliked.numel()), dtype=liked.dtype, device=liked.device)
    shortfall = margin - (torch.quantile(liked, levels) - torch.quantile(disliked, levels))
    return torch.relu(shortfall).mean()
