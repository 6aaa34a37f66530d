"""The gate: pure checks, and on the embedded model an honest round serves while a poisoned one is kept out."""

import pytest

from trainer.config import AppSettings, ChatSettings, GateSettings, LoopSettings, ModelSettings
from trainer.contracts import Scores
from trainer.data import conversational
from trainer.gate.holdout import is_gate_vote
from trainer.gate.rule import decide, distinct_n, repetition
from trainer.runtime import Runtime
from trainer.serve.model import load_base
from trainer.store.files import read_preferences
from trainer.train.round import train_round


def scores(auc=0.8, kl=0.1, distinct2=0.9, rep=0.0, version="v"):
    return Scores(version, auc, 1.0, kl, distinct2, rep)


def test_degeneration_measures():
    assert distinct_n(["a b c d"]) == 1.0
    assert distinct_n(["the cat the cat the cat"]) == pytest.approx(2 / 5)
    assert repetition("reject reject reject reject reject") == 1.0
    assert repetition("the baselines are weak and the ablations missing") == 0.0


def test_decide_names_every_failed_check():
    settings = GateSettings(auc_tolerance=0.02, max_kl=0.5, min_distinct2=0.3, max_repetition=0.5)
    assert decide(scores(auc=0.79), scores(auc=0.80), settings) == (True, [])
    passed, reasons = decide(scores(auc=0.7, kl=0.9, distinct2=0.1, rep=0.8), scores(auc=0.8, version="v0001"),
                             settings)
    assert not passed and len(reasons) == 4
    assert "held-out AUC 0.700 is below the serving v0001's 0.800" in reasons[0]
    assert "KL to the base 0.900 is over the cap 0.5" in reasons[1]


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
                           gate=GateSettings(seed_rows=32, early_stop_every=0),
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
        assert len(report.candidate.liked_quantiles) == 21
