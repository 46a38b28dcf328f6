"""SQL adapter of :class:`~ember.models.protocol.ModelCatalog` over the ``models`` table.

A local model file is one row: ``id`` is its name, ``digest`` the pinned ``sha256:…`` of its
bytes, and ``params`` the path, size, prompt template, stop sequences, context length and
whether it is warmed at start.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from ember.errors import ModelNotRegistered
from ember.models.records import ModelRecord
from ember.storage.database import Database
from ember.storage.tables import Model

__all__ = ["SqlModelCatalog"]

_PROVIDER = "local"


def _record(row: Model) -> ModelRecord:
    params: dict[str, Any] = dict(row.params)
    return ModelRecord(
        name=row.id,
        path=str(params["path"]),
        digest=row.digest or "",
        size_bytes=int(params.get("size_bytes", 0)),
        format=row.kind,
        template=str(params.get("template", "qa")),
        stop=tuple(params.get("stop", ())),
        context_length=params.get("context_length"),
        warm=bool(params.get("warm", False)),
        details=dict(params.get("details", {})),
        created_at=row.created_at,
    )


def _params(record: ModelRecord) -> dict[str, Any]:
    return {
        "path": record.path,
        "size_bytes": record.size_bytes,
        "template": record.template,
        "stop": list(record.stop),
        "context_length": record.context_length,
        "warm": record.warm,
        "details": dict(record.details),
    }


class SqlModelCatalog:
    """Registered local model files, pinned by digest."""

    def __init__(self, database: Database) -> None:
        self._db = database

    def get(self, name: str) -> ModelRecord:
        def work(session: Session) -> ModelRecord:
            row = session.get(Model, name)
            if row is None or row.provider != _PROVIDER:
                raise ModelNotRegistered(f"no model is registered as {name!r}")
            return _record(row)

        return self._db.run(work)

    def all(self) -> list[ModelRecord]:
        query = select(Model).where(Model.provider == _PROVIDER).order_by(Model.id)
        return self._db.run(lambda s: [_record(row) for row in s.scalars(query)])

    def put(self, record: ModelRecord) -> ModelRecord:
        def work(session: Session) -> ModelRecord:
            row = session.get(Model, record.name)
            if row is None:
                row = Model(id=record.name, provider=_PROVIDER)
                session.add(row)
            row.kind = record.format
            row.digest = record.digest
            row.pinned = True
            row.state = "registered"
            row.params = _params(record)
            session.flush()
            return _record(row)

        return self._db.run(work)

    def remove(self, name: str) -> None:
        def work(session: Session) -> None:
            query = delete(Model).where(Model.id == name, Model.provider == _PROVIDER)
            if session.execute(query).rowcount != 1:  # type: ignore[attr-defined]
                raise ModelNotRegistered(f"no model is registered as {name!r}")

        self._db.run(work)
