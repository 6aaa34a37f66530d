"""`python -m trainer`: help without torch, a round from the vote store published as the app would, versions,
clear errors. The commands run in subprocesses on a tiny random model saved as a model folder."""

import os
import subprocess
import sys

from huggingface_hub import ModelCard

from trainer.config import SEED_FILE
from trainer.store.versions import VersionStore
from trainer.store.votes import StoredReply, VoteStore

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(env_extra: dict, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **env_extra}
    return subprocess.run([sys.executable, "-m", "trainer", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)


def test_help_names_the_settings_without_importing_torch():
    code = ("import runpy, sys\nsys.argv = ['trainer', '--help']\ntry:\n    runpy.run_module('trainer', "
            "run_name='__main__')\nexcept SystemExit:\n    pass\n"
            "print('loaded:', sorted(m for m in ('torch', 'trl', 'transformers', 'peft', 'datasets') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("loaded: []"), out.stdout[-500:]
    for setting in ("MIN_VOTES", "DATA_DIR", "ADMIN_TOKEN", "GATE_MAX_KL", "CHAT_TEMPERATURE", "KTO_<FIELD>"):
        assert setting in out.stdout, setting


def test_versions_and_bad_input(tmp_path):
    env = {"DATA_DIR": str(tmp_path)}
    listed = run(env, "versions")
    assert listed.returncode == 0 and "* base" in listed.stdout
    bad = run(env, "versions", "--serve", "v0007")
    assert bad.returncode == 2 and "no version named 'v0007'" in bad.stderr
    setting = run({**env, "MIN_VOTES": "lots"}, "versions")
    assert setting.returncode == 2 and "MIN_VOTES='lots' is not a valid int" in setting.stderr


def test_train_publishes_a_version_from_the_vote_store(tmp_path, tiny_model_dir):
    # One step reads 4 rows: the 4 votes, no anchors (with them, anchors would take half the round).
    env = {"DATA_DIR": str(tmp_path), "MODEL_ID": str(tiny_model_dir), "KTO_MAX_STEPS": "1", "SHIPPED_ADAPTER": "",
           "DEVICE": "cpu", "GATE_ENABLED": "false", "GATE_EARLY_STOP_EVERY": "0", "GATE_HOLDOUT_SHARE": "0",
           "SEED_ANCHORS": "0"}
    empty = run(env, "train")
    assert empty.returncode == 2 and "both kinds" in empty.stderr
    votes = VoteStore(tmp_path / "votes.sqlite3")
    prompt = [{"role": "system", "content": "You are Reviewer #2."}, {"role": "user", "content": "My paper."}]
    for i in range(4):
        votes.add_reply(StoredReply(id=f"r{i}", session="s", prompt=prompt, version="base",
                              completion="Weak baselines. Reject." if i % 2 else "Great work!"))
        votes.vote(f"r{i}", "s", bool(i % 2))
    trained = run(env, "train")
    assert trained.returncode == 0, trained.stderr[-2000:]
    assert "published and serving v0001" in trained.stdout
    assert VersionStore(tmp_path / "versions").current() == "v0001" and votes.waiting_counts() == (0, 0)
    listed = run(env, "versions")
    assert "* v0001" in listed.stdout and "base" in listed.stdout
    back = run(env, "versions", "--serve", "base")
    assert back.returncode == 0 and VersionStore(tmp_path / "versions").current() == "base"


def test_train_from_a_file_on_a_balanced_sample_of_its_rows(tmp_path, tiny_model_dir):
    env = {"DATA_DIR": str(tmp_path), "MODEL_ID": str(tiny_model_dir), "SHIPPED_ADAPTER": "", "DEVICE": "cpu"}
    trained = run(env, "train", "--data", str(SEED_FILE), "--split", "train", "--parent", "base", "--rows", "6",
                  "--steps", "1")
    assert trained.returncode == 0, trained.stderr[-2000:]
    meta = VersionStore(tmp_path / "versions").get("v0001").meta
    # 3 liked and 3 disliked rows, in batches of 4 with both labels; one step reads one batch: 2 of each.
    assert meta.rows == 4 and (meta.label_counts.desirable, meta.label_counts.undesirable) == (2, 2)
    assert "--rows 6" in meta.command and meta.split == "train"

    # Shipped as a small folder with a model card, then scored into the card's eval table.
    target = tmp_path / "my-persona-v1"
    assert run(env, "ship", "v0001", str(target)).returncode == 0
    card = ModelCard.load(target / "README.md")
    assert card.data.library_name == "peft" and card.data.base_model == str(tiny_model_dir)
    assert not card.data.eval_results and "Not scored yet" in card.text
    scored = run(env, "eval", "--data", str(SEED_FILE), "--split", "eval", "--limit", "8", "--card", str(target))
    assert scored.returncode == 0, scored.stderr[-2000:]
    card = ModelCard.load(target / "README.md")
    metrics = {r.metric_type: r.metric_value for r in card.data.eval_results}
    assert set(metrics) == {"roc_auc", "reward_margin", "kl_to_base"}
    assert f"| my-persona-v1 | 8 | {metrics['roc_auc']:.3f} |" in card.text and "| base | 8 | 0.500 |" in card.text


def test_paired_losses_train_from_picks_and_files_and_export_pairs(tmp_path, tiny_model_dir):
    env = {"DATA_DIR": str(tmp_path), "MODEL_ID": str(tiny_model_dir), "KTO_MAX_STEPS": "1", "SHIPPED_ADAPTER": "",
           "DEVICE": "cpu", "GATE_ENABLED": "false", "GATE_EARLY_STOP_EVERY": "0", "GATE_HOLDOUT_SHARE": "0",
           "SEED_ANCHORS": "0"}
    votes = VoteStore(tmp_path / "votes.sqlite3")
    prompt = [{"role": "system", "content": "You are Reviewer #2."}, {"role": "user", "content": "My paper."}]
    for i in range(3):
        for side, text in (("a", "Weak baselines. Reject."), ("b", "Great work!")):
            votes.add_reply(StoredReply(id=f"{side}{i}", session="s", prompt=prompt, version="base", completion=text))
        votes.pick(f"c{i}", f"a{i}", f"b{i}", "s", "a" if i < 2 else "neither")
    votes.vote("a0", "s", True)
    votes.vote("b0", "s", False)

    trained = run(env, "train", "--loss", "aot")
    assert trained.returncode == 0, trained.stderr[-2000:]
    meta = VersionStore(tmp_path / "versions").get("v0001").meta
    assert meta.loss == "aot" and sorted(meta.picks) == ["c0:s", "c1:s"] and meta.votes == []
    assert votes.waiting_pick_counts() == (0, 1) and votes.waiting_counts() == (1, 1), "thumbs wait for kto"

    paired = run(env, "export", "--out", str(tmp_path / "pairs.jsonl"), "--paired")
    assert paired.returncode == 0 and "wrote 3 paired rows" in paired.stdout  # 2 picks + 1 pair of thumbs
    unpaired = run(env, "export", "--out", str(tmp_path / "rows.jsonl"))
    assert "wrote 8 KTO rows" in unpaired.stdout  # 2 thumbs + 3 picks as 2 rows each

    from_file = run(env, "train", "--loss", "ipo", "--data", str(SEED_FILE), "--split", "train", "--parent", "base",
                    "--rows", "8")
    assert from_file.returncode == 0, from_file.stderr[-2000:]
    meta = VersionStore(tmp_path / "versions").get("v0002").meta
    assert meta.loss == "ipo" and meta.rows == 4 and "--loss ipo" in meta.command  # 8 rows make 4 pairs


def test_a_persona_is_seeded_labelled_and_trained_from_the_command_line(tmp_path, tiny_model_dir):
    """The newcomer's path: draft replies, label them, name the file in the persona, train its v1, ship it."""
    import json

    persona = tmp_path / "kind.toml"
    persona.write_text('[persona]\nname = "Professor Kind"\nsystem_prompt = "You are Professor Kind, a warm mentor."\n'
                       'examples = ["Title: Sorting With Love. Abstract: We sort lists 2% faster."]\n')
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("".join(f"Title: Paper {n}. Abstract: We study kind thing {n}.\n" for n in range(7)))
    env = {"DATA_DIR": str(tmp_path / "state"), "MODEL_ID": str(tiny_model_dir), "DEVICE": "cpu",
           "PERSONA_FILE": str(persona), "CHAT_MAX_NEW_TOKENS": "8", "CHAT_DTYPE": "float32"}
    seed = tmp_path / "seed.jsonl"
    drafted = run(env, "seed", "--out", str(seed), "--prompts", str(prompts), "--samples", "2")
    assert drafted.returncode == 0, drafted.stderr[-2000:]
    rows = [json.loads(line) for line in seed.read_text().splitlines()]
    assert len(rows) == 16 and all(r["label"] is None for r in rows)
    assert {r["split"] for r in rows} == {"train", "eval"} and sum(r["split"] == "eval" for r in rows) == 4
    assert "Set each \"label\"" in drafted.stdout
    unlabelled = run(env, "train", "--data", str(seed), "--split", "train", "--parent", "base", "--steps", "1")
    assert unlabelled.returncode == 2 and "row 1: field 'label' must be true or false, got None" in unlabelled.stderr
    again = run(env, "seed", "--out", str(seed), "--prompts", str(prompts))
    assert again.returncode == 2 and "--force" in again.stderr, "a draft being labelled is never written over"

    seed.write_text("".join(json.dumps({**r, "label": i % 2 == 0}) + "\n" for i, r in enumerate(rows)))
    persona.write_text(persona.read_text() + 'seed_file = "seed.jsonl"\n')
    trained = run(env, "train", "--data", str(seed), "--split", "train", "--parent", "base", "--steps", "1")
    assert trained.returncode == 0, trained.stderr[-2000:]
    shipped = run(env, "ship", "v0001", str(tmp_path / "kind-v1"))
    assert shipped.returncode == 0, shipped.stderr[-2000:]
    meta = json.loads((tmp_path / "kind-v1" / "meta.json").read_text())
    assert meta["persona_name"] == "Professor Kind"
    assert "Professor Kind" in (tmp_path / "kind-v1" / "README.md").read_text()
