"""The gate: pure checks, and on the embedded model an honest round serves while a poisoned one is kept out."""

import pytest
import torch
from peft import get_peft_model

from trainer.config import AppSettings, ChatSettings, GateSettings, LoopSettings, ModelSettings
from trainer.contracts import ProbeReply, Scores
from trainer.data import conversational
from trainer.gate.holdout import is_gate_vote
from trainer.gate.probes import draw_probe_messages, probe_reply
from trainer.gate.rubric import repetition
from trainer.gate.rule import decide, distinct_n, looks_worse, paired_excess, undecided
from trainer.model.base import load_base, twin
from trainer.runtime import Runtime
from trainer.serve.server import SamplingCancelled
from trainer.store.files import read_preferences
from trainer.train.recipe import adapter_config
from trainer.train.round import train_round


def scores(auc=0.8, kl=0.1, distinct2=0.9, rep=0.0, version="v", replies=()):
    return Scores(version, auc, 1.0, kl, distinct2, rep, None, probe_replies=list(replies))


def test_degeneration_measures():
    assert distinct_n(["a b c d"]) == 1.0
    assert distinct_n(["the cat the cat the cat"]) == pytest.approx(2 / 5)
    assert repetition("reject reject reject reject reject") == 1.0
    assert repetition("the baselines are weak and the ablations missing") == 0.0


def test_decide_names_every_failed_check():
    settings = GateSettings(auc_tolerance=0.02, max_kl=0.5, min_distinct2=0.3, max_repetition=0.5)
    assert decide(scores(auc=0.79), scores(auc=0.80), settings) == (True, [])
    passed, reasons = decide(scores(auc=0.7, kl=0.9), scores(auc=0.8, version="v0001"), settings)
    assert not passed and len(reasons) == 2
    assert "held-out AUC 0.700 is below the serving v0001's 0.800" in reasons[0]
    assert "KL to the base 0.900 is over the cap 0.5" in reasons[1]


PAPER = "Title: Sparse Widgets. Abstract: We train sparse widget networks on the Gizmo benchmark and beat dense ones."
GOOD = "The Gizmo benchmark results lack seeds and the sparse widget baselines are untuned. Recommendation: reject."
CUT = "The Gizmo benchmark results lack seeds and the sparse widget baselines are untuned and the ablations are"
LOOP = "reject the widget " * 12


def replies(texts: list[str], tokens: list[int] | None = None) -> list[ProbeReply]:
    """Probe replies to one paper under seeds 0..n-1 (so two lists pair up); a reply ending in "." ended."""
    tokens = tokens or [40] * len(texts)
    return [probe_reply(PAPER, seed, text, n, text.endswith("."), max_repetition=0.3)
            for seed, (text, n) in enumerate(zip(texts, tokens))]


def decide_on(candidate: list[ProbeReply], serving: list[ProbeReply], **settings) -> tuple[bool, list[str]]:
    return decide(scores(replies=candidate, distinct2=distinct_n([r.text for r in candidate])),
                  scores(version="v0001", replies=serving, distinct2=distinct_n([r.text for r in serving])),
                  GateSettings(**settings))


def test_probe_reply_checks():
    good, cut, loop = replies([GOOD, CUT, LOOP])
    assert good.finished and not good.loops and good.checks == 1.0
    assert not cut.finished and not cut.ended and not cut.loops
    assert loop.loops and not loop.finished


def test_the_gate_refuses_sampled_replies_worse_beyond_the_noise_and_passes_noise():
    serving = replies([GOOD] * 16)
    passed, reasons = decide_on(replies([CUT] * 8 + [GOOD] * 8), serving)
    assert not passed and reasons[0].startswith("8 of its 16 sampled probe replies are unfinished, against 0")
    assert decide_on(replies([CUT] * 1 + [GOOD] * 15), serving) == (True, []), "one cut reply in 16 is noise"
    passed, reasons = decide_on(replies([LOOP] * 6 + [GOOD] * 10), serving)
    assert not passed and any("6 of its 16 sampled probe replies loop, against 0" in r for r in reasons)


def test_loops_and_cut_replies_refuse_only_what_is_worse_than_serving():
    """The serving version loops in half its replies: a candidate that loops as often is not refused for it (an
    absolute limit refused candidates for less than what was serving)."""
    looping_half = replies([LOOP] * 8 + [GOOD] * 8)
    assert decide_on(replies([GOOD] * 8 + [LOOP] * 8), looping_half, min_distinct2=0.9) == (True, [])
    assert decide_on(replies([CUT] * 8 + [GOOD] * 8), replies([GOOD] * 8 + [CUT] * 8)) == (True, [])


