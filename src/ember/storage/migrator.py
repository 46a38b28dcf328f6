"""Schema migrations: apply Alembic's one linear history and report where a database stands."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from ember.errors import MigrationRequired
from ember.storage.database import Database

__all__ = ["Migrator"]

_SCRIPTS = Path(__file__).with_name("migrations")


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
        """Migrate the database to ``revision`` (idempotent) and return the revision reached."""
        config = self._config()
        with self._db.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
        return self.current()

    def require_current(self) -> None:
        """:raises MigrationRequired: the database is not at :meth:`head`."""
        current, head = self.current(), self.head()
        if current != head:
            raise MigrationRequired(
                f"database is at revision {current or 'none'}, this ember needs {head}; "
                "run `ember db upgrade`"
            )
