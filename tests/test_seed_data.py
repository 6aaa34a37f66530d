"""The seed preference set: deterministic, big enough, balanced, split by paper, loadable both ways."""

import collections
import importlib.util
import json
import statistics
from pathlib import Path

import pytest
from datasets import load_dataset

from trainer.data import conversational, paired_rows
from trainer.store.files import DataFileError, read_preferences, write_rows

DATA = Path(__file__).resolve().parent.parent / "data"


def generator():
    spec = importlib.util.spec_from_file_location("make_seed", DATA / "make_seed.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generator_is_deterministic_and_matches_the_committed_file(tmp_path):
    make_seed = generator()
    first, second = make_seed.generate(), make_seed.generate()
    assert first == second
    committed = [json.loads(line) for line in (DATA / "seed.jsonl").read_text(encoding="utf-8").splitlines()]
    assert committed == first, "data/seed.jsonl is stale: rerun python data/make_seed.py"


def test_size_balance_and_splits():
    rows = read_preferences(DATA / "seed.jsonl")
    papers = {r["paper_id"] for r in rows}
    assert len(rows) >= 1000 and len(papers) >= 300
    assert 0.45 <= sum(r["label"] for r in rows) / len(rows) <= 0.55
    split_of = collections.defaultdict(set)
    for r in rows:
        split_of[r["paper_id"]].add(r["split"])
    assert all(len(s) == 1 for s in split_of.values()), "a paper must not be in both splits"
    train = read_preferences(DATA / "seed.jsonl", split="train")
    held_out = read_preferences(DATA / "seed.jsonl", split="eval")
    assert len(train) + len(held_out) == len(rows)
    assert {r["paper_id"] for r in train}.isdisjoint({r["paper_id"] for r in held_out})
    assert len({r["field"] for r in rows}) >= 10 and len({r["prompt"] for r in rows}) == len(papers)


def test_liked_reviews_are_harsh_and_specific_disliked_are_not():
    rows = read_preferences(DATA / "seed.jsonl")
    for r in rows[:200]:
        if r["label"]:
            assert "Recommendation:" in r["completion"] and r["style"].startswith("harsh")
        else:
            assert "Recommendation:" not in r["completion"]
    # Harsh reviews name the paper's own dataset or metric, not just generic complaints.
    specific = sum(1 for r in rows if r["label"] and any(w in r["completion"] for w in r["prompt"].split(" ")
                                                          if len(w) > 6))
    assert specific / sum(r["label"] for r in rows) > 0.9


def test_length_does_not_tell_the_labels_apart():
    """Liked and disliked replies are equally long, so a round cannot learn "longer is better"."""
    rows = read_preferences(DATA / "seed.jsonl")
    liked = [len(r["completion"].split()) for r in rows if r["label"]]
    disliked = [len(r["completion"].split()) for r in rows if not r["label"]]
    # AUC of length as a liked-vs-disliked classifier: 0.5 is no signal at all.
    wins = sum((a > b) + 0.5 * (a == b) for a in liked for b in disliked)
    assert 0.4 <= wins / (len(liked) * len(disliked)) <= 0.6
    assert 0.85 <= statistics.median(liked) / statistics.median(disliked) <= 1.15
    styles = collections.Counter(r["style"] for r in rows if not r["label"])
    assert set(styles) == {"generic praise", "vague", "off-persona", "parroting", "cut off"}
    # A cut-off reply never ends a sentence; a liked one always does, with its verdict.
    assert all(not r["completion"].endswith((".", "!", "?")) for r in rows if r["style"] == "cut off")
    assert all(r["completion"].endswith(".") for r in rows if r["label"])


def test_paired_form_derives_from_the_same_file():
    rows = read_preferences(DATA / "seed.jsonl", split="eval")
    pairs = paired_rows(rows)
    assert len(pairs) == len(rows) // 2
    by_prompt = collections.defaultdict(lambda: {True: set(), False: set()})
    for r in rows:
        by_prompt[r["prompt"]][r["label"]].add(r["completion"])
    for p in pairs:
        assert p["chosen"] in by_prompt[p["prompt"]][True] and p["rejected"] in by_prompt[p["prompt"]][False]


def test_conversational_rows_use_the_persona_prompt():
    row = conversational({"prompt": "Title: T", "completion": "Reject.", "label": True}, "You are Reviewer #2.")
    assert row == {"prompt": [{"role": "system", "content": "You are Reviewer #2."},
                              {"role": "user", "content": "Title: T"}],
                   "completion": [{"role": "assistant", "content": "Reject."}], "label": True,
                   "ends_turn": True}


@pytest.mark.parametrize("suffix", ["jsonl", "parquet"])
def test_export_round_trips_through_load_dataset(tmp_path, suffix):
    rows = [conversational(r, "sys") for r in read_preferences(DATA / "seed.jsonl")[:8]]
    kto = write_rows(rows, tmp_path / f"kto.{suffix}")
    loaded = load_dataset("json" if suffix == "jsonl" else "parquet", data_files=str(kto), split="train")
    assert [dict(r) for r in loaded] == rows
    pairs = write_rows(paired_rows(rows), tmp_path / f"pairs.{suffix}")
    loaded_pairs = load_dataset("json" if suffix == "jsonl" else "parquet", data_files=str(pairs), split="train")
    assert loaded_pairs.column_names == ["prompt", "chosen", "rejected"] and len(loaded_pairs) == 4
    assert read_preferences(kto) == rows


@pytest.mark.parametrize("content,message", [
    ('{"prompt": "p", "completion": "c"}\n', "row 1: missing field 'label'"),
    ('{"prompt": "p", "completion": "c", "label": "yes"}\n', "field 'label' must be true or false"),
    ('{"prompt": "", "completion": "c", "label": true}\n', "field 'prompt' is empty"),
    ('{"prompt": "p", "completion": [{"role": 1}], "label": true}\n', "field 'completion' must be a string"),
    ('{"prompt": "p", "completion": "c", "label": true}\nnot json\n', ":2: not valid JSON"),
    ('', "no rows"),
])
def test_bad_files_get_clear_errors(tmp_path, content, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(DataFileError, match=message):
        read_preferences(path)


def test_unknown_split_names_the_splits_present():
    with pytest.raises(DataFileError, match="splits present: eval, train"):
        read_preferences(DATA / "seed.jsonl", split="test")
