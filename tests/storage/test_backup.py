"""Backups round-trip on SQLite (online backup) and Postgres (pg_dump / psql restore)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from ember.errors import BackupError, BackupInvalid, CollectionNotFound
from ember.storage import BackupTool, Database, SqlAuditLog, SqlCollectionRepository
from ember.storage.records import AuditRecord

pytestmark = pytest.mark.slow


def test_backup_then_restore_brings_back_the_old_state(database: Database, tmp_path: Path) -> None:
    collections = SqlCollectionRepository(database)
    collections.create("kept", metadata={"k": "v"})
    SqlAuditLog(database).append(AuditRecord("alice", "collection.create", "kept", "ok"))
    tool = BackupTool(database)
    written = tool.backup(tmp_path / "ember.backup")
    assert written.stat().st_size > 0
    assert not list(tmp_path.glob(".*partial"))

    collections.create("added-later")
    collections.delete("kept")
    tool.restore(written)

    assert [c.name for c in collections.list()] == ["kept"]
    assert collections.get("kept").metadata == {"k": "v"}
    assert [e.actor for e in SqlAuditLog(database).list()] == ["alice"]
    with pytest.raises(CollectionNotFound):
        collections.get("added-later")


def test_sqlite_backup_is_online_while_writes_continue(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'live.db'}")
    from ember.storage import Migrator

    Migrator(database).upgrade()
    collections = SqlCollectionRepository(database)
    stop = threading.Event()

    def writer() -> None:
        n = 0
        while not stop.is_set():
            collections.create(f"c{n:05d}")
            n += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        backups = [BackupTool(database).backup(tmp_path / f"b{i}.db") for i in range(3)]
    finally:
        stop.set()
        thread.join()
    restored = Database(f"sqlite:///{backups[-1]}")
    names = [c.name for c in SqlCollectionRepository(restored).list(limit=100000)]
    assert names == sorted(names)
    assert names == [f"c{n:05d}" for n in range(len(names))]
    database.dispose()
    restored.dispose()


def test_restore_rejects_a_file_that_is_not_a_backup(database: Database, tmp_path: Path) -> None:
    collections = SqlCollectionRepository(database)
    collections.create("precious")
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(BackupInvalid):
        BackupTool(database).restore(junk)
    with pytest.raises(BackupInvalid, match="no such file"):
        BackupTool(database).restore(tmp_path / "missing")
    assert [c.name for c in collections.list()] == ["precious"]


def test_backup_into_a_missing_directory_fails_clearly(database: Database, tmp_path: Path) -> None:
    with pytest.raises(BackupError, match="does not exist"):
        BackupTool(database).backup(tmp_path / "no" / "such" / "dir" / "b")
