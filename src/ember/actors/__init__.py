"""Ray actors: thin shells over the plain classes below the Ray line.

The classes here hold handles and loops; the logic lives in :mod:`ember.jobs`. Ray options
are applied in :mod:`ember.actors.builder`, never on the classes.
"""

from ember.actors.builder import JobSystem, start_job_system
from ember.actors.job_bus import RayJobBus

__all__ = ["JobSystem", "RayJobBus", "start_job_system"]
