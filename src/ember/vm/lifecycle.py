"""Each VM's life as rows of the ``vms`` table, moved only along :data:`EDGES`.

    defining ──▶ booting ──▶ running ──▶ stopping ──▶ gone
        │           │           │           │
        └───────────┴───────────┴───────────┴──▶ failed

``defining``: its files (kernel, initramfs, disk) are being made; ``booting``: the hypervisor
started it; ``running``: the guest agent runs the command; ``stopping``: the command ended
(or was cancelled) and the VM is being torn down; ``gone``: torn down, its files removed;
``failed``: it could not be made, booted or run to its end (``error_code`` says why: a
timeout, a crash, a reaped orphan), and is torn down. Each edge is one guarded ``UPDATE``
(``WHERE state = <from>``): a move from anywhere else raises
:class:`~ember.errors.InvalidTransition`, so two owners never both move one VM.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ember.errors import InvalidTransition
from ember.storage.clock import utcnow
from ember.storage.database import Database
from ember.storage.tables import Job, VMRow

__all__ = ["EDGES", "TERMINAL", "SqlVMRecords", "VMRecord", "VMState", "allowed"]


class VMState(StrEnum):
    DEFINING = "defining"
    BOOTING = "booting"
    RUNNING = "running"
    STOPPING = "stopping"
    GONE = "gone"
    FAILED = "failed"


TERMINAL = frozenset({VMState.GONE, VMState.FAILED})

EDGES: frozenset[tuple[VMState, VMState]] = frozenset(
    {
        (VMState.DEFINING, VMState.BOOTING),
        (VMState.BOOTING, VMState.RUNNING),
        (VMState.RUNNING, VMState.STOPPING),
        (VMState.STOPPING, VMState.GONE),
        (VMState.DEFINING, VMState.FAILED),
        (VMState.BOOTING, VMState.FAILED),
        (VMState.RUNNING, VMState.FAILED),
        (VMState.STOPPING, VMState.FAILED),
    }
)


def allowed(current: VMState, target: VMState) -> bool:
    """Whether ``current → target`` is an edge."""
    return (current, target) in EDGES


@dataclass(frozen=True)
class VMRecord:
    """One VM as stored."""

    id: str
    domain: str
    node: str
    state: VMState
    accel: str
    vcpus: int
    memory_mib: int
    disk_mib: int
    job_id: str | None
    owner: str | None
    error_code: str | None
    created_at: datetime
    updated_at: datetime


class SqlVMRecords:
    """The ``vms`` table."""

    def __init__(self, database: Database) -> None:
        self._db = database

    def create(
        self,
        vm_id: str,
        *,
        domain: str,
        node: str,
        accel: str,
        vcpus: int,
        memory_mib: int,
        disk_mib: int,
        job_id: str | None = None,
        owner: str | None = None,
    ) -> None:
        """Record a new VM, ``defining``, made for ``job_id``'s attempt leased to ``owner``."""
        row = VMRow(
            id=vm_id,
            domain=domain,
            node=node,
            state=VMState.DEFINING.value,
            accel=accel,
            vcpus=vcpus,
            memory_mib=memory_mib,
            disk_mib=disk_mib,
            job_id=job_id,
            owner=owner,
        )
        self._db.run(lambda session: session.add(row))

    def move(
        self, vm_id: str, current: VMState, target: VMState, *, error_code: str | None = None
    ) -> None:
        """Move ``vm_id`` from ``current`` to ``target``.

        :raises InvalidTransition: ``current → target`` is not an edge, or the VM is not in
            ``current`` (someone else moved it, or it does not exist).
        """
        if not allowed(current, target):
            raise InvalidTransition(f"no VM edge {current.value} → {target.value}")

        def work(session: Session) -> None:
            result = session.execute(
                update(VMRow)
                .where(VMRow.id == vm_id, VMRow.state == current.value)
                .values(state=target.value, error_code=error_code, updated_at=utcnow())
            )
            if getattr(result, "rowcount", 0) != 1:
                found = session.scalar(select(VMRow.state).where(VMRow.id == vm_id))
                raise InvalidTransition(
                    f"VM {vm_id} is {found or 'unknown'}, not {current.value}; "
                    f"it cannot become {target.value}"
                )

        self._db.run(work)

    def get(self, vm_id: str) -> VMRecord | None:
        return self._db.run(lambda session: _record(session.get(VMRow, vm_id)))

    def live(self, node: str | None = None) -> list[VMRecord]:
        """VMs not yet ``gone`` or ``failed`` (on ``node``), oldest first."""
        query = select(VMRow).where(VMRow.state.not_in([s.value for s in TERMINAL]))
        if node is not None:
            query = query.where(VMRow.node == node)
        return self._list(query.order_by(VMRow.created_at, VMRow.id))

    def owned(self, now: datetime, grace_s: float) -> frozenset[str]:
        """Ids of the VMs a live owner still holds: those made for a job's attempt that is
        ``running`` or ``cancelling`` under an unexpired lease held by the same owner (a VM
        of an earlier attempt of the same job is an orphan), and those without a job that
        are not yet ``gone`` or ``failed`` and younger than ``grace_s``. Every other VM is
        an orphan."""
        live_states = [s.value for s in TERMINAL]

        def work(session: Session) -> frozenset[str]:
            of_jobs = session.scalars(
                select(VMRow.id)
                .join(Job, Job.id == VMRow.job_id)
                .where(
                    VMRow.state.not_in(live_states),
                    Job.state.in_(["running", "cancelling"]),
                    Job.lease_expires_at > now,
                    Job.lease_owner == VMRow.owner,
                )
            )
            alone = session.scalars(
                select(VMRow.id).where(
                    VMRow.job_id.is_(None),
                    VMRow.state.not_in(live_states),
                    VMRow.created_at > now - timedelta(seconds=grace_s),
                )
            )
            return frozenset([*of_jobs, *alone])

        return self._db.run(work)

    def recent(self, limit: int = 50, *, workspace: str | None = None) -> list[VMRecord]:
        """The newest ``limit`` VMs, newest first (only those of jobs of ``workspace``, when
        given)."""
        query = select(VMRow)
        if workspace is not None:
            query = query.join(Job, Job.id == VMRow.job_id).where(Job.workspace == workspace)
        return self._list(query.order_by(VMRow.created_at.desc(), VMRow.id).limit(limit))

    def _list(self, query: object) -> list[VMRecord]:
        def work(session: Session) -> Sequence[VMRecord]:
            return [r for r in (_record(row) for row in session.scalars(query)) if r]  # type: ignore[call-overload]

        return list(self._db.run(work))


def _record(row: VMRow | None) -> VMRecord | None:
    if row is None:
        return None
    return VMRecord(
        id=row.id,
        domain=row.domain,
        node=row.node,
        state=VMState(row.state),
        accel=row.accel,
        vcpus=row.vcpus,
        memory_mib=row.memory_mib,
        disk_mib=row.disk_mib,
        job_id=row.job_id,
        owner=row.owner,
        error_code=row.error_code,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )
