"""Durable jobs below the Ray line: states, repository, events, hub, runner, dispatcher,
kinds, streams and the service the API uses. :mod:`ember.actors` wraps them in Ray actors."""

from ember.jobs.bus import JobBus, LocalJobBus, Telemetry
from ember.jobs.context import JobContext
from ember.jobs.dispatcher import Dispatcher, WorkerPool
from ember.jobs.events import SqlEventStore
from ember.jobs.hub import EventHub, HubStats
from ember.jobs.kinds import Handler, JobKind, KindRegistry
from ember.jobs.pool import LocalWorkerPool
from ember.jobs.protocol import EventStore, JobRepository
from ember.jobs.records import EventRecord, JobRecord, NewJob
from ember.jobs.repository import SqlJobRepository
from ember.jobs.runner import JobRunner
from ember.jobs.service import JobService
from ember.jobs.states import EDGES, TERMINAL, JobState
from ember.jobs.stream import follow, is_final
from ember.jobs.wiring import build_kinds, plugin_kinds

__all__ = [
    "EDGES",
    "TERMINAL",
    "Dispatcher",
    "EventHub",
    "EventRecord",
    "EventStore",
    "Handler",
    "HubStats",
    "JobBus",
    "JobContext",
    "JobKind",
    "JobRecord",
    "JobRepository",
    "JobRunner",
    "JobService",
    "JobState",
    "KindRegistry",
    "LocalJobBus",
    "LocalWorkerPool",
    "NewJob",
    "SqlEventStore",
    "SqlJobRepository",
    "Telemetry",
    "WorkerPool",
    "build_kinds",
    "follow",
    "is_final",
    "plugin_kinds",
]
