"""Prompt templates: how chat messages become one prompt for a model without a chat template.

``qa`` suits base models such as the bundled Gemma 3 270M: a system message becomes a preamble,
each user turn ``Question: …``, each assistant turn ``Answer: …``, and the prompt ends with
``Answer:``; the stop sequences end the answer where the model would start the next turn.
``gguf`` means the model file's own chat template (llama.cpp renders it), for instruction-tuned
models.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ember.chat import ChatMessage
from ember.errors import ProviderBadRequest

__all__ = ["GGUF", "TEMPLATES", "PromptTemplate", "RenderedPrompt", "template"]


@dataclass(frozen=True)
class RenderedPrompt:
    """The prompt text and the stop sequences that end the answer."""

    text: str
    stop: tuple[str, ...]


@dataclass(frozen=True)
class PromptTemplate:
    """A plain-text chat rendering; ``prefixes`` per role, joined by blank lines."""

    name: str
    prefixes: dict[str, str]
    answer_prefix: str
    stop: tuple[str, ...]

    def render(self, messages: Sequence[ChatMessage]) -> RenderedPrompt:
        """The prompt for ``messages``, ending where the model's answer starts.

        :raises ProviderBadRequest: no messages, or a role the template has no prefix for.
        """
        if not messages:
            raise ProviderBadRequest("a chat needs at least one message")
        parts: list[str] = []
        for message in messages:
            prefix = self.prefixes.get(message.role)
            if prefix is None:
                raise ProviderBadRequest(
                    f"the {self.name!r} prompt template has no {message.role!r} role"
                )
            parts.append(f"{prefix}{message.content.strip()}")
        parts.append(self.answer_prefix)
        return RenderedPrompt("\n".join(parts), self.stop)


TEMPLATES: dict[str, PromptTemplate] = {
    "qa": PromptTemplate(
        name="qa",
        prefixes={"system": "", "user": "Question: ", "assistant": "Answer: "},
        answer_prefix="Answer:",
        stop=("\nQuestion:", "Question:", "\n\n"),
    ),
}
"""Plain-text templates by name; ``gguf`` is not here because llama.cpp renders it."""

GGUF = "gguf"
"""The template name that means: the chat template stored in the model file."""


def template(name: str) -> PromptTemplate | None:
    """The plain-text template ``name``, or ``None`` for ``gguf``.

    :raises ProviderBadRequest: no template has this name.
    """
    if name == GGUF:
        return None
    found = TEMPLATES.get(name)
    if found is None:
        known = ", ".join([*sorted(TEMPLATES), GGUF])
        raise ProviderBadRequest(f"unknown prompt template {name!r}; known: {known}")
    return found
