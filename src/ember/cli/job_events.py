"""How ``ember jobs`` prints a job's events: :func:`describe` makes one line for people of an
event, :class:`Printer` writes them as they arrive (plain lines, JSON lines, or tokens run
together and a progress bar on a terminal)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from ember.cli.jobs_client import Event

__all__ = ["Printer", "describe"]


def _fields(data: dict[str, Any], skip: Iterable[str]) -> str:
    rest = [f"{key}={value}" for key, value in data.items() if key not in set(skip)]
    return f" {' '.join(rest)}" if rest else ""


def _short(data: Any, limit: int = 200) -> str:
    text = json.dumps(data, ensure_ascii=False)
    return text if len(text) <= limit else f"{text[:limit]}… (`ember jobs show ID --result`)"


def describe(event: Event) -> str:
    """One line for people: ``state: running (attempt 1)``, ``log: ...``, ``progress: 3/10``."""
    data = event.data
    if event.type == "state":
        extras = [f"attempt {data['attempt']}"] if "attempt" in data else []
        extras += [str(data[key]) for key in ("reason", "code") if data.get(key)]
        return f"state: {data.get('state')}" + (f" ({', '.join(extras)})" if extras else "")
    if event.type == "log":
        return f"log: {data.get('message', '')}{_fields(data, {'message'})}"
    if event.type == "progress":
        total = data.get("total")
        count = f"{data.get('done')}/{total}" if total is not None else str(data.get("done"))
        return f"progress: {count}{_fields(data, {'done', 'total'})}"
    if event.type == "error":
        return f"error: {data.get('code')}: {data.get('detail')}"
    return f"{event.type}: {_short(data)}"


class Printer:
    """Writes a job's events as they arrive: one JSON object per line (``as_json``), or a line
    per event with ``token`` texts run together and, on a terminal, ``progress`` as a bar.
    An ``error`` event is left to the ``error[code]`` line the command ends with."""

    def __init__(self, out: Console, as_json: bool = False) -> None:
        self._out = out
        self._json = as_json
        self._in_tokens = False
        self._bar: Progress | None = None
        self._task: TaskID | None = None

    def __call__(self, event: Event) -> None:
        if self._json:
            line = json.dumps({"seq": event.seq, "type": event.type, "data": event.data})
            self._out.out(line, highlight=False)
            return
        if event.type == "token":
            self._stop_bar()
            self._out.out(str(event.data.get("text", "")), end="", highlight=False)
            self._in_tokens = True
            return
        self._end_tokens()
        if event.type == "progress" and self._out.is_terminal:
            self._progress(event.data)
        elif event.type != "error":
            if event.final:
                self._stop_bar()
            self._out.print(describe(event), markup=False, highlight=False, soft_wrap=True)

    def close(self) -> None:
        """End an open line of tokens and a progress bar."""
        self._end_tokens()
        self._stop_bar()

    def _end_tokens(self) -> None:
        if self._in_tokens:
            self._out.out("")
            self._in_tokens = False

    def _stop_bar(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar, self._task = None, None

    def _progress(self, data: dict[str, Any]) -> None:
        total = data.get("total")
        done = data.get("done") or 0
        phase = str(data.get("phase") or "progress")
        detail = _fields(data, {"done", "total", "phase"}).strip()
        if self._bar is None or self._task is None:
            self._bar = Progress(
                TextColumn("{task.description}", markup=False, style="bold"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[detail]}", markup=False),
                TimeElapsedColumn(),
                console=self._out,
            )
            self._bar.start()
            self._task = self._bar.add_task(phase, total=total, completed=done, detail=detail)
        self._bar.update(self._task, description=phase, completed=done, total=total, detail=detail)
