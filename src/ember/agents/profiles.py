"""Agent profiles of a workspace, in the ``agents`` table.

Each row holds one whole :class:`~ember.agents.policy.AgentProfile`, validated before it is
stored and again when read (a profile written by an older ember that no longer validates is
refused with its reason, never run). Names follow the one name rule of collections.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Select, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ember.agents.policy import AgentProfile
from ember.errors import AgentExists, AgentNotFound, ConfigError
from ember.storage.database import Database
from ember.storage.names import check_name
from ember.storage.tables import DEFAULT_WORKSPACE, Agent

__all__ = ["AgentRecord", "SqlAgentProfiles"]


@dataclass(frozen=True)
class AgentRecord:
    """A stored profile: its name (also ``profile.name``), workspace and times."""

    id: str
    workspace: str
    profile: AgentProfile
    created_at: datetime
    updated_at: datetime

    @property
    def name(self) -> str:
        return self.profile.name


def _record(row: Agent) -> AgentRecord:
    try:
        profile = AgentProfile.model_validate({**row.profile, "name": row.name})
    except ValidationError as exc:
        raise ConfigError(f"the stored profile of agent {row.name!r} is invalid: {exc}") from exc
    return AgentRecord(row.id, row.workspace, profile, row.created_at, row.updated_at)


def _document(profile: AgentProfile) -> dict[str, Any]:
    return profile.model_dump(mode="json", exclude={"name"})


class SqlAgentProfiles:
    """Profiles of one workspace: another workspace's names are not found, and free to take."""

    def __init__(self, database: Database, workspace: str = DEFAULT_WORKSPACE) -> None:
        self._db = database
        self.workspace = workspace

    def in_workspace(self, workspace: str) -> SqlAgentProfiles:
        return self if workspace == self.workspace else SqlAgentProfiles(self._db, workspace)

    def _named(self, name: str) -> Select[Agent]:
        return select(Agent).where(Agent.workspace == self.workspace, Agent.name == name)

    def create(self, profile: AgentProfile) -> AgentRecord:
        """Store a new profile under ``profile.name``.

        :raises ValidationFailed: the name breaks the name rule.
        :raises AgentExists: the workspace has a profile of that name.
        """
        check_name("agent", profile.name)

        def work(session: Session) -> AgentRecord:
            row = Agent(workspace=self.workspace, name=profile.name, profile=_document(profile))
            session.add(row)
            session.flush()
            return _record(row)

        try:
            return self._db.run(work)
        except IntegrityError as exc:
            raise AgentExists(f"agent {profile.name!r} already exists") from exc

    def replace(self, profile: AgentProfile) -> AgentRecord:
        """Replace the stored profile named ``profile.name``.

        :raises AgentNotFound: there is none.
        """

        def work(session: Session) -> AgentRecord:
            row = session.scalars(self._named(profile.name)).first()
            if row is None:
                raise AgentNotFound(f"no agent named {profile.name!r}")
            row.profile = _document(profile)
            session.flush()
            return _record(row)

        return self._db.run(work)

    def get(self, name: str) -> AgentRecord:
        """:raises AgentNotFound: no profile has ``name``."""

        def work(session: Session) -> AgentRecord:
            row = session.scalars(self._named(name)).first()
            if row is None:
                raise AgentNotFound(f"no agent named {name!r}")
            return _record(row)

        return self._db.run(work)

    def list(self, *, limit: int = 100, after: str | None = None) -> list[AgentRecord]:
        """Up to ``limit`` profiles by name, after the name ``after``."""
        query = select(Agent).where(Agent.workspace == self.workspace)
        if after is not None:
            query = query.where(Agent.name > after)
        query = query.order_by(Agent.name).limit(limit)
        return self._db.run(lambda session: [_record(row) for row in session.scalars(query)])

    def delete(self, name: str) -> None:
        """:raises AgentNotFound: no profile has ``name``."""

        def work(session: Session) -> None:
            done = session.execute(
                delete(Agent).where(Agent.workspace == self.workspace, Agent.name == name)
            )
            if getattr(done, "rowcount", 0) != 1:
                raise AgentNotFound(f"no agent named {name!r}")

        self._db.run(work)
