"""OpenAI's ``/v1`` wire format: request bodies (:mod:`.requests`), replies and SSE chunks
(:mod:`.replies`) and the routes (:mod:`.routes`, see its docstring for what is served)."""

from ember.serve_app.compat.openai.replies import (
    Chunks,
    answer_body,
    encode_vector,
    model_entry,
    openai_error,
)
from ember.serve_app.compat.openai.requests import (
    ChatIn,
    CompletionIn,
    EmbeddingsIn,
    OpenAIMessageIn,
    StreamOptions,
    chat_messages,
    chat_options,
    completion_options,
)
from ember.serve_app.compat.openai.routes import openai_error_response, openai_router

__all__ = [
    "ChatIn",
    "Chunks",
    "CompletionIn",
    "EmbeddingsIn",
    "OpenAIMessageIn",
    "StreamOptions",
    "answer_body",
    "chat_messages",
    "chat_options",
    "completion_options",
    "encode_vector",
    "model_entry",
    "openai_error",
    "openai_error_response",
    "openai_router",
]