def test_length_drift_is_refused_beyond_the_noise():
    serving = replies([GOOD] * 16, tokens=[40] * 16)
    passed, reasons = decide_on(replies([GOOD] * 16, tokens=[80, 90] * 8), serving)
    assert not passed and reasons == ["its sampled probe replies are 85 tokens long on average, over 1.3x the serving "
                                      "v0001's 40 (beyond the noise)"]
    assert decide_on(replies([GOOD] * 16, tokens=[48] * 16), serving) == (True, []), "1.2x is within 1.3x"
    assert decide_on(replies([GOOD] * 16, tokens=[80, 90] * 8), serving, max_length_ratio=0)[0], "0 turns it off"


def test_a_candidate_that_only_looks_worse_gets_a_second_look():
    """5 unfinished of 16 against 8 passed (round 1 of the learning-crowd-128-eos run, whose version then served
    replies cut at the cap 58% of the time); it is worse by the point estimate, so the gate looks again."""
    gate = GateSettings()
    serving = replies([CUT] * 5 + [GOOD] * 11)
    assert looks_worse(replies([CUT] * 8 + [GOOD] * 8), serving, gate)
    assert decide_on(replies([CUT] * 8 + [GOOD] * 8), serving, min_distinct2=0)[0], "not beyond the noise of 16"
    assert not looks_worse(replies([CUT] * 5 + [GOOD] * 11), serving, gate), "as good: no second look"
    assert not looks_worse(replies([GOOD] * 16), serving, gate)
    assert looks_worse(replies([GOOD] * 16, tokens=[60] * 16), replies([GOOD] * 16, tokens=[40] * 16), gate)
    # With twice the pairs at the same rates the difference is beyond the noise.
    passed, reasons = decide_on(replies(([CUT] * 8 + [GOOD] * 8) * 2), replies(([CUT] * 5 + [GOOD] * 11) * 2),
                                min_distinct2=0)
    assert not passed and reasons[0].startswith("16 of its 32 sampled probe replies are unfinished, against 10")


def test_a_candidate_still_undecided_after_its_second_look_gets_more_pairs():
    """Round 2 of the learning-crowd-128-parent-lambda run: 19 of 32 probe replies unfinished against 12 read as
    noise, the version served, and fresh voters liked it 9 points less. At the same rates 64 pairs decide."""
    gate = GateSettings(min_distinct2=0)
    # Pair by pair: both cut 7, only the candidate's 12, only the serving version's 5, neither 8.
    ours = replies([CUT] * 7 + [CUT] * 12 + [GOOD] * 5 + [GOOD] * 8)
    theirs = replies([CUT] * 7 + [GOOD] * 12 + [CUT] * 5 + [GOOD] * 8)
    assert undecided(ours, theirs, gate) and decide_on(ours, theirs, min_distinct2=0)[0]
    ours, theirs = replies([r.text for r in ours] * 2), replies([r.text for r in theirs] * 2)
    assert not undecided(ours, theirs, gate), "beyond the noise: decided"
    passed, reasons = decide_on(ours, theirs, min_distinct2=0)
    assert not passed and reasons[0].startswith("38 of its 64 sampled probe replies are unfinished, against 24")
    assert not undecided(replies([GOOD] * 32), replies([CUT] * 32), gate), "better: nothing to decide"


def test_paired_excess_is_a_mean_with_a_lower_bound():
    assert paired_excess([1, 1, 1, 1], [0, 0, 0, 0]) == (1.0, 1.0)
    mean, lower = paired_excess([1, 0, 1, 0], [0, 0, 0, 0])
    assert mean == 0.5 and lower < 0 < mean


def test_probe_messages_are_a_fresh_draw_each_round():
    pool = [f"paper {i}" for i in range(40)]
    first, second = draw_probe_messages(pool, 8, draw=1), draw_probe_messages(pool, 8, draw=2)
    assert len(set(first)) == 8 and first != second and draw_probe_messages(pool, 8, draw=1) == first
    assert sorted(draw_probe_messages(pool[:3], 8, draw=1)) == pool[:3]


def adapter_on_tiny_base(base, settings, path, looping: bool):
    """A LoRA adapter for the tiny base: zero (the base itself), or one that pins the last layer's output to
    one direction, so greedy replies loop over a token or two."""
    model = get_peft_model(twin(base.model), adapter_config(settings))
    if looping:
        torch.manual_seed(0)
        layer = model.base_model.model.model.layers[-1].mlp.down_proj
        torch.nn.init.normal_(layer.lora_A["default"].weight)
        torch.nn.init.constant_(layer.lora_B["default"].weight, 50.0)
    model.save_pretrained(path)
    return path


