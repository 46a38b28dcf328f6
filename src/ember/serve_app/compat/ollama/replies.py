"""Ollama's response bodies: stream lines, whole answers, tags, show and ps entries."""

from __future__ import annotations

import json
import time
from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from typing import Any

from ember.chat import Capability, Completion, Delta, ModelInfo, ToolCall, Usage
from ember.errors import EmberError, ProviderError
from ember.models.records import LoadedModel

__all__ = [
    "Lines",
    "ollama_capabilities",
    "piece",
    "running_entry",
    "show_body",
    "tag_entry",
    "whole_body",
]


def _ollama_calls(calls: list[ToolCall] | None) -> list[dict[str, Any]] | None:
    """Tool calls in Ollama's shape: the arguments an object, not JSON text.

    :raises ProviderError: the model's arguments are not a JSON object, which Ollama's shape
        cannot carry; the detail quotes them as the model wrote them.
    """
    if not calls:
        return None
    out = []
    for call in calls:
        if call.arguments is None:
            raise ProviderError(
                f"the tool call {call.name!r} has no JSON object as its arguments: "
                f"{_clip(call.raw_arguments)!r}",
                extra={"tool": call.name, "arguments": call.raw_arguments},
            )
        entry: dict[str, Any] = {"function": {"name": call.name, "arguments": call.arguments}}
        if call.id:
            entry["id"] = call.id
        out.append(entry)
    return out


def _clip(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return aware.isoformat().replace("+00:00", "Z")


def _done_reason(finish: str | None) -> str:
    return "length" if finish == "length" else "stop"


def piece(
    model: str, chat: bool, text: str, calls: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """One answer object without its ``done``: ``message`` for a chat, ``response`` else."""
    line: dict[str, Any] = {"model": model, "created_at": _now()}
    if chat:
        message: dict[str, Any] = {"role": "assistant", "content": text}
        if calls:
            message["tool_calls"] = calls
        line["message"] = message
    else:
        line["response"] = text
    return line


def _line(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode() + b"\n"


class Lines:
    """The NDJSON lines of one chat (``chat=True``) or generate stream."""

    def __init__(self, model: str, chat: bool, started_ns: int) -> None:
        self._model, self._chat = model, chat
        self._started_ns = started_ns
        self._first_ns: int | None = None
        self._finish: str | None = None

    def delta(self, delta: Delta) -> list[bytes]:
        self._first_ns = self._first_ns or time.perf_counter_ns()
        self._finish = delta.finish_reason or self._finish
        calls = _ollama_calls(delta.tool_calls)
        if not delta.text and not calls:
            return []
        return [_line({**piece(self._model, self._chat, delta.text, calls), "done": False})]

    def end(self, usage: Usage) -> list[bytes]:
        """The ``done`` line: finish reason, durations and ``usage``'s counts."""
        now = time.perf_counter_ns()
        first = self._first_ns or now
        final = {
            **piece(self._model, self._chat, ""),
            "done": True,
            "done_reason": _done_reason(self._finish),
            "total_duration": now - self._started_ns,
            "prompt_eval_count": usage.prompt_tokens,
            "prompt_eval_duration": first - self._started_ns,
            "eval_count": usage.completion_tokens,
            "eval_duration": now - first,
        }
        return [_line(final)]

    def error(self, error: EmberError) -> list[bytes]:
        return [_line({"error": error.detail, "code": error.code})]


def whole_body(model: str, chat: bool, answer: Completion, started_ns: int) -> dict[str, Any]:
    """The one object of a ``"stream": false`` answer; durations from ``started_ns``, counts
    from the answer's usage, which the router settled (the provider's, else the estimate)."""
    usage = answer.usage
    elapsed = time.perf_counter_ns() - started_ns
    return {
        **piece(model, chat, answer.text, _ollama_calls(answer.tool_calls)),
        "done": True,
        "done_reason": _done_reason(answer.finish_reason),
        "total_duration": elapsed,
        "prompt_eval_count": usage.prompt_tokens,
        "eval_count": usage.completion_tokens,
        "eval_duration": elapsed,
    }


def _text(details: dict[str, Any], key: str) -> str:
    value = details.get(key)
    return value if isinstance(value, str) else ""


def _details(info: ModelInfo) -> dict[str, Any]:
    families = info.details.get("families")
    return {
        "parent_model": "",
        "format": _text(info.details, "format"),
        "family": _text(info.details, "family"),
        "families": families if isinstance(families, list) else None,
        "parameter_size": _text(info.details, "parameter_size"),
        "quantization_level": _text(info.details, "quantization_level"),
    }


def _modified(info: ModelInfo) -> str | None:
    value = info.details.get("modified_at")
    if isinstance(value, datetime):
        return _iso(value)
    return value if isinstance(value, str) else None


def tag_entry(info: ModelInfo) -> dict[str, Any]:
    """A model of ``/api/tags``; ``ember`` names its provider, context length and whether it
    is loaded at start (``warm``: a local model registered with ``--warm``)."""
    return {
        "name": info.name,
        "model": info.name,
        "modified_at": _modified(info),
        "size": info.size_bytes or 0,
        "digest": info.digest or "",
        "details": _details(info),
        "ember": {
            "provider": info.provider,
            "context_length": info.context_length,
            "warm": info.details.get("warm") is True,
        },
    }


def ollama_capabilities(can: Collection[Capability], details: dict[str, Any]) -> list[str]:
    """What a model of a provider that ``can`` do all that does, in Ollama's words:
    ``completion`` (chat or generate), ``tools`` and ``embedding``; a model whose ``details``
    say it is an embedding model (``kind``) is ``embedding`` only."""
    if details.get("kind") == "embedding":
        return ["embedding"] if Capability.EMBED in can else []
    found = []
    if Capability.CHAT in can or Capability.GENERATE in can:
        found.append("completion")
        if Capability.TOOLS in can:
            found.append("tools")
    if Capability.EMBED in can:
        found.append("embedding")
    return found


def show_body(info: ModelInfo, capabilities: Sequence[str] = ()) -> dict[str, Any]:
    """``/api/show`` of a model: details and model info (no Modelfile: ember has none), and
    its ``capabilities``: the ones its details list (an upstream Ollama's), else
    ``capabilities``."""
    family = _text(info.details, "family")
    model_info: dict[str, Any] = {"general.name": info.name, "ember.provider": info.provider}
    if family:
        model_info["general.architecture"] = family
        if info.context_length is not None:
            model_info[f"{family}.context_length"] = info.context_length
    listed = info.details.get("capabilities")
    return {
        "modelfile": "",
        "parameters": "",
        "template": "",
        "details": _details(info),
        "model_info": model_info,
        "capabilities": listed if isinstance(listed, list) else list(capabilities),
        "modified_at": _modified(info),
    }


def running_entry(model: LoadedModel) -> dict[str, Any]:
    """A model of ``/api/ps``; ``ember`` has its first host's node and whether on GPU, its
    queue over all its hosts, and the host count with each host's node."""
    return {
        "name": model.name,
        "model": model.name,
        "size": model.size_bytes,
        "digest": model.digest,
        "details": {},
        "expires_at": _iso(model.expires_at),
        "size_vram": model.size_bytes if model.gpu else 0,
        "ember": {
            "node_id": model.node_id,
            "gpu": model.gpu,
            "queue_depth": model.queue_depth,
            "replicas": model.replicas,
            "nodes": list(model.nodes) or [model.node_id],
            "loaded_at": _iso(model.loaded_at),
            "last_used_at": _iso(model.last_used_at),
        },
    }
