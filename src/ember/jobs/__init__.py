"""Durable jobs below the Ray line: states, repository, events, hub, runner, dispatcher,
kinds, streams and the service the API uses. :mod:`ember.actors` wraps them in Ray actors."""

from ember.jobs.bus import LocalJobBus
from ember.jobs.context import JobContext
from ember.jobs.dispatcher import LeaseDispatcher
from ember.jobs.events import SqlEventStore
from ember.jobs.hub import EventHub
from ember.jobs.kinds import Handler, JobKind, KindRegistry
from ember.jobs.plugins import plugin_kinds
from ember.jobs.pool import LocalWorkerPool
from ember.jobs.protocol import (
    BulkRunner,
    EventStore,
    JobBus,
    JobRepository,
    Publish,
    PublishMany,
    WorkerPool,
)
from ember.jobs.records import EventRecord, HubStats, JobRecord, NewJob, Telemetry
from ember.jobs.repository import SqlJobRepository
from ember.jobs.runner import JobRunner
from ember.jobs.service import JobService
from ember.jobs.states import EDGES, TERMINAL, JobState
from ember.jobs.stream import follow, is_final

__all__ = [
    "EDGES",
    "TERMINAL",
    "BulkRunner",
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
    "LeaseDispatcher",
    "LocalJobBus",
    "LocalWorkerPool",
    "NewJob",
    "Publish",
    "PublishMany",
    "SqlEventStore",
    "SqlJobRepository",
    "Telemetry",
    "WorkerPool",
    "follow",
    "is_final",
    "plugin_kinds",
]
