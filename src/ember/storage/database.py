"""One database: engine, transactions and retries on transient connection errors.

SQLite (the embedded default) runs in WAL mode with foreign keys on; Postgres uses psycopg 3
with a connection pool that checks connections before use. Work is done in
:meth:`Database.run`: one transaction per call, retried with exponential backoff and jitter
when the connection fails (a restarting Postgres, a locked SQLite file).
"""

from __future__ import annotations

import functools
import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError, OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from ember.config import DatabaseConfig, EmberConfig
from ember.errors import DatabaseUnavailable
from ember.storage.records import DbapiQuery

__all__ = ["Database", "is_transient"]

T = TypeVar("T")
log = logging.getLogger(__name__)


def is_transient(exc: BaseException) -> bool:
    """Whether retrying the same transaction may succeed (lost connection, locked file)."""
    if isinstance(exc, DisconnectionError):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, OperationalError):
        message = str(exc.orig).lower()
        if "sqlite" in type(exc.orig).__module__:
            return "locked" in message or "busy" in message
        return True
    return False


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


class Database:
    """Owns the engine for one URL; hand it to repositories.

    :param url: a SQLAlchemy URL; ``sqlite:///path`` or ``postgresql+psycopg://...``.
    :param config: pool sizes, timeouts and retry policy.
    """

    def __init__(self, url: str, config: DatabaseConfig | None = None) -> None:
        self.config = config or DatabaseConfig()
        self.url = make_url(url)
        if self.url.get_backend_name() == "postgresql" and self.url.drivername == "postgresql":
            self.url = self.url.set(drivername="postgresql+psycopg")
        self.engine = self._create_engine()
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @classmethod
    def from_config(cls, config: EmberConfig) -> Database:
        """The database the configuration names (SQLite under ``home`` by default)."""
        return cls(config.database_url, config.database)

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.url.get_backend_name()

    @property
    def safe_url(self) -> str:
        """The URL with any password masked, fit for logs."""
        return self.url.render_as_string(hide_password=True)

    def dbapi_connector(self) -> Callable[[], Any]:
        """A picklable function that opens a new DB-API connection to this database, for
        readers in other processes (Ray Data's ``read_sql``)."""
        if self.dialect == "sqlite":
            return functools.partial(
                sqlite3.connect,
                self.url.database or ":memory:",
                timeout=self.config.connect_timeout_s,
            )
        import psycopg

        conninfo = self.url.set(drivername="postgresql").render_as_string(hide_password=False)
        return functools.partial(
            psycopg.connect, conninfo, connect_timeout=max(1, round(self.config.connect_timeout_s))
        )

    def compile(self, query: ClauseElement) -> DbapiQuery:
        """``query`` as SQL text and parameters in this database's DB-API style."""
        compiled = query.compile(dialect=self.engine.dialect)
        assert isinstance(compiled, SQLCompiler)
        if compiled.positional:
            order = compiled.positiontup or []
            return DbapiQuery(str(compiled), tuple(compiled.params[name] for name in order))
        return DbapiQuery(str(compiled), dict(compiled.params))

    def _create_engine(self) -> Engine:
        if self.dialect == "sqlite":
            database = self.url.database
            if database and database != ":memory:":
                Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(
                self.url,
                connect_args={"timeout": self.config.connect_timeout_s},
            )
            event.listen(engine, "connect", _sqlite_pragmas)
            return engine
        return create_engine(
            self.url,
            pool_size=self.config.pool_size,
            max_overflow=self.config.max_overflow,
            pool_pre_ping=True,
            connect_args={"connect_timeout": max(1, round(self.config.connect_timeout_s))},
        )

    def _retrying(self) -> Retrying:
        def _log(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            log.warning(
                "transient database error, retrying",
                extra={"attempt": state.attempt_number, "error": str(exc)[:200]},
            )

        return Retrying(
            retry=retry_if_exception(is_transient),
            stop=stop_after_attempt(self.config.retry_attempts),
            wait=wait_random_exponential(multiplier=0.1, max=self.config.retry_max_wait_s),
            before_sleep=_log,
            reraise=True,
        )

    def run(self, work: Callable[[Session], T]) -> T:
        """Run ``work`` in one transaction and commit it.

        The whole call is retried on a transient connection error, so ``work`` must not have
        effects outside the session. An error ``work`` raises rolls the transaction back and
        propagates unchanged.

        :raises DatabaseUnavailable: the connection kept failing after every attempt.
        """
        try:
            for attempt in self._retrying():
                with attempt, self._sessions.begin() as session:
                    result = work(session)
        except (OperationalError, DisconnectionError) as exc:
            if is_transient(exc):
                raise DatabaseUnavailable(
                    f"database {self.safe_url} is unreachable: {getattr(exc, 'orig', None) or exc}"
                ) from exc
            raise
        return result

    def ping(self) -> None:
        """Check the database answers.

        :raises DatabaseUnavailable: it does not, after the configured retries.
        """
        self.run(lambda session: session.execute(text("SELECT 1")).scalar_one())

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()
