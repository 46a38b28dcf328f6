"""The wire formats ember speaks besides its own: OpenAI's ``/v1`` and Ollama's ``/api``, so
their clients, and the tools built on them, talk to ember unchanged.

Each dialect is a package of three modules: ``requests`` (the request bodies and their
translation into ember's messages and options), ``replies`` (ember's answers, stream events
and errors in the dialect's shape) and ``routes`` (the FastAPI router over the provider router
and the model directory). :mod:`ember.serve_app.compat.shared` holds what both share: the
caller, routing overrides, ``keep_alive``, streams and the dialect error rendering.
"""

from ember.serve_app.compat.ollama import ollama_router
from ember.serve_app.compat.openai import openai_router

__all__ = ["ollama_router", "openai_router"]
