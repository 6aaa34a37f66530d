"""Versions: atomic publish, the CURRENT pointer, and nothing half-written ever visible."""

import json

import pytest

from trainer.contracts import VersionMeta
from trainer.store.versions import BASE, VersionError, VersionStore


def stage_adapter(path, payload: str = "weights") -> None:
    (path / "adapter_config.json").write_text(json.dumps({"r": 8}))
    (path / "adapter_model.safetensors").write_text(payload)


def test_fresh_store_serves_base(tmp_path):
    store = VersionStore(tmp_path)
    assert store.current() == BASE and store.names() == [] and store.get(BASE).path is None


def test_publish_names_in_order_and_pointer_moves_only_when_asked(tmp_path):
    store = VersionStore(tmp_path)
    for expected in ("v0001", "v0002"):
        with store.staging() as staging:
            stage_adapter(staging)
            assert store.publish(staging, VersionMeta(parent=store.current())) == expected
    assert store.current() == BASE, "publishing alone must not serve"
    store.set_current("v0002", reason="test")
    assert store.current() == "v0002"
    assert store.get("v0002").meta.parent == BASE and store.get("v0002").meta.name == "v0002"
    store.set_current(BASE, reason="rollback")
    assert store.current() == BASE
    assert [(e["event"], e["version"]) for e in store.history()] == [
        ("publish", "v0001"), ("publish", "v0002"), ("serve", "v0002"), ("serve", BASE)]
    assert not list(tmp_path.glob(".staging-*")) and not list(tmp_path.glob(".CURRENT-*"))


def test_crash_while_staging_leaves_nothing_visible(tmp_path):
    store = VersionStore(tmp_path)
    with store.staging() as staging:
        stage_adapter(staging)
        store.set_current(store.publish(staging, VersionMeta()), reason="test")
    with pytest.raises(RuntimeError, match="boom"):
        with store.staging() as staging:
            (staging / "adapter_model.safetensors").write_text("half")
            raise RuntimeError("boom")
    assert store.names() == ["v0001"] and store.current() == "v0001"
    assert not list(tmp_path.glob(".staging-*"))


def test_leftovers_of_a_killed_process_are_swept_and_ignored(tmp_path):
    store = VersionStore(tmp_path)
    killed = tmp_path / ".staging-killed"
    killed.mkdir()
    stage_adapter(killed)
    assert store.names() == []
    VersionStore(tmp_path)
    assert not killed.exists()


def test_refuses_unknown_versions_and_incomplete_publishes(tmp_path):
    store = VersionStore(tmp_path)
    with pytest.raises(VersionError, match="no version named 'v0009'"):
        store.set_current("v0009", reason="test")
    with store.staging() as staging, pytest.raises(VersionError, match="no adapter_config.json"):
        store.publish(staging, VersionMeta())
    (tmp_path / "CURRENT").write_text("v0042\n")  # a pointer to a version that vanished
    assert store.current() == BASE
