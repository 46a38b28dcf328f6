"""The transcript of each ``agent`` job, in the ``agent_runs`` table (one row per job,
rewritten after every step)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from ember.agents.transcript import Transcript
from ember.storage.database import Database
from ember.storage.tables import AgentRun

__all__ = ["SqlAgentRuns"]


class SqlAgentRuns:
    """Agent transcripts by job id."""

    def __init__(self, database: Database) -> None:
        self._db = database

    def save(
        self,
        job_id: str,
        agent: str,
        transcript: Transcript,
        *,
        only_if: Callable[[Session], bool] | None = None,
    ) -> bool:
        """Store ``transcript`` as the job's (replacing the one stored before), if
        ``only_if`` (checked first, in the same transaction) holds; returns whether it was
        stored. The ``agent`` kind passes the lease check, so an attempt that lost its
        lease never replaces the transcript of the one that holds it."""
        document = transcript.to_dict()

        def work(session: Session) -> bool:
            if only_if is not None and not only_if(session):
                return False
            row = session.get(AgentRun, job_id)
            if row is None:
                session.add(
                    AgentRun(
                        job_id=job_id,
                        agent=agent,
                        status=document["status"],
                        transcript=document,
                    )
                )
                return True
            dropped = row.transcript.get("artifacts_dropped")
            row.status = document["status"]
            row.transcript = {**document, **({"artifacts_dropped": dropped} if dropped else {})}
            return True

        return self._db.run(work)

    def note_dropped(self, job_id: str, dropped: list[tuple[str, str]]) -> None:
        """Record the files the job left that were not kept (path and reason)."""

        def work(session: Session) -> None:
            row = session.get(AgentRun, job_id)
            if row is not None:
                notes = [{"path": path, "reason": reason} for path, reason in dropped]
                row.transcript = {**row.transcript, "artifacts_dropped": notes}

        self._db.run(work)

    def get(self, job_id: str) -> dict[str, Any] | None:
        """The job's transcript, ``None`` when the job stored none (yet)."""

        def work(session: Session) -> dict[str, Any] | None:
            row = session.get(AgentRun, job_id)
            return None if row is None else dict(row.transcript)

        return self._db.run(work)
