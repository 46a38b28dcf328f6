"""Files a job leaves behind, kept with the job in the ``job_artifacts`` table.

:func:`collect` walks a directory (regular files only: a symlink, socket or FIFO is never
followed or read) and keeps files in path order while they fit ``max_files`` and
``max_bytes``; the rest are reported as dropped with the reason. Kept in the database, an
artifact is served by any API replica whatever node the job ran on.

Only the attempt that holds the job's lease may keep files (:meth:`SqlArtifactStore.save`
with its :class:`~ember.jobs.records.JobRecord`): an attempt that lost its lease, or one
started again after the job ended, never replaces the files of the attempt that finished it.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from ember.errors import ArtifactNotFound
from ember.jobs.lease import holds_lease
from ember.jobs.records import JobRecord
from ember.storage.database import Database
from ember.storage.tables import JobArtifact

__all__ = ["Artifact", "ArtifactLimits", "Collected", "SqlArtifactStore", "collect"]


@dataclass(frozen=True)
class ArtifactLimits:
    """The most files, bytes in all and bytes in one file a job keeps."""

    max_files: int = 200
    max_bytes: int = 16 * 1024 * 1024
    max_file_bytes: int = 8 * 1024 * 1024


@dataclass(frozen=True)
class Artifact:
    """One kept file: its path relative to the directory (``/``-separated), size, digest
    and, when read, its content."""

    path: str
    size: int
    sha256: str
    content: bytes = b""


@dataclass(frozen=True)
class Collected:
    """What :func:`collect` kept, and each dropped path with why (``too_large``,
    ``over_total``, ``too_many``, ``not_a_file``, ``unreadable``)."""

    kept: list[Artifact]
    dropped: list[tuple[str, str]]


def collect(root: Path, limits: ArtifactLimits) -> Collected:
    """The files under ``root`` within ``limits``, in path order."""
    kept: list[Artifact] = []
    dropped: list[tuple[str, str]] = []
    total = 0
    for path in sorted(_walk(root)):
        relative = path.relative_to(root).as_posix()
        try:
            info = path.lstat()
        except OSError:
            dropped.append((relative, "unreadable"))
            continue
        if not stat.S_ISREG(info.st_mode):
            dropped.append((relative, "not_a_file"))
            continue
        if info.st_size > limits.max_file_bytes:
            dropped.append((relative, "too_large"))
            continue
        if len(kept) >= limits.max_files:
            dropped.append((relative, "too_many"))
            continue
        if total + info.st_size > limits.max_bytes:
            dropped.append((relative, "over_total"))
            continue
        try:
            content = _read(path, limits.max_file_bytes)
        except OSError:
            dropped.append((relative, "unreadable"))
            continue
        total += len(content)
        kept.append(Artifact(relative, len(content), hashlib.sha256(content).hexdigest(), content))
    return Collected(kept, dropped)


def _walk(root: Path) -> list[Path]:
    found: list[Path] = []
    for directory, subdirectories, files in os.walk(root, followlinks=False):
        base = Path(directory)
        found += [base / name for name in files]
        found += [base / name for name in subdirectories if (base / name).is_symlink()]
    return found


def _read(path: Path, most: int) -> bytes:
    descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(descriptor, "rb") as handle:
        return handle.read(most + 1)[:most]


class SqlArtifactStore:
    """Artifacts of jobs, by job id and path."""

    def __init__(self, database: Database) -> None:
        self._db = database

    def save(self, job: JobRecord, artifacts: list[Artifact]) -> bool:
        """Replace ``job``'s artifacts with ``artifacts`` (one transaction), if the job is
        still running (or cancelling) under the lease and attempt ``job`` was given; returns
        whether they were saved."""
        job_id = job.id

        def work(session: Session) -> bool:
            if not holds_lease(session, job):
                return False
            session.execute(delete(JobArtifact).where(JobArtifact.job_id == job_id))
            session.add_all(
                JobArtifact(
                    job_id=job_id, path=a.path, size=a.size, sha256=a.sha256, content=a.content
                )
                for a in artifacts
            )
            return True

        return self._db.run(work)

    def list(self, job_id: str) -> list[Artifact]:
        """The job's artifacts by path, without their content."""
        query = (
            select(JobArtifact.path, JobArtifact.size, JobArtifact.sha256)
            .where(JobArtifact.job_id == job_id)
            .order_by(JobArtifact.path)
        )
        return self._db.run(
            lambda session: [Artifact(p, s, h) for p, s, h in session.execute(query)]
        )

    def read(self, job_id: str, path: str) -> Artifact:
        """:raises ArtifactNotFound: the job has no artifact at ``path``."""

        def work(session: Session) -> Artifact:
            row = session.scalars(
                select(JobArtifact).where(JobArtifact.job_id == job_id, JobArtifact.path == path)
            ).first()
            if row is None:
                raise ArtifactNotFound(f"job {job_id} left no file {path!r}")
            return Artifact(row.path, row.size, row.sha256, bytes(row.content))

        return self._db.run(work)
