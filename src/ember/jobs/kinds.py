"""The kinds registry: which job kinds exist, how their input is validated, who runs them.

Each kind is a name, a pydantic input model (``extra="forbid"``) and an async handler. Later
layers (providers, agents, VMs) register their kinds here; ``POST /jobs`` validates against
the registry before anything is stored.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from ember.auth.scopes import Scope
from ember.errors import UnknownJobKind, ValidationFailed
from ember.jobs.context import JobContext

__all__ = ["Handler", "JobKind", "KindRegistry"]

Handler = Callable[[JobContext, Any], Awaitable[dict[str, Any]]]
"""Runs one job: gets the context and the validated input model, returns the result (JSON
object). Raising an :class:`~ember.errors.EmberError` fails the job with its code; being
cancelled (``asyncio.CancelledError``) cancels it."""


@dataclass(frozen=True)
class JobKind:
    """One kind of job."""

    name: str
    input_model: type[BaseModel]
    handler: Handler
    description: str = ""
    timeout_s: float | None = None
    """Wall-clock limit of one attempt; ``None`` for none."""
    scopes: frozenset[Scope] = frozenset()
    """What the submitter must hold besides ``jobs:write``, checked at submit and again
    before each attempt (the job runs as its submitter)."""


class KindRegistry:
    """Job kinds by name."""

    def __init__(self, kinds: Iterable[JobKind] = ()) -> None:
        self._kinds: dict[str, JobKind] = {}
        for kind in kinds:
            self.register(kind)

    def register(self, kind: JobKind) -> None:
        """Add ``kind``; a second kind of the same name is a programming error."""
        if kind.name in self._kinds:
            raise ValueError(f"job kind {kind.name!r} is already registered")
        self._kinds[kind.name] = kind

    def names(self) -> list[str]:
        """Registered kind names, sorted."""
        return sorted(self._kinds)

    def get(self, name: str) -> JobKind:
        """:raises UnknownJobKind: no kind has ``name``."""
        kind = self._kinds.get(name)
        if kind is None:
            known = ", ".join(self.names()) or "none"
            raise UnknownJobKind(f"no job kind {name!r} (known: {known})")
        return kind

    def parse(self, name: str, payload: Any) -> BaseModel:
        """The validated input model of ``payload`` for kind ``name``.

        :raises UnknownJobKind: no such kind.
        :raises ValidationFailed: with one field error per problem, paths under ``input``.
        """
        kind = self.get(name)
        try:
            return kind.input_model.model_validate(payload)
        except ValidationError as exc:
            errors = [
                {
                    "path": ".".join(["input", *(str(part) for part in item["loc"])]),
                    "message": item["msg"],
                    "type": item["type"],
                }
                for item in exc.errors()
            ]
            detail = "; ".join(f"{e['path']}: {e['message']}" for e in errors[:5])
            raise ValidationFailed(detail, errors=errors) from exc

    def validate(self, name: str, payload: Any) -> dict[str, Any]:
        """:meth:`parse`, returned as the JSON object that is stored."""
        return self.parse(name, payload).model_dump(mode="json")
