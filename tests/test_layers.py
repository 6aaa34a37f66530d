"""The package stands in layers (pyproject.toml [tool.importlinter], README "How the code is laid out"): a wrong
import fails with the pair it broke, and the command line's light commands load neither torch nor TRL."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=root, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(root)}, timeout=120)


def test_the_layers_hold():
    run = lint(ROOT)
    assert run.returncode == 0, run.stdout + run.stderr


def test_an_import_against_the_layers_fails_naming_the_pair(tmp_path):
    shutil.copytree(ROOT / "trainer", tmp_path / "trainer", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    early = tmp_path / "trainer" / "train" / "early_stopping.py"
    early.write_text(early.read_text() + "\nfrom ..gate.evaluate import evaluate  # noqa: E402,F401\n")
    run = lint(tmp_path)
    assert run.returncode != 0
    assert "trainer.train is not allowed to import trainer.gate" in run.stdout
    assert "trainer.train.early_stopping -> trainer.gate.evaluate" in run.stdout


def test_listing_versions_loads_neither_torch_nor_trl(tmp_path):
    code = ("import sys; from trainer.__main__ import main; code = main(['versions']); "
            "print(code, sorted(m for m in ('torch', 'trl', 'transformers', 'peft') if m in sys.modules))")
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "DATA_DIR": str(tmp_path / "state")})
    assert run.returncode == 0, run.stderr
    assert "* base" in run.stdout and run.stdout.strip().endswith("0 []"), run.stdout
