"""Preference files in and out: JSONL / parquet / anything `datasets.load_dataset` reads.

Reading checks every row and names the file, the row and the field at fault. Writing produces
files that `datasets.load_dataset("json" | "parquet", data_files=...)` loads in one line.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from datasets import Dataset, load_dataset

from ..contracts import TrainerError


class DataFileError(TrainerError, ValueError):
    """A preference file that cannot be used; the message names the file, row and field."""


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_text_or_messages(value: object, where: str) -> None:
    if isinstance(value, str):
        if not value.strip():
            raise DataFileError(f"{where} is empty")
        return
    if not isinstance(value, list) or not value or not all(
            isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
            for m in value):
        raise DataFileError(f"{where} must be a string or a non-empty list of {{role, content}} messages")


def read_preferences(path: str | Path, split: str | None = None) -> list[dict]:
    """Unpaired rows (prompt, completion, label), optionally only those whose `split` field matches."""
    path = Path(path)
    if not path.exists():
        raise DataFileError(f"{path}: no such file")
    if path.suffix in (".jsonl", ".json"):
        rows = []
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as err:
                    raise DataFileError(f"{path}:{number}: not valid JSON ({err.msg})") from None
                if not isinstance(row, dict):
                    raise DataFileError(f"{path}:{number}: each line must be a JSON object")
                rows.append(row)
    else:
        try:
            kind = {".parquet": "parquet", ".csv": "csv"}.get(path.suffix)
            dataset = load_dataset(kind, data_files=str(path), split="train") if kind else \
                Dataset.load_from_disk(str(path))
        except Exception as err:
            raise DataFileError(f"{path}: cannot be read as a dataset ({err})") from None
        rows = list(dataset)
    for number, row in enumerate(rows, 1):
        where = f"{path}: row {number}"
        missing = [f for f in ("prompt", "completion", "label") if f not in row]
        if missing:
            raise DataFileError(f"{where}: missing field {missing[0]!r} (need prompt, completion, label)")
        _check_text_or_messages(row["prompt"], f"{where}: field 'prompt'")
        _check_text_or_messages(row["completion"], f"{where}: field 'completion'")
        if not isinstance(row["label"], bool):
            raise DataFileError(f"{where}: field 'label' must be true or false, got {row['label']!r}")
    if split is not None:
        known = sorted({str(r.get("split")) for r in rows})
        rows = [r for r in rows if r.get("split") == split]
        if not rows:
            raise DataFileError(f"{path}: no rows with split={split!r}; splits present: {', '.join(known)}")
    if not rows:
        raise DataFileError(f"{path}: no rows")
    return rows


def write_rows(rows: list[dict], path: str | Path) -> Path:
    """Write rows as JSONL or parquet (by the file's suffix)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        Dataset.from_list(rows).to_parquet(str(path))
    elif path.suffix in (".jsonl", ".json"):
        with open(path, "w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    else:
        raise DataFileError(f"{path}: write .jsonl or .parquet")
    return path
