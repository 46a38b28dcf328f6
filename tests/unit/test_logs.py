"""JSON log lines carry ts, level, service and requestId, plus whatever extra says."""

from __future__ import annotations

import json
import logging

from ember.observability import REQUEST_ID, JsonFormatter


def record(message: str, **extra: object) -> logging.LogRecord:
    logger = logging.getLogger("ember.test")
    rec = logger.makeRecord("ember.test", logging.WARNING, "f.py", 1, message, (), None)
    for key, value in extra.items():
        setattr(rec, key, value)
    return rec


def test_fields_and_request_id_from_context() -> None:
    formatter = JsonFormatter("ember-api")
    token = REQUEST_ID.set("req-1")
    try:
        line = json.loads(formatter.format(record("hello", jobId="j1", _private=1)))
    finally:
        REQUEST_ID.reset(token)
    assert line["level"] == "WARNING"
    assert line["service"] == "ember-api"
    assert line["requestId"] == "req-1"
    assert line["msg"] == "hello"
    assert line["jobId"] == "j1"
    assert "_private" not in line
    assert line["ts"].endswith("+00:00")


def test_request_id_is_null_outside_a_request() -> None:
    line = json.loads(JsonFormatter("ember").format(record("x")))
    assert line["requestId"] is None
