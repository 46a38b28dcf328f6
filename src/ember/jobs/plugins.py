"""Job kinds from plug-ins: the ``module:function`` entries of ``jobs.plugins``."""

from __future__ import annotations

import importlib

from ember.config import EmberConfig
from ember.errors import ConfigError
from ember.jobs.kinds import JobKind

__all__ = ["plugin_kinds"]


def plugin_kinds(config: EmberConfig) -> list[JobKind]:
    """The kinds of every plug-in in ``jobs.plugins``: each ``module:function`` is called
    with the config and returns a list of :class:`JobKind`.

    :raises ConfigError: a plug-in cannot be imported or does not return kinds.
    """
    found: list[JobKind] = []
    for spec in filter(None, (part.strip() for part in (config.jobs.plugins or "").split(","))):
        module_name, _, attribute = spec.partition(":")
        try:
            function = getattr(importlib.import_module(module_name), attribute)
            kinds = function(config)
        except (ImportError, AttributeError, TypeError) as exc:
            raise ConfigError(f"jobs.plugins: {spec!r} cannot be loaded: {exc}") from exc
        if not isinstance(kinds, list) or not all(isinstance(k, JobKind) for k in kinds):
            raise ConfigError(f"jobs.plugins: {spec!r} did not return a list of JobKind")
        found.extend(kinds)
    return found