def test_the_gate_keeps_out_a_candidate_whose_sampled_replies_loop(runtime, settings, tmp_path):
    gate = settings.gate
    gate.enabled, gate.auc_tolerance, gate.max_kl, gate.min_distinct2 = True, 1.0, 1e9, 0.0
    gate.probe_prompts, gate.probe_samples, gate.probe_tokens = 4, 2, 32  # only the probe replies can refuse here
    gate.looks_at_once = 1  # one draw at a time: the second look is taken only when the first looks worse
    rows = runtime.gate.rows()
    same = runtime.gate.judge(adapter_on_tiny_base(runtime.base, settings, tmp_path / "same", looping=False),
                              "base", None, rows)
    assert same.passed and same.candidate.rubric == same.serving.rubric
    assert len(same.candidate.probe_replies) == 8 and [r.text for r in same.candidate.probe_replies] == \
        [r.text for r in same.serving.probe_replies], "a zero adapter samples what the base samples, seed for seed"
    looping = runtime.gate.judge(adapter_on_tiny_base(runtime.base, settings, tmp_path / "loop", looping=True),
                                 "base", None, rows)
    assert not looping.passed and all(r.loops for r in looping.candidate.probe_replies)
    assert any("sampled probe replies loop" in reason for reason in looping.reasons)
    assert len(looping.candidate.probe_replies) == len(looping.serving.probe_replies) == 16, \
        "it looked worse after 8 pairs: a second look sampled 8 more"
    assert looping.second_look and not same.second_look and looping.probe_s > 0 and looping.score_s > 0
    assert (same.looks, looping.looks) == (1, 2), "decided after the second look: no third"
    assert all(r.liked is not None for r in looping.candidate.probe_replies + looping.serving.probe_replies), \
        "read by the held-out reply classifier"
    assert len({(r.message, r.seed) for r in looping.candidate.probe_replies}) == 16
    assert runtime.server.generating == 0 and runtime.server.current.name == "base"


