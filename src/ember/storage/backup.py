"""Backups: an online copy of SQLite, ``pg_dump``/``pg_restore`` for Postgres.

A backup is written to a temporary file beside the target and renamed into place, so a failed
backup never leaves a half-written file at ``PATH``. A restore first checks the file is a
backup of an ember database, then replaces the whole database in one step: the SQLite backup
API copies pages under a lock, and the Postgres restore runs in a single transaction, so a
failed restore leaves the database as it was.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

from ember.errors import BackupError, BackupInvalid
from ember.storage.database import Database

__all__ = ["BackupTool", "postgres_binary"]


def postgres_binary(name: str) -> str:
    """Path of a Postgres client program: the newest installed, else the one on ``PATH``.

    :raises BackupError: it is not installed.
    """
    candidates = sorted(
        Path("/usr/lib/postgresql").glob(f"*/bin/{name}"),
        key=lambda path: int(path.parent.parent.name) if path.parent.parent.name.isdigit() else 0,
    )
    if candidates:
        return str(candidates[-1])
    found = shutil.which(name)
    if found is None:
        raise BackupError(f"{name} is not installed (Debian package postgresql-client)")
    return found


class BackupTool:
    """Backs up and restores one :class:`Database`."""

    def __init__(self, database: Database) -> None:
        self._db = database

    def backup(self, path: Path) -> Path:
        """Write a backup of the live database to ``path`` and return it.

        :raises BackupError: the database could not be read or ``path`` written.
        """
        path = path.expanduser().resolve()
        if path.is_dir():
            raise BackupError(f"{path} is a directory; give a file name")
        if not path.parent.is_dir():
            raise BackupError(f"directory {path.parent} does not exist")
        partial = path.with_name(f".{path.name}.partial")
        try:
            if self._db.dialect == "sqlite":
                self._backup_sqlite(partial)
            else:
                self._run(
                    [
                        postgres_binary("pg_dump"),
                        "--format=custom",
                        "--no-owner",
                        "--no-privileges",
                        f"--file={partial}",
                        self._libpq_url(),
                    ]
                )
            partial.replace(path)
        finally:
            partial.unlink(missing_ok=True)
        return path

    def restore(self, path: Path) -> None:
        """Replace the whole database with the backup at ``path``.

        :raises BackupInvalid: ``path`` is missing or is not an ember backup for this kind
            of database; nothing was changed.
        :raises BackupError: the restore failed; the database is as it was before.
        """
        path = path.expanduser().resolve()
        if not path.is_file():
            raise BackupInvalid(f"{path}: no such file")
        if self._db.dialect == "sqlite":
            self._restore_sqlite(path)
        else:
            self._restore_postgres(path)

    def _sqlite_file(self) -> str:
        database = self._db.url.database
        if not database or database == ":memory:":
            raise BackupError("an in-memory SQLite database cannot be backed up")
        return str(Path(database).expanduser())

    def _backup_sqlite(self, target: Path) -> None:
        try:
            source = sqlite3.connect(self._sqlite_file())
            try:
                destination = sqlite3.connect(target)
                try:
                    source.backup(destination)
                finally:
                    destination.close()
            finally:
                source.close()
        except sqlite3.Error as exc:
            raise BackupError(f"SQLite backup failed: {exc}") from exc

    def _restore_sqlite(self, path: Path) -> None:
        try:
            backup = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        except sqlite3.Error as exc:
            raise BackupInvalid(f"{path}: cannot be opened as SQLite: {exc}") from exc
        try:
            try:
                check = backup.execute("PRAGMA quick_check").fetchone()
                tables = {
                    row[0]
                    for row in backup.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
                }
            except sqlite3.DatabaseError as exc:
                raise BackupInvalid(f"{path}: not a SQLite database: {exc}") from exc
            if check is None or check[0] != "ok":
                raise BackupInvalid(f"{path}: integrity check failed: {check}")
            if "alembic_version" not in tables:
                raise BackupInvalid(f"{path}: not an ember database (no alembic_version table)")
            self._db.dispose()
            try:
                live = sqlite3.connect(self._sqlite_file())
                try:
                    backup.backup(live)
                finally:
                    live.close()
            except sqlite3.Error as exc:
                raise BackupError(f"SQLite restore failed: {exc}") from exc
        finally:
            backup.close()

    def _restore_postgres(self, path: Path) -> None:
        listing = subprocess.run(
            [postgres_binary("pg_restore"), "--list", str(path)],
            capture_output=True,
            text=True,
            check=False,
        )
        if listing.returncode != 0:
            raise BackupInvalid(f"{path}: not a pg_dump archive: {listing.stderr.strip()}")
        if " alembic_version" not in listing.stdout:
            raise BackupInvalid(f"{path}: not an ember database (no alembic_version table)")
        script = self._run(
            [postgres_binary("pg_restore"), "--no-owner", "--no-privileges", "--file=-", str(path)]
        )
        self._db.dispose()
        self._run(
            [
                postgres_binary("psql"),
                "--quiet",
                "--no-psqlrc",
                "--single-transaction",
                "--set=ON_ERROR_STOP=1",
                f"--dbname={self._libpq_url()}",
            ],
            stdin="DROP SCHEMA public CASCADE;\nCREATE SCHEMA public;\n" + script,
        )

    def _libpq_url(self) -> str:
        return self._db.url.set(drivername="postgresql", password=None).render_as_string(
            hide_password=False
        )

    def _run(self, argv: list[str], stdin: str | None = None) -> str:
        env = dict(os.environ)
        if self._db.url.password:
            env["PGPASSWORD"] = str(self._db.url.password)
        done = subprocess.run(
            argv, input=stdin, capture_output=True, text=True, env=env, check=False
        )
        if done.returncode != 0:
            raise BackupError(f"{Path(argv[0]).name} failed: {done.stderr.strip()[-2000:]}")
        return done.stdout
