"""Schema migrations: apply Alembic's one linear history and report where a database stands."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection

from ember.errors import MigrationRequired
from ember.storage.database import Database

__all__ = ["Migrator"]

_SCRIPTS = Path(__file__).with_name("migrations")


def _check_foreign_keys(connection: Connection) -> None:
    """SQLite rebuilds a table to alter it, with foreign keys off (else dropping the old
    table would cascade into its children); afterwards every reference must still hold."""
    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if broken:
        raise MigrationRequired(f"the migration left {len(broken)} dangling reference(s)")


class Migrator:
    """Applies and inspects migrations of one :class:`Database`."""

    def __init__(self, database: Database) -> None:
        self._db = database

    def _config(self) -> Config:
        config = Config()
        config.set_main_option("script_location", str(_SCRIPTS))
        return config

    def head(self) -> str:
        """The newest revision this ember ships."""
        head = ScriptDirectory.from_config(self._config()).get_current_head()
        if head is None:
            raise MigrationRequired("no migrations are packaged")
        return head

    def current(self) -> str | None:
        """The revision the database is at; ``None`` for an empty database."""
        with self._db.engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()

    def upgrade(self, revision: str = "head") -> str | None:
        """Migrate the database to ``revision`` (idempotent) and return the revision reached.

        On SQLite the migration runs with foreign keys off, as SQLite's own procedure for
        altering a table asks, and is rolled back if any reference is left dangling."""
        config = self._config()
        with self._db.engine.connect() as connection:
            sqlite = connection.dialect.name == "sqlite"
            if sqlite:
                connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
                connection.commit()
            try:
                with connection.begin():
                    config.attributes["connection"] = connection
                    command.upgrade(config, revision)
                    if sqlite:
                        _check_foreign_keys(connection)
            finally:
                if sqlite:
                    connection.exec_driver_sql("PRAGMA foreign_keys=ON")
                    connection.commit()
        return self.current()

    def require_current(self) -> None:
        """:raises MigrationRequired: the database is not at :meth:`head`."""
        current, head = self.current(), self.head()
        if current != head:
            raise MigrationRequired(
                f"database is at revision {current or 'none'}, this ember needs {head}; "
                "run `ember db upgrade`"
            )
