"""How callers reach the cluster's named singleton actors (the EventHub, the JobDispatcher, the
ModelRegistry) so that a singleton's death costs a short wait, not a broken handle.

Ray restarts the singletons when they die (``max_restarts=-1``, see
:mod:`ember.actors.builder`), and they rebuild their state from the database. Meanwhile a
call fails with ``RayActorError``; and a handle can outlive its actor for good (a singleton
started again under the same name by another ``ember up``). :class:`NamedActor` forgets the
handle on such a failure, looks the actor up by name again, and retries with backoff a
bounded number of times; then it raises :class:`~ember.errors.ServiceUnavailable` (503 with
``Retry-After``). Calls that must not run twice (publishing an event) are made once.
"""

from __future__ import annotations

import asyncio
import logging
import warnings
from typing import Any

import ray
from ray.exceptions import RayActorError

from ember.actors.names import NAMESPACE
from ember.errors import ServiceUnavailable

__all__ = ["NamedActor", "restarted", "start_after_restart"]

log = logging.getLogger(__name__)

BACKOFF_S = (0.25, 0.5, 1.0, 2.0, 2.0)
"""The waits between tries of a retried call: about six seconds in all, enough for Ray to
restart a singleton on a busy machine."""


class NamedActor:
    """The handle of the named actor ``name`` (``handle`` when given, else looked up on first
    use), looked up again after it failed. ``what`` names it in errors ("the event hub")."""

    def __init__(
        self,
        name: str,
        what: str,
        handle: Any = None,
        *,
        backoff_s: tuple[float, ...] = BACKOFF_S,
    ) -> None:
        self.name = name
        self.what = what
        self._handle = handle
        self._backoff_s = backoff_s
        self._pending: set[asyncio.Future[Any]] = set()

    def handle(self) -> Any:
        """The actor's handle.

        :raises ServiceUnavailable: no actor of that name runs.
        """
        if self._handle is None:
            try:
                self._handle = ray.get_actor(self.name, namespace=NAMESPACE)
            except ValueError as exc:
                raise self._gone(exc) from exc
        return self._handle

    def forget(self, handle: Any) -> None:
        """Drop ``handle`` (if it is still the one held): the next call looks up the name."""
        if self._handle is handle:
            self._handle = None

    async def call(self, method: str, *args: Any, retry: bool = True) -> Any:
        """``method(*args)`` on the actor, awaited. With ``retry`` (for calls that may run
        twice), a call that fails because the actor is gone or restarting is tried again on a
        handle looked up afresh, after each wait of :data:`BACKOFF_S`.

        :raises ServiceUnavailable: the actor did not answer (on any try).
        :raises Exception: what the method itself raised, as Ray raises it.
        """
        waits = self._backoff_s if retry else ()
        for attempt in range(len(waits) + 1):
            handle: Any = None
            try:
                handle = self.handle()
                return await getattr(handle, method).remote(*args)
            except (RayActorError, ServiceUnavailable) as exc:
                if handle is not None:
                    self.forget(handle)
                if attempt == len(waits):
                    if isinstance(exc, ServiceUnavailable):
                        raise
                    raise self._gone(exc) from exc
                log.warning("%s did not answer (%s); trying again", self.what, type(exc).__name__)
                await asyncio.sleep(waits[attempt])
        raise AssertionError("unreachable")  # pragma: no cover

    def send(self, method: str, *args: Any) -> None:
        """``method(*args)`` on the actor without waiting for it (best effort: a failure is
        logged, and drops the handle so that the next call looks the name up again)."""
        try:
            handle = self.handle()
        except ServiceUnavailable as exc:
            log.warning("%s", exc)
            return
        future: asyncio.Future[Any] = asyncio.ensure_future(getattr(handle, method).remote(*args))
        self._pending.add(future)

        def done(sent: asyncio.Future[Any]) -> None:
            self._pending.discard(sent)
            if sent.cancelled() or sent.exception() is None:
                return
            if isinstance(sent.exception(), RayActorError):
                self.forget(handle)
            log.warning("%s.%s failed: %s", self.what, method, sent.exception())

        future.add_done_callback(done)

    def _gone(self, cause: BaseException) -> ServiceUnavailable:
        why = "not found" if isinstance(cause, ValueError) else type(cause).__name__
        return ServiceUnavailable(
            f"{self.what} is not running right now (Ray restarts it); retry shortly ({why})"
        )


def restarted() -> bool:
    """Whether the calling actor is a restart of one that died (call it in ``__init__``);
    ``False`` outside an actor."""
    context = ray.get_runtime_context() if ray.is_initialized() else None
    if context is None or context.get_actor_id() is None:
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # Ray's own use of actor_id
        return bool(context.was_current_actor_reconstructed)


def start_after_restart(method: str = "start") -> None:
    """In a singleton's ``__init__``: when Ray restarted the actor, call its ``method`` once
    the constructor has returned (what the builder calls on a fresh one), so its loops run
    again without anyone asking. The call is retried until the actor takes it (a call made
    while the actor is still being restarted can otherwise be lost), so it may arrive more
    than once: ``method`` must be idempotent."""
    if restarted():
        log.warning("restarted after a failure; calling %s()", method)
        getattr(ray.get_runtime_context().current_actor, method).options(
            max_task_retries=-1
        ).remote()
