"""Property-based fuzzing of ember's whole HTTP API from its own ``/openapi.json``.

Schemathesis generates valid and invalid requests for every operation the app publishes and
sends them over real HTTP to the real app (:func:`tests.support.live_app.live_app`: uvicorn on
127.0.0.1, SQLite, the bundled embedding model, FAISS, a running local job system, a fake
OpenAI server as the only outside service), authenticated with an ``admin`` token.

Every answer must be no 5xx and have a status and a body the operation documents; every 4xx
of ember's own routes is problem+json whose ``code`` is in ember's error tree and whose
``status`` is the response's (the OpenAI and Ollama dialects: their own shapes, ember's code).

Bounds: 25 valid and 25 invalid examples per operation, derandomized (the same cases every
run), no example database, no shrinking. Each request may take 30 s, so a stream
(``GET /jobs/{job_id}/events``) that stayed open would fail its case, not hang the suite; the
WebSocket route is not in OpenAPI. The test runs every operation and reports every failing
one (its first failing case, with a ``curl`` line to reproduce it).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import (
    response_schema_conformance,
    status_code_conformance,
)

from ember.errors import all_error_classes
from ember.serve_app.problems import PROBLEM_JSON
from tests.support.live_app import LiveApp, live_app

pytestmark = [pytest.mark.slow, pytest.mark.fuzz]

EXAMPLES = 25
"""Cases per operation and generation mode (valid, invalid)."""
CODES = {cls.code: cls.status for cls in all_error_classes()}
STATS: dict[str, int] = {"cases": 0, "operations": 0}


@schemathesis.serializer("application/x-ndjson")
def _json_lines(ctx: Any, value: Any) -> bytes:
    """A JSON Lines body (a collection import): raw text as it is, a list one line per item,
    any other value one line."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    items = value if isinstance(value, list) else [value]
    return "\n".join(json.dumps(item) for item in items).encode()


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApp]:
    with live_app(tmp_path_factory.mktemp("fuzz")) as app:
        yield app


def report(config: pytest.Config, line: str) -> None:
    """Write ``line`` to the terminal, past pytest's capture."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line(line)


def problem_json(ctx: Any, response: Any, case: Any) -> bool | None:
    """Every 4xx and 5xx of ember's own routes is problem+json with a ``code`` of ember's
    tree, its status and the request id; the OpenAI and Ollama dialects answer in their own
    shapes, still with a ``code`` of ember's tree."""
    if response.status_code < 400:
        return None
    media = response.headers.get("content-type", [""])
    media = (media[0] if isinstance(media, list) else media).split(";")[0]
    body = json.loads(response.content)
    tags = set(case.operation.tags or ())
    if "openai" in tags:
        assert media == "application/json", f"{response.status_code}: {media}"
        code = body["error"]["code"]
    elif "ollama" in tags:
        assert media == "application/json", f"{response.status_code}: {media}"
        code = body["code"]
    else:
        assert media == PROBLEM_JSON, f"{response.status_code}: {media}"
        code = body.get("code")
        assert body.get("status") == response.status_code, body
        assert body.get("request_id"), body
    assert code in CODES, f"code {code!r} is not in ember's error tree"
    return True


CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance, problem_json]


def fuzz(operation: Any, mode: GenerationMode, token: str) -> None:
    """Send ``EXAMPLES`` cases of ``mode`` to ``operation``; raises at the first failure."""

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        STATS["cases"] += 1
        case.call_and_validate(
            headers={"Authorization": f"Bearer {token}"}, checks=CHECKS, timeout=30
        )

    run()


def test_every_operation_answers_inside_its_contract(
    api: LiveApp, request: pytest.FixtureRequest
) -> None:
    schema = schemathesis.openapi.from_url(f"{api.url}/openapi.json")
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        STATS["operations"] += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                fuzz(operation, mode, api.token)
            except Unsatisfiable:  # no invalid request exists (no parameters, no body)
                continue
            except (Exception, BaseExceptionGroup) as exc:  # schemathesis' FailureGroup
                failures.append(f"{operation.label} ({mode.value}): {exc}")
    summary = f"openapi fuzz: {STATS['cases']} cases over {STATS['operations']} operations"
    request.node.user_properties.append(("fuzz", summary))
    report(request.config, summary)
    assert STATS["cases"] > STATS["operations"]
    assert not failures, "\n\n".join(failures)
