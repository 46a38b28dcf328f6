"""``/vms``: the VMs of this installation, newest first (``vms:run``).

A caller sees the VMs of its workspace's jobs; ``cluster:admin`` sees every VM, those run
without a job (the KVM probe) included.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel

from ember.auth import Principal, Scope
from ember.serve_app.auth import require
from ember.vm.lifecycle import SqlVMRecords, VMRecord

__all__ = ["vms_router"]

Runner = Annotated[Principal, Depends(require(Scope.VMS_RUN))]


class VMOut(BaseModel):
    id: str
    job_id: str | None
    state: str
    node: str
    accel: str
    vcpus: int
    memory_mib: int
    disk_mib: int
    error_code: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, record: VMRecord) -> VMOut:
        return cls(
            id=record.id,
            job_id=record.job_id,
            state=record.state.value,
            node=record.node,
            accel=record.accel,
            vcpus=record.vcpus,
            memory_mib=record.memory_mib,
            disk_mib=record.disk_mib,
            error_code=record.error_code,
            created_at=record.created_at,
            updated_at=record.updated_at,
        )


class VMList(BaseModel):
    vms: list[VMOut]


def vms_router(records: SqlVMRecords) -> APIRouter:
    """The route over the ``vms`` table."""
    router = APIRouter(tags=["vms"])

    @router.get("/vms", response_model=VMList)
    async def list_vms(
        principal: Runner, limit: Annotated[int, Query(ge=1, le=1000)] = 50
    ) -> VMList:
        """The newest ``limit`` VMs with their state, node, acceleration and limits."""
        workspace = None if Scope.CLUSTER_ADMIN in principal.scopes else principal.workspace
        found = await run_in_threadpool(records.recent, limit, workspace=workspace)
        return VMList(vms=[VMOut.of(record) for record in found])

    return router
