"""What each vendor client can raise, found by walking the installed client: the input of
the completeness tests in ``test_vendor_errors.py``, one :class:`Walk` per adapter table.

A new adapter with a :class:`~ember.providers.vendor_errors.VendorErrors` table adds its walk
to :data:`WALKS`; the tests then check its table maps every class the walk finds.
"""

from __future__ import annotations

import ast
import builtins
import importlib
import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import httpx
import ollama
import openai
import openai._streaming

from ember.providers._ollama_errors import OLLAMA
from ember.providers.openai_embeddings import OPENAI
from ember.providers.vendor_errors import VendorErrors

__all__ = [
    "WALKS",
    "Walk",
    "httpx_errors",
    "ollama_exports",
    "ollama_raises",
    "openai_exports",
    "openai_stream_errors",
]


def ollama_raises() -> set[type[BaseException]]:
    """Every exception class a ``raise`` statement of the ``ollama`` package names (its
    ``_client`` attribute is a default client, so the modules are imported by name)."""
    found: set[type[BaseException]] = set()
    for name in ("ollama._client", "ollama._types", "ollama._utils"):
        module = importlib.import_module(name)
        for node in ast.walk(ast.parse(inspect.getsource(module))):
            if not isinstance(node, ast.Raise) or node.exc is None:
                continue
            target = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            if isinstance(target, ast.Name):
                cls = getattr(module, target.id, getattr(builtins, target.id, None))
                assert isinstance(cls, type), f"cannot resolve raise {target.id} in {module}"
                found.add(cls)
    return found


def httpx_errors() -> list[type[BaseException]]:
    """Every error class httpx exports for a request that fails."""
    classes = (getattr(httpx, name) for name in httpx.__all__)
    return [c for c in classes if isinstance(c, type) and issubclass(c, httpx.HTTPError)]


def ollama_exports() -> list[type[BaseException]]:
    """Every exception class ``ollama`` exports."""
    classes = (getattr(ollama, name) for name in ollama.__all__)
    return [c for c in classes if isinstance(c, type) and issubclass(c, Exception)]


def openai_exports() -> list[type[BaseException]]:
    """Every exception class ``openai`` exports."""
    found: list[type[BaseException]] = []
    for name in openai.__all__:
        value = getattr(openai, name)
        if isinstance(value, type) and issubclass(value, openai.OpenAIError):
            found.append(value)
    return found


def openai_stream_errors() -> set[type[BaseException]]:
    """The ``openai`` exception classes its stream module raises while a stream is read."""
    return {
        value
        for value in vars(openai._streaming).values()
        if isinstance(value, type) and issubclass(value, openai.OpenAIError)
    }


@dataclass(frozen=True)
class Walk:
    """One adapter's table and the walks that find what its vendor client raises."""

    table: VendorErrors
    walks: tuple[Callable[[], Iterable[type[BaseException]]], ...]
    not_reached: Mapping[type[BaseException], str] = field(default_factory=dict)
    """Classes the client can raise that the adapter never makes it raise, with the reason."""

    def vendor_classes(self) -> list[type[BaseException]]:
        found: set[type[BaseException]] = set()
        for walk in self.walks:
            found.update(walk())
        return sorted(found - set(self.not_reached), key=lambda cls: cls.__qualname__)


WALKS = {
    "ollama": Walk(
        OLLAMA,
        (ollama_raises, httpx_errors, ollama_exports),
        not_reached={
            ValueError: "raised for images and web search, which this adapter does not use",
            KeyError: "raised by subscripting response models, which this adapter does not do",
        },
    ),
    "openai": Walk(OPENAI, (openai_exports, openai_stream_errors)),
}
"""Every adapter table, with the walks of its vendor client."""
