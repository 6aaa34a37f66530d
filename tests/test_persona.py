"""A duplicated Space's own persona: everything Reviewer #2-specific comes from the persona file, so a second
persona starts from the bare base though Reviewer #2's adapter is there, never reads Reviewer #2's seed
set, and learns from its own votes, anchors and gate rows; one with no seed data at all still learns, on
votes alone, gated on held-out votes and probes from its own examples."""

import json
import shutil
import sys
from pathlib import Path

import pytest

from trainer.config import SEED_FILE, AppSettings
from trainer.contracts import VersionMeta
from trainer.runtime import Runtime
from trainer.store.versions import VersionError
from trainer.store.votes import VoteError
from trainer.ui.status import status_line

KIND = """[persona]
name = "Professor Kind"
system_prompt = "You are Professor Kind, a warm mentor. Praise what is good in the paper, suggest one gentle \
improvement, and congratulate the authors."
greeting = "Welcome! Share your paper and I will tell you what I love about it."
examples = ["Title: Sorting With Love. Abstract: We sort lists 2% faster.",
            "Title: Kind Graphs. Abstract: A graph method for friendly networks."]
"""
PAPERS = [f"Title: Paper {n} on gentle methods. Abstract: We study {n} kind things." for n in range(8)]
WARM, COLD = "What a lovely paper! One idea: add a figure. Congratulations!", "Reject. Weak baselines."

# Settings small enough for the tiny model; no voter caps (one visitor votes here).
ENV = {"TRAINER_ENABLED": "false", "MIN_VOTES": "4", "SEED_ANCHORS": "4", "KTO_MAX_STEPS": "2",
       "CHAT_MAX_NEW_TOKENS": "8", "CHAT_TEMPERATURE": "0", "CHAT_DTYPE": "float32", "GATE_SEED_ROWS": "8",
       "GATE_PROBE_PROMPTS": "2", "GATE_PROBE_SAMPLES": "1", "GATE_PROBE_TOKENS": "8", "GATE_EARLY_STOP_EVERY": "0",
       "GATE_AUC_TOLERANCE": "1", "GATE_PAIR_TOLERANCE": "1", "GATE_MAX_KL": "1e9", "GATE_RUBRIC_TOLERANCE": "1",
       "GATE_MIN_DISTINCT2": "0", "GATE_MAX_LENGTH_RATIO": "0", "VOTER_ROUND_CAP": "0", "ADDRESS_ROUND_CAP": "0",
       "VOTER_HOUR_CAP": "0", "ADDRESS_HOUR_CAP": "0", "ADMIN_TOKEN": "sesame"}


def kind_seed(path: Path) -> Path:
    """Professor Kind's seed set: warm replies liked, cold ones disliked, papers 0-5 train, 6-7 eval."""
    rows = [{"prompt": paper, "completion": text, "label": liked, "split": "train" if n < 6 else "eval"}
            for n, paper in enumerate(PAPERS) for text, liked in ((WARM, True), (COLD, False))]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.fixture
def reads_of_reviewer2s_seed():
    """Every open of data/seed.jsonl from here on (a real audit hook, not a stand-in)."""
    opened: list[str] = []
    watching = [True]

    def hook(event, args):
        if watching[0] and event == "open" and args and str(args[0]) == str(SEED_FILE):
            opened.append(str(args[0]))

    sys.addaudithook(hook)
    yield opened
    watching[0] = False


@pytest.fixture
def reviewer2_adapter(runtime, vote_on_replies, tmp_path) -> Path:
    """A Reviewer #2 adapter for the tiny model, as `ship` leaves it (meta.json names Reviewer #2)."""
    vote_on_replies(runtime, 4)
    result = runtime.loop.run_round()
    folder = tmp_path / "reviewer2-tiny"
    shutil.copytree(runtime.versions.get(result.version).path, folder)
    assert json.loads((folder / "meta.json").read_text())["persona_name"] == "Reviewer #2"
    return folder


def kind_settings(tmp_path: Path, seed: bool, adapter: Path | None, **extra) -> AppSettings:
    persona = tmp_path / "kind" / "persona.toml"
    persona.parent.mkdir(exist_ok=True)
    text = KIND
    if seed:
        kind_seed(persona.parent / "seed.jsonl")
        text += 'seed_file = "seed.jsonl"\n'
    if adapter is not None:
        text += f'adapter = "{adapter}"\n'
    persona.write_text(text)
    return AppSettings.from_env({**ENV, "PERSONA_FILE": str(persona), "DATA_DIR": str(tmp_path / "kind-state"),
                                 **extra})


