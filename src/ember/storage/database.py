"""One database: engine, transactions, retries on transient connection errors, and the edge
where driver errors become ember's.

SQLite (the embedded default) runs in WAL mode with foreign keys on; Postgres uses psycopg 3
with a connection pool that checks connections before use. Work is done in
:meth:`Database.run`: one transaction per call, retried with exponential backoff and jitter
when the connection fails (a restarting Postgres, a locked SQLite file).

:func:`translate_error` maps what SQLAlchemy and the drivers raise into the error tree, with a
generic message: SQL text, parameters and driver messages go to the log, never into an
error a client or a job row sees.

    driver error                                    ember error
    transient (lost connection, locked, busy)       DatabaseUnavailable (after the retries)
    sqlalchemy TimeoutError (pool exhausted)        DatabaseUnavailable
    DataError (value out of range, not storable)    BadRequest
    OverflowError while binding (int > 64 bits)     BadRequest
    UnicodeEncodeError while binding (surrogate)    BadRequest
    IntegrityError                                  unchanged: repositories say what it means
    any other SQLAlchemyError                       StorageError
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
from sqlalchemy.exc import (
    DataError,
    DBAPIError,
    DisconnectionError,
    IntegrityError,
    OperationalError,
    SQLAlchemyError,
    StatementError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout
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
from ember.errors import BadRequest, DatabaseUnavailable, EmberError, StorageError
from ember.storage.records import DbapiQuery

__all__ = ["Database", "is_transient", "translate_error"]

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


def _raised_by_sqlalchemy(exc: BaseException) -> bool:
    """Whether ``exc`` was raised under SQLAlchemy (binding or running a statement), not by
    the caller's own code."""
    tb = exc.__traceback__
    while tb is not None:
        if str(tb.tb_frame.f_globals.get("__name__", "")).startswith("sqlalchemy."):
            return True
        tb = tb.tb_next
    return False


def translate_error(exc: BaseException) -> EmberError | None:
    """The ember error for a database failure ``exc`` (see the table above), or ``None``
    when ``exc`` is not one to translate (an :class:`IntegrityError`, or anything the
    caller's own code raised). The message is generic: log ``exc`` for the details."""
    if isinstance(exc, IntegrityError):
        return None
    if is_transient(exc) or isinstance(exc, PoolTimeout):
        return DatabaseUnavailable(
            "the database is unavailable (unreachable, or locked by another writer); try again"
        )
    if isinstance(exc, DataError):
        return BadRequest("the database rejected a value of the request (out of range or unfit)")
    cause = exc.orig if isinstance(exc, StatementError) else exc
    binding = exc is not cause or _raised_by_sqlalchemy(exc)
    if isinstance(cause, OverflowError) and binding:
        return BadRequest("a number in the request is too large for the database (64-bit)")
    if isinstance(cause, UnicodeEncodeError) and binding:
        return BadRequest("a text of the request is not valid Unicode (a lone surrogate)")
    if isinstance(exc, SQLAlchemyError):
        return StorageError("the database could not carry out the request")
    return None


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
        effects outside the session. An error rolls the transaction back; an ember error or
        anything else ``work`` raises itself propagates unchanged, and a database failure
        becomes an ember error through :func:`translate_error` (logged here with its SQL).

        :raises DatabaseUnavailable: the connection kept failing after every attempt.
        :raises BadRequest: the database rejected a value (out of range, unfit).
        :raises StorageError: the database failed otherwise.
        :raises sqlalchemy.exc.IntegrityError: a constraint failed (the repository decides
            what that means: a name taken, a key used).
        """
        try:
            for attempt in self._retrying():
                with attempt, self._sessions.begin() as session:
                    result = work(session)
        except Exception as exc:
            error = translate_error(exc)
            if error is None:
                raise
            level = logging.WARNING if error.status < 500 else logging.ERROR
            log.log(
                level,
                "database error answered as %s",
                error.code,
                extra={"database": self.safe_url},
                exc_info=exc,
            )
            raise error from exc
        return result

    def ping(self) -> None:
        """Check the database answers.

        :raises DatabaseUnavailable: it does not, after the configured retries.
        """
        self.run(lambda session: session.execute(text("SELECT 1")).scalar_one())

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()
