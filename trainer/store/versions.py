"""Adapter versions on disk: directories published by atomic rename, and a `CURRENT` pointer file.

    versions/
      v0001/  adapter_model.safetensors, adapter_config.json, meta.json
      v0002/  ...
      CURRENT         one line: the serving version ("base" = no adapter), replaced atomically
      history.jsonl   every publish and pointer move, appended

A round writes into a hidden staging directory beside the versions and renames it into place
only once every file is complete and synced, so a crash mid-round leaves no half-written version
visible and the pointer still names the last good one. Staging leftovers are swept on open.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from ..contracts import TrainerError, VersionInfo, VersionMeta

BASE = "base"
NAME = re.compile(r"^v(\d{4,})$")
STAGING_PREFIX = ".staging-"


class VersionError(TrainerError, ValueError):
    """Names a version that does not exist, or a publish that cannot happen."""


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


class VersionStore:
    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        # Called after every publish and pointer move (the Hub sync pushes them at once).
        self.on_change: Callable[[], None] = lambda: None
        for leftover in self.root.glob(STAGING_PREFIX + "*"):
            shutil.rmtree(leftover, ignore_errors=True)

    @property
    def pointer(self) -> Path:
        return self.root / "CURRENT"

    def current(self) -> str:
        try:
            name = self.pointer.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return BASE
        return name if name == BASE or (self.root / name).is_dir() else BASE

    def names(self) -> list[str]:
        found = [p.name for p in self.root.iterdir() if p.is_dir() and NAME.match(p.name)]
        return sorted(found, key=lambda n: int(NAME.match(n).group(1)))

    def get(self, name: str) -> VersionInfo:
        if name == BASE:
            return VersionInfo(BASE, None, VersionMeta(name=BASE))
        path = self.root / name
        if not NAME.match(name) or not path.is_dir():
            raise VersionError(f"no version named {name!r}; known: {', '.join([BASE] + self.names())}")
        return VersionInfo(name, path, VersionMeta.read(path / "meta.json"))

    def list(self) -> list[VersionInfo]:
        return [self.get(BASE)] + [self.get(n) for n in self.names()]

    @contextmanager
    def staging(self) -> Iterator[Path]:
        """A scratch directory for a version being written; removed unless it was published."""
        path = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=self.root))
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)

    def publish(self, staging: Path, meta: VersionMeta) -> str:
        """Give a complete staging directory the next version name, atomically; returns the name.

        Publishing does not serve the version: `set_current` moves the pointer.
        """
        if not (staging / "adapter_config.json").is_file():
            raise VersionError(f"{staging} holds no adapter_config.json; nothing to publish")
        with self._lock:
            names = self.names()
            number = int(NAME.match(names[-1]).group(1)) + 1 if names else 1
            name = f"v{number:04d}"
            meta = dataclasses.replace(meta, name=name, published_at=time.time())
            (staging / "meta.json").write_text(meta.to_json(), encoding="utf-8")
            for item in staging.iterdir():
                with open(item, "rb") as handle:
                    os.fsync(handle.fileno())
            _fsync_dir(staging)
            os.rename(staging, self.root / name)
            _fsync_dir(self.root)
            self._record({"event": "publish", "version": name, "parent": meta.parent})
        self.on_change()
        return name

    def install(self, source: Path, meta: VersionMeta) -> str:
        """Publish a copy of an adapter directory made elsewhere (e.g. one shipped with the app)."""
        with self.staging() as staging:
            for name in ("adapter_config.json", "adapter_model.safetensors"):
                shutil.copy2(source / name, staging / name)
            return self.publish(staging, meta)

    def set_current(self, name: str, reason: str) -> None:
        """Move the serving pointer to `name` (a published version or "base"), atomically."""
        self.get(name)
        with self._lock:
            previous = self.current()
            _write_atomic(self.pointer, name + "\n")
            self._record({"event": "serve", "version": name, "previous": previous, "reason": reason})
        self.on_change()

    def adopt(self, source: Path) -> int:
        """Take in the versions, pointer and history of another versions folder (restored from the Hub) when
        this one has no version yet; returns how many versions. Each is published by rename, complete."""
        found = sorted((p for p in Path(source).iterdir() if p.is_dir() and NAME.match(p.name)
                        and (p / "adapter_config.json").is_file() and (p / "meta.json").is_file()),
                       key=lambda p: int(NAME.match(p.name).group(1)))
        if not found:
            return 0
        with self._lock:
            if self.names():
                raise VersionError(f"{self.root} has versions already; adopt only into an empty store")
            for version in found:
                with self.staging() as staging:
                    shutil.copytree(version, staging, dirs_exist_ok=True)
                    os.rename(staging, self.root / version.name)
            if (Path(source) / "history.jsonl").is_file():
                shutil.copy2(Path(source) / "history.jsonl", self.root / "history.jsonl")
            if (Path(source) / "CURRENT").is_file():
                _write_atomic(self.pointer, (Path(source) / "CURRENT").read_text(encoding="utf-8"))
            _fsync_dir(self.root)
        return len(found)

    def history(self) -> list[dict[str, Any]]:
        path = self.root / "history.jsonl"
        if not path.exists():
            return []
        events = []
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                events.append(json.loads(line))
            except ValueError:  # a line cut short by a kill mid-append; the rest still reads
                continue
        return events

    def _record(self, event: dict[str, Any]) -> None:
        with open(self.root / "history.jsonl", "a", encoding="utf-8") as handle:
            handle.write(json.dumps({**event, "at": time.time()}) + "\n")