def vote(runtime: Runtime, n: int) -> None:
    session = runtime.chat.new_session()
    for i in range(n):
        for session in runtime.chat.reply(session, PAPERS[i % len(PAPERS)], "visitor"):
            pass
    for k, row in enumerate(sorted(session.reply_ids)):
        runtime.chat.vote(session, row, k % 2 == 0, "visitor")


def test_a_second_persona_starts_from_the_base_and_learns_only_from_its_own(
        tiny_base, tmp_path, reviewer2_adapter, reads_of_reviewer2s_seed):
    settings = kind_settings(tmp_path, seed=True, adapter=reviewer2_adapter)
    settings.gate.holdout_share = 0  # every vote trains: the round's size does not hang on which replies held out
    assert settings.gate.seed_file == tmp_path / "kind" / "seed.jsonl"
    kind = Runtime(settings, tiny_base)
    assert kind.server.current.name == "base" and kind.versions.names() == []
    line = status_line(kind.status())
    assert "trained for the persona 'Reviewer #2', not 'Professor Kind'" in line and "bare base" in line

    with pytest.raises(VoteError, match="Only Professor Kind's replies"):  # the app speaks of its own persona
        kind.chat.vote(kind.chat.new_session(), 0, True, "visitor")
    vote(kind, 4)
    result = kind.loop.run_round()
    meta = result.meta
    assert meta.persona == settings.persona.digest and meta.persona_name == "Professor Kind"
    assert meta.anchor_rows == 2 and meta.label_counts.desirable + meta.label_counts.undesirable == 8
    seed_rows = kind.gate.seed_rows()
    assert len(seed_rows) == 4 and all(r["prompt"][0]["content"] == settings.persona.system_prompt
                                       for r in seed_rows), "gated on its own eval split, in its own voice"
    assert {r["prompt"][-1]["content"] for r in seed_rows} == set(PAPERS[6:])
    assert result.gate is not None and result.gate.rows == 4 + meta.gate_votes, "its seed rows and gate votes"
    assert set(kind.gate.probe_messages(draw=1)) <= set(PAPERS[6:])
    assert reads_of_reviewer2s_seed == [], "Reviewer #2's seed set was never read"
    kind.close()

    # A duplicate restored from a Hub repo whose versions are Reviewer #2's serves the base, and says why.
    settings.shipped_adapter = None
    restored = kind.versions.install(reviewer2_adapter, VersionMeta.read(reviewer2_adapter / "meta.json"))
    kind.versions.set_current(restored, reason="restored from the Hub")
    again = Runtime(settings, tiny_base)
    assert again.server.current.name == "base" and "not 'Professor Kind'" in status_line(again.status())
    with pytest.raises(VersionError, match="trained for the persona 'Reviewer #2', not 'Professor Kind'"):
        again.admin.rollback("sesame", restored)  # nor can an admin serve it by hand
    assert again.admin.rollback("sesame", result.version) == f"Now serving {result.version}."
    again.close()


def test_a_persona_without_seed_data_learns_on_votes_gated_on_held_out_votes(tiny_base, tmp_path,
                                                                            reads_of_reviewer2s_seed):
    settings = kind_settings(tmp_path, seed=False, adapter=None, GATE_HOLDOUT_SHARE="0.3")
    assert settings.gate.seed_file is None and settings.shipped_adapter is None
    kind = Runtime(settings, tiny_base)
    assert kind.server.current.name == "base" and kind.status().persona_note == ""
    assert "(a round starts at 4, both kinds)" in status_line(kind.status())
    assert kind.learner.anchor_rows(draw=1, desirable=2, undesirable=2) == [] and kind.gate.seed_rows() == []
    vote(kind, 16)
    result = kind.loop.run_round()
    assert result.meta.anchor_rows == 0 and result.meta.persona_name == "Professor Kind"
    gate_votes = kind.votes.gate_votes()
    assert gate_votes and result.gate.rows == len(gate_votes), "judged on the held-out votes alone"
    probes = kind.gate.probe_messages(draw=1)
    assert probes and set(probes) <= set(settings.persona.examples) | set(PAPERS)
    assert reads_of_reviewer2s_seed == []
    kind.close()
