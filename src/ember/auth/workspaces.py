"""Workspaces: the tenants that tokens, collections, jobs, usage and audit rows belong to.

``default`` always exists (the migration makes it); one-machine use never needs another.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ember.errors import Conflict, NotFound
from ember.storage.clock import utcnow
from ember.storage.database import Database
from ember.storage.names import check_name
from ember.storage.tables import Workspace

__all__ = ["SqlWorkspaceRepository", "WorkspaceRecord"]


@dataclass(frozen=True, slots=True)
class WorkspaceRecord:
    name: str
    created_at: datetime


class SqlWorkspaceRepository:
    """Workspaces in the ``workspaces`` table."""

    def __init__(self, database: Database, clock: Callable[[], datetime] = utcnow) -> None:
        self._db = database
        self._clock = clock

    def create(self, name: str) -> WorkspaceRecord:
        """:raises ValidationFailed: a name outside the name rule.
        :raises Conflict: the workspace exists."""
        check_name("workspace", name)

        def work(session: Session) -> WorkspaceRecord:
            row = Workspace(name=name, created_at=self._clock())
            session.add(row)
            session.flush()
            return WorkspaceRecord(row.name, row.created_at)

        try:
            return self._db.run(work)
        except IntegrityError as exc:
            raise Conflict(f"workspace {name!r} already exists") from exc

    def list(self) -> list[WorkspaceRecord]:
        """Every workspace, by name."""
        query = select(Workspace).order_by(Workspace.name)
        return self._db.run(
            lambda session: [WorkspaceRecord(r.name, r.created_at) for r in session.scalars(query)]
        )

    def require(self, name: str) -> None:
        """:raises NotFound: no workspace has ``name``."""
        found = self._db.run(lambda session: session.get(Workspace, name))
        if found is None:
            raise NotFound(f"no workspace named {name!r}; create it with `ember workspaces create`")
