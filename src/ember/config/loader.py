"""Load :class:`EmberConfig` from a YAML file and ``EMBER_*`` environment variables.

Precedence, lowest first: model defaults, the YAML file, the environment. Each leaf field
``a.b`` is set by ``EMBER_A_B`` (``home`` by ``EMBER_HOME``); :func:`environment_variables`
lists them all. ``EMBER_CONFIG`` names the YAML file when no path is given.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from ember.config.models import EmberConfig
from ember.errors import ConfigError

__all__ = ["CONFIG_ENV", "environment_variables", "load_config"]

CONFIG_ENV = "EMBER_CONFIG"
_PREFIX = "EMBER_"


def _leaves(model: type[BaseModel], path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from _leaves(annotation, (*path, name))
        else:
            yield (*path, name)


def environment_variables() -> dict[str, tuple[str, ...]]:
    """Every ``EMBER_*`` variable that sets a config field, mapped to that field's path."""
    return {_PREFIX + "_".join(path).upper(): path for path in _leaves(EmberConfig)}


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1} column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}: {where}invalid YAML: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping, not {type(data).__name__}")
    return data


def _set(tree: dict[str, Any], path: tuple[str, ...], value: str) -> None:
    node = tree
    for key in path[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = {}
            node[key] = child
        node = child
    node[path[-1]] = None if value == "" else value


def load_config(path: Path | None = None, environ: Mapping[str, str] | None = None) -> EmberConfig:
    """Build the configuration.

    :param path: YAML file; ``None`` means ``$EMBER_CONFIG`` or, when that is unset, defaults.
    :param environ: the environment to read ``EMBER_*`` overrides from (``os.environ`` is the
        caller's usual choice; tests pass their own).
    :raises ConfigError: the file is missing or unreadable, or a value is invalid. The message
        names the file (or the environment variable), the field path and the problem, one
        line per problem.
    """
    env = dict(environ or {})
    if path is None and env.get(CONFIG_ENV):
        path = Path(env[CONFIG_ENV])
    data = _read_yaml(path) if path is not None else {}
    from_env: dict[tuple[str, ...], str] = {}
    for name, field_path in environment_variables().items():
        if name in env:
            _set(data, field_path, env[name])
            from_env[field_path] = name
    try:
        return EmberConfig.model_validate(data)
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            loc = tuple(str(part) for part in error["loc"])
            below = sorted(name for where, name in from_env.items() if where[: len(loc)] == loc)
            if loc in from_env:
                source = f"environment variable {from_env[loc]}"
            elif below:
                source = f"{path or 'defaults'} with {', '.join(below)}"
            else:
                source = str(path) if path is not None else "defaults"
            field = ".".join(loc) or "(top level)"
            message = error["msg"]
            if error["type"] == "extra_forbidden":
                message = "unknown key"
            lines.append(f"{source}: {field}: {message}")
        raise ConfigError("\n".join(lines)) from None
