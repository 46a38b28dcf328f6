"""Ollama's ``/api`` wire format: request bodies (:mod:`.requests`), replies and NDJSON lines
(:mod:`.replies`) and the routes (:mod:`.routes`, see its docstring for what is served)."""

from ember.serve_app.compat.ollama.replies import (
    Lines,
    ollama_capabilities,
    piece,
    running_entry,
    show_body,
    tag_entry,
    whole_body,
)
from ember.serve_app.compat.ollama.requests import (
    ChatIn,
    EmbeddingsIn,
    EmbedIn,
    GenerateIn,
    OllamaMessageIn,
    ShowIn,
    chat_messages,
    generation_options,
)
from ember.serve_app.compat.ollama.routes import ollama_error_response, ollama_router

__all__ = [
    "ChatIn",
    "EmbedIn",
    "EmbeddingsIn",
    "GenerateIn",
    "Lines",
    "OllamaMessageIn",
    "ShowIn",
    "chat_messages",
    "generation_options",
    "ollama_capabilities",
    "ollama_error_response",
    "ollama_router",
    "piece",
    "running_entry",
    "show_body",
    "tag_entry",
    "whole_body",
]