def test_a_prepared_gate_samples_only_the_candidate_and_gets_the_serving_replies_it_would_sample(
        runtime, settings, tmp_path, monkeypatch):
    gate = settings.gate
    gate.enabled, gate.auc_tolerance, gate.max_kl, gate.min_distinct2, gate.second_look = True, 1.0, 1e9, 0.0, False
    gate.probe_prompts, gate.probe_samples, gate.probe_tokens = 3, 2, 16
    rows = runtime.gate.rows()
    candidate = adapter_on_tiny_base(runtime.base, settings, tmp_path / "candidate", looping=True)
    together = runtime.gate.judge(candidate, "base", None, rows, draw=5)  # nothing prepared: both in one batch
    assert runtime.learner.prepare_gate(), "the next round's (draw 0, no version yet) is prepared"
    sampled, real_sample = [], runtime.server.sample
    monkeypatch.setattr(runtime.server, "sample", lambda requests, *a, **k: sampled.append(
        sorted({served.name for served, _, _ in requests})) or real_sample(requests, *a, **k))
    assert runtime.gate.prepare(draw=5) and not runtime.gate.prepare(draw=5), "prepared once per draw"
    apart = runtime.gate.judge(candidate, "base", None, rows, draw=5)
    assert sampled == [["base"], ["candidate"]], "the round's gate sampled the candidate alone"
    assert [r.text for r in apart.serving.probe_replies] == [r.text for r in together.serving.probe_replies]
    assert [r.text for r in apart.candidate.probe_replies] == [r.text for r in together.candidate.probe_replies]
    with pytest.raises(SamplingCancelled):
        runtime.gate.prepare(draw=6, cancel=lambda: True)
    gate.second_look, gate.probe_prompts, gate.probe_tokens = True, 4, 32  # as in the loop test: it looks worse
    sampled.clear()
    assert runtime.gate.prepare(draw=7) and runtime.gate.is_prepared(7)
    assert sampled == [["base"]] * gate.max_looks, "one draw per look the gate may take, each sampled apart"
    looked = runtime.gate.judge(candidate, "base", None, rows, draw=7)
    batches = -(-looked.looks // gate.looks_at_once)
    assert looked.second_look and sampled[gate.max_looks:] == [["candidate"]] * batches, \
        "every look's serving replies were sampled ahead"
    assert runtime.server.generating == 0


def test_the_gate_samples_looks_together_and_decides_on_all_of_them(runtime, settings, tmp_path, monkeypatch):
    """GATE_LOOKS_AT_ONCE=2: the candidate's first two draws go in one batch (with the serving version's, nothing
    being prepared), seed for seed the replies it gives one draw at a time, and the verdict reads all 16 pairs."""
    gate = settings.gate
    gate.enabled, gate.auc_tolerance, gate.max_kl, gate.min_distinct2 = True, 1.0, 1e9, 0.0
    gate.probe_prompts, gate.probe_samples, gate.probe_tokens, gate.looks_at_once = 4, 2, 32, 2
    rows = runtime.gate.rows()
    looping = adapter_on_tiny_base(runtime.base, settings, tmp_path / "loop", looping=True)
    batches, real_sample = [], runtime.server.sample
    monkeypatch.setattr(runtime.server, "sample", lambda requests, *a, **k: batches.append(
        [served.name for served, _, _ in requests]) or real_sample(requests, *a, **k))
    together = runtime.gate.judge(looping, "base", None, rows, draw=3)
    assert batches == [["candidate"] * 16 + ["base"] * 16], "two draws of 8 requests, both versions, one batch"
    assert together.looks == 2 and not together.passed
    assert len(together.candidate.probe_replies) == len(together.serving.probe_replies) == 16
    gate.looks_at_once = 1
    apart = runtime.gate.judge(looping, "base", None, rows, draw=3)
    assert [(r.seed, r.text) for r in apart.candidate.probe_replies] == \
        [(r.seed, r.text) for r in together.candidate.probe_replies], "the same requests, the same replies"
    assert runtime.server.generating == 0


def test_gate_vote_share_is_stable_and_about_right():
    ids = [f"reply-{i}" for i in range(2000)]
    chosen = [i for i in ids if is_gate_vote(i, 0.2)]
    assert 0.17 < len(chosen) / len(ids) < 0.23
    assert chosen == [i for i in ids if is_gate_vote(i, 0.2)] and not any(is_gate_vote(i, 0.0) for i in ids)


@pytest.fixture(scope="module")
def embedded_runtime(tmp_path_factory, embedded_dir):
    from trainer.config import DEFAULT_PERSONA_FILE, PersonaConfig

    settings = AppSettings(persona=PersonaConfig.from_toml(DEFAULT_PERSONA_FILE),
                           model=ModelSettings(cache_dir=embedded_dir.parent, device="cpu"),
                           chat=ChatSettings(max_new_tokens=16), loop=LoopSettings(enabled=False),
                           gate=GateSettings(seed_rows=32, early_stop_every=0, probe_prompts=3, probe_tokens=64),
                           data_dir=tmp_path_factory.mktemp("gate-state"), shipped_adapter=None,
                           round_overrides={"max_steps": 4})
    return Runtime(settings, load_base(settings.model))


def seed_rows(runtime, flip: bool) -> list[dict]:
    rows = read_preferences(runtime.settings.gate.seed_file, split="train")[:16]
    return [conversational({**r, "label": r["label"] != flip}, runtime.settings.persona.system_prompt) for r in rows]


@pytest.mark.e2e
@pytest.mark.parametrize("flip,serves", [(False, True), (True, False)], ids=["honest", "poisoned"])
def test_gate_serves_honest_rounds_and_keeps_poisoned_ones_out(embedded_runtime, flip, serves):
    runtime = embedded_runtime
    gate, versions = runtime.gate, runtime.versions
    gate_rows = gate.rows()
    result = train_round(runtime.base, seed_rows(runtime, flip), versions.get("base"), runtime.settings, versions,
                         gate=lambda adapter_dir: gate.judge(adapter_dir, "base", None, gate_rows))
    report = result.gate
    print(f"{'poisoned' if flip else 'honest'}: candidate AUC {report.candidate.auc:.3f} margin "
          f"{report.candidate.margin:.3f} KL {report.candidate.kl:.4f} vs serving {report.serving.version} AUC "
          f"{report.serving.auc:.3f}; reasons: {report.reasons}")
    assert report.passed is serves
    assert result.meta.gate.passed is serves and versions.get(result.version).path.is_dir()
    if serves:
        assert report.candidate.auc > 0.6 and not report.reasons
    else:
        assert report.candidate.auc < 0.4 and "held-out AUC" in report.reasons[0]
        assert len(report.candidate.desirable_quantiles) == 21


def test_early_stop_rows_are_the_newest_gate_votes_and_seed_rows(runtime, settings):
    settings.gate.early_stop_rows = 6
    seed = runtime.gate.seed_rows()
    votes = [{"prompt": [], "completion": [], "label": i % 2 == 0, "n": i} for i in range(5)]
    assert runtime.gate.early_stop_rows(seed) == seed[:6]
    assert runtime.gate.early_stop_rows(seed + votes[:1]) == seed[:5] + votes[:1]
    assert runtime.gate.early_stop_rows(seed + votes) == seed[:3] + votes[-3:]
