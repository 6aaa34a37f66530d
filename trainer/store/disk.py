"""DATA_DIR must be a local disk: SQLite's write-ahead log needs POSIX file locks, and publishing a version
renames a staging folder atomically (versions.py). Mounted object-store buckets (a Space's /data bucket,
s3fs, gcsfuse) provide neither: the database corrupts or publishing half-writes. Votes and versions
outlive a Space's wiped disk through the Hub (HUB_REPO) instead.
"""

from __future__ import annotations

import fcntl
import os
import uuid
from pathlib import Path

from ..contracts import TrainerError


class UnsafeDataDir(TrainerError, RuntimeError):
    """DATA_DIR's file system cannot lock a file or rename one atomically; the message says what to use."""


def check_local_disk(folder: str | Path) -> None:
    """Lock a probe file in `folder` and rename it over another, then remove both; UnsafeDataDir if the file
    system refuses either. Creates `folder` if it is missing."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    probe = folder / f".disk-probe-{uuid.uuid4().hex[:8]}"
    moved = probe.with_suffix(".moved")
    try:
        with open(probe, "w") as handle:
            fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.lockf(handle, fcntl.LOCK_UN)
        moved.write_text("")
        os.replace(probe, moved)
    except OSError as err:
        raise UnsafeDataDir(
            f"DATA_DIR {folder} cannot hold the votes database: its file system refused a file lock or an atomic "
            f"rename ({err.strerror or err}). SQLite and version publishing need a local disk; a mounted bucket "
            "is not one. Point DATA_DIR at a local folder, and set HUB_REPO to keep votes and versions across "
            "restarts.") from None
    finally:
        for path in (probe, moved):
            path.unlink(missing_ok=True)
