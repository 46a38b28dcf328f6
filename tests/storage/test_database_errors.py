"""Driver errors become ember's at the storage edge, with a generic message: the SQL, its
parameters and the driver's words go to the log only (on SQLite and Postgres)."""

from __future__ import annotations

import logging

import pytest
import sqlalchemy.exc as sa
from sqlalchemy import func, literal, literal_column, or_, select, text

from ember.errors import BadRequest, DatabaseUnavailable, EmberError, StorageError
from ember.storage import Database
from ember.storage.database import translate_error

DRIVER_WORDS = ("SELECT", "sqlite3", "psycopg", "[SQL", "[parameters", "secret-parameter")


class _Orig(Exception):
    """A DB-API error as a driver raises it."""


def _wrapped(cls: type[sa.DBAPIError], message: str) -> sa.DBAPIError:
    return cls("SELECT secret FROM t WHERE x = ?", ("secret-parameter",), _Orig(message))


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (_wrapped(sa.OperationalError, "could not connect to server"), DatabaseUnavailable),
        (sa.DisconnectionError("gone"), DatabaseUnavailable),
        (sa.TimeoutError("QueuePool limit of size 5 overflow 10 reached"), DatabaseUnavailable),
        (_wrapped(sa.DataError, "numeric field overflow"), BadRequest),
        (sa.StatementError("bind", "SELECT 1", {}, OverflowError("too big")), BadRequest),
        (_wrapped(sa.ProgrammingError, "syntax error at or near"), StorageError),
        (_wrapped(sa.InternalError, "internal"), StorageError),
        (_wrapped(sa.NotSupportedError, "nope"), StorageError),
        (_wrapped(sa.InterfaceError, "interface"), StorageError),
        (_wrapped(sa.DatabaseError, "generic"), StorageError),
        (sa.StatementError("bind", "SELECT 1", {}, ValueError("naive datetime")), StorageError),
        (sa.PendingRollbackError("rolled back"), StorageError),
        (sa.ResourceClosedError("closed"), StorageError),
    ],
    ids=lambda value: type(value).__name__,
)
def test_every_driver_error_maps_to_a_generic_ember_error(
    error: Exception, expected: type[EmberError]
) -> None:
    translated = translate_error(error)
    assert type(translated) is expected
    assert not any(word in str(translated) for word in DRIVER_WORDS), translated


def test_what_is_not_the_databases_failure_passes_unchanged() -> None:
    assert translate_error(_wrapped(sa.IntegrityError, "UNIQUE constraint failed")) is None
    assert translate_error(OverflowError("raised by the caller's own code")) is None
    assert translate_error(KeyError("x")) is None
    assert translate_error(BadRequest("ember's own")) is None


def test_a_number_past_64_bits_is_a_bad_request(
    database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    query = select(literal(2**70) == func.abs(literal_column("1")))
    caplog.set_level(logging.WARNING, logger="ember.storage.database")
    with pytest.raises(BadRequest) as caught:  # SQLite's OverflowError, Postgres' DataError
        database.run(lambda s: s.execute(query).scalar_one())
    assert caught.value.code == "bad_request" and caught.value.status == 400
    assert not any(word in str(caught.value) for word in DRIVER_WORDS)
    assert any(record.exc_info for record in caplog.records), "the original is logged"


def test_a_text_the_database_cannot_store_is_a_bad_request(database: Database) -> None:
    query = select(literal("a\x00b") + literal("c"))
    if database.dialect == "sqlite":
        assert database.run(lambda s: s.execute(query).scalar_one()) == "a\x00bc"
    else:
        with pytest.raises(BadRequest) as caught:
            database.run(lambda s: s.execute(query).scalar_one())
        assert not any(word in str(caught.value) for word in DRIVER_WORDS)
    lone = select(literal("\udc00") + literal("c"))
    with pytest.raises(BadRequest, match="not valid Unicode"):
        database.run(lambda s: s.execute(lone).scalar_one())


def test_a_query_the_database_refuses_is_a_storage_error_without_its_sql(
    database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    missing = text("SELECT secret FROM no_such_table WHERE x = :x").bindparams(x="secret-parameter")
    caplog.set_level(logging.ERROR, logger="ember.storage.database")
    with pytest.raises(StorageError) as caught:
        database.run(lambda s: s.execute(missing).all())
    assert caught.value.code == "storage_error" and caught.value.status == 500
    assert caught.value.detail == "the database could not carry out the request"
    assert isinstance(caught.value.__cause__, sa.ProgrammingError | sa.OperationalError)
    assert any(record.exc_info for record in caplog.records), "the original is logged"
    if database.dialect == "sqlite":  # an expression deeper than SQLite parses
        deep = select(or_(*(literal(i) == literal_column("1") for i in range(1200))))
        with pytest.raises(StorageError):
            database.run(lambda s: s.execute(deep).all())
