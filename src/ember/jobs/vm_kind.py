"""The ``vm`` job kind: one command in a throwaway VM, its output streamed, its files kept.

The job's ``files`` are written into a fresh working directory (under ``work_root``), which
becomes the VM's workspace disk; the command runs in the guest's ``/workspace``; the files it
leaves there become the job's artifacts (within :class:`~ember.jobs.artifacts.ArtifactLimits`)
and the directory is removed, on every path. ``log`` events carry the VM's states (``"vm
state"``), its serial console (``"console"``) and the command's output as it comes
(``"output"``, with ``stream``).

A command that exits non-zero is still a succeeded job: its ``exit_code`` is in the result
(``ember vm run`` exits with it). Past its wall clock the VM is destroyed and the job fails
``vm_timeout``; a cancel destroys it. Limits the job does not name come from the ``vm``
section; the ones it names may not pass the section's ``max_*`` caps (checked at submit).
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from ember.auth.scopes import Scope
from ember.config.vm import VM_KIND, VMConfig
from ember.jobs.artifacts import ArtifactLimits, SqlArtifactStore, collect
from ember.jobs.context import JobContext
from ember.jobs.kinds import JobKind
from ember.jobs.records import JobRecord
from ember.vm.runner import VMLimits, VMRunner

__all__ = ["VMInput", "VMParts", "vm_input_model", "vm_kind"]

log = logging.getLogger(__name__)

MAX_FILES_BYTES = 8 * 1024 * 1024
"""Most bytes a job's input ``files`` may hold in all."""


class VMInput(BaseModel):
    """Input of a ``vm`` job."""

    model_config = ConfigDict(extra="forbid")

    argv: list[str] = Field(
        min_length=1, max_length=1024, description="The command and its arguments."
    )
    stdin: str | None = Field(None, max_length=1024 * 1024, description="Fed to the command.")
    env: dict[str, str] = Field(
        default_factory=dict, max_length=64, description="Its environment (besides PATH, HOME)."
    )
    files: dict[str, str] = Field(
        default_factory=dict,
        max_length=256,
        description="Text files put in its workspace first, by relative path.",
    )
    vcpus: int | None = Field(None, ge=1, description="vCPUs (default `vm.vcpus`).")
    memory_mib: int | None = Field(None, ge=64, description="Memory (default `vm.memory_mib`).")
    disk_mib: int | None = Field(None, ge=8, description="Workspace disk (default `vm.disk_mib`).")
    timeout_s: float | None = Field(
        None, gt=0, description="Wall clock, boot included (default `vm.timeout_s`)."
    )

    @field_validator("argv")
    @classmethod
    def _argv(cls, argv: list[str]) -> list[str]:
        if not argv[0] or any("\0" in arg for arg in argv):
            raise ValueError("the command is empty or holds a NUL byte")
        return argv

    @field_validator("files")
    @classmethod
    def _files(cls, files: dict[str, str]) -> dict[str, str]:
        total = 0
        paths = set()
        for name, content in files.items():
            path = PurePosixPath(name)
            if path.is_absolute() or not path.parts or ".." in path.parts or "\0" in name:
                raise ValueError(f"file path {name!r} must be a relative file path, without '..'")
            if any(len(part.encode()) > 255 for part in path.parts):
                raise ValueError(f"file path {name[:80]!r}... has a name over 255 bytes")
            paths.add(path)
            total += len(content.encode())
        for path in paths:
            for parent in path.parents:
                if parent in paths:
                    raise ValueError(f"file path {str(parent)!r} is also a directory of {path}")
        if total > MAX_FILES_BYTES:
            raise ValueError(f"files hold {total} bytes, more than {MAX_FILES_BYTES}")
        return files


def vm_input_model(settings: VMConfig) -> type[VMInput]:
    """:class:`VMInput` with the section's caps on the limits a job may name."""

    class CappedVMInput(VMInput):
        @field_validator("vcpus", "memory_mib", "disk_mib", "timeout_s")
        @classmethod
        def _capped(cls, value: float | None, info: ValidationInfo) -> float | None:
            cap = getattr(settings, f"max_{info.field_name}")
            if value is not None and value > cap:
                raise ValueError(f"at most {cap:g} (vm.max_{info.field_name})")
            return value

    CappedVMInput.__name__ = "VMInput"
    return CappedVMInput


@dataclass(frozen=True)
class VMParts:
    """What a ``vm`` job is run with; each callable builds its part on first use."""

    runner: Callable[[], VMRunner]
    artifacts: Callable[[], SqlArtifactStore]
    settings: VMConfig
    work_root: Path
    artifact_limits: ArtifactLimits = field(default_factory=ArtifactLimits)


def vm_kind(parts: VMParts) -> JobKind:
    """The ``vm`` kind over ``parts``."""
    settings = parts.settings

    async def run(context: JobContext, payload: VMInput) -> dict[str, Any]:
        job = context.job
        limits = VMLimits(
            vcpus=payload.vcpus or settings.vcpus,
            memory_mib=payload.memory_mib or settings.memory_mib,
            disk_mib=payload.disk_mib or settings.disk_mib,
            timeout_s=payload.timeout_s or settings.timeout_s,
            output_bytes=settings.output_bytes,
        )
        directory = parts.work_root / f"job-{job.id}-{job.attempts}"
        try:
            await asyncio.to_thread(_prepare, directory, payload.files)
            result = await parts.runner().run(
                payload.argv,
                directory,
                limits,
                env=payload.env,
                stdin=payload.stdin.encode() if payload.stdin is not None else None,
                job_id=job.id,
                owner=job.lease_owner,
                on_log=context.log,
            )
        finally:
            await asyncio.shield(asyncio.to_thread(_keep_artifacts, job, directory))
        return {
            "exit_code": result.exit_code,
            "stdout": result.stdout.decode(errors="replace"),
            "stderr": result.stderr.decode(errors="replace"),
            "stdout_truncated": result.stdout_truncated,
            "stderr_truncated": result.stderr_truncated,
            "accel": result.accel,
            "vm_id": result.vm_id,
            "boot_s": result.boot_s,
            "duration_s": result.duration_s,
            "files_skipped": list(result.files_skipped),
            "limits": {
                "vcpus": limits.vcpus,
                "memory_mib": limits.memory_mib,
                "disk_mib": limits.disk_mib,
                "timeout_s": limits.timeout_s,
            },
        }

    def _keep_artifacts(job: JobRecord, directory: Path) -> None:
        try:
            collected = collect(directory, parts.artifact_limits)
            if not parts.artifacts().save(job, collected.kept):
                log.warning("files of a stale attempt not kept", extra={"jobId": job.id})
        finally:
            shutil.rmtree(directory, ignore_errors=True)

    return JobKind(
        VM_KIND,
        vm_input_model(settings),
        run,
        "Run a command in a throwaway VM (its own kernel, no network): output streamed, "
        "exit code in the result, the files it leaves kept with the job.",
        scopes=frozenset({Scope.VMS_RUN}),
    )


def _prepare(directory: Path, files: dict[str, str]) -> None:
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    for name, content in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
