"""The decode loop's top-p: the tokens and probabilities transformers' TopPLogitsWarper keeps, from a shortlist."""

import pytest
import torch
from transformers import TopPLogitsWarper

from trainer.config import ChatSettings
from trainer.serve.sampling import TokenSampler, nucleus


def warper_nucleus(scores: torch.Tensor, top_p: float) -> dict[int, float]:
    warped = TopPLogitsWarper(top_p)(None, scores[None])[0]
    probs = torch.softmax(warped, -1)
    return {int(i): float(probs[i]) for i in torch.isfinite(warped).nonzero()[:, 0]}


@pytest.mark.parametrize("temperature", [0.3, 0.7, 1.0, 5.0, 50.0])  # peaked to nearly flat (past the shortlist)
@pytest.mark.parametrize("top_p", [0.5, 0.9, 0.99])
def test_nucleus_keeps_what_the_warper_keeps_with_its_probabilities(temperature, top_p):
    generator = torch.Generator().manual_seed(int(temperature * 100 + top_p * 1000))
    for _ in range(20):
        scores = torch.randn(4096, generator=generator) * 4 / temperature
        ids, probs = nucleus(scores, top_p, shortlist=64)
        expected = warper_nucleus(scores, top_p)
        assert {int(i) for i in ids} == set(expected)
        assert [float(p) for p in probs] == pytest.approx([expected[int(i)] for i in ids], rel=1e-5, abs=1e-7)
        assert float(probs.sum()) == pytest.approx(1.0, abs=1e-5)


def test_one_dominant_token_is_kept_alone_and_a_seeded_draw_repeats():
    scores = torch.full((1000,), -10.0)
    scores[7] = 10.0
    ids, probs = nucleus(scores, 0.9)
    assert ids.tolist() == [7] and probs.tolist() == [1.0]
    sampler = TokenSampler(ChatSettings(temperature=0.7, top_p=0.9, repetition_penalty=1.0))
    logits = torch.randn(1, 1000, generator=torch.Generator().manual_seed(0))
    history = torch.tensor([[1, 2, 3]])
    draws = [sampler(history, logits, torch.Generator().manual_seed(42)) for _ in range(2)]
    assert draws[0] == draws[1]
    greedy = TokenSampler(ChatSettings(temperature=0.0, repetition_penalty=1.0))
    assert greedy(history, logits, None) == int(logits.argmax())
