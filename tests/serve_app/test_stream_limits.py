"""Concurrent streams per principal over real HTTP: job events (SSE and WebSocket) and
streamed model answers share one count; at the cap the next stream is 429
``too_many_streams``, and closing one frees its slot."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import httpx
import pytest

from tests.serve_app.conftest import Ember, Serve, problem, raw_request, upgrade_lines


@pytest.fixture
def ember(serve: Serve) -> Ember:
    return serve(EMBER_SERVER_MAX_STREAMS_PER_PRINCIPAL="2")


def queued_job(ember: Ember) -> str:
    """A job that stays queued (the dispatcher never runs): its streams stay open."""
    reply = httpx.post(f"{ember.url}/jobs", json={"kind": "steps", "input": {"steps": 1}})
    assert reply.status_code == 201, reply.text
    job_id: str = reply.json()["id"]
    return job_id


@contextmanager
def open_stream(method: str, url: str, **kwargs: object) -> Iterator[httpx.Response]:
    """A stream held open (its first bytes read) until the block ends."""
    with httpx.Client(timeout=10) as client, client.stream(method, url, **kwargs) as reply:  # type: ignore[arg-type]
        chunks = reply.iter_raw()
        if reply.status_code == 200:
            next(chunks)
        yield reply
        del chunks


@contextmanager
def open_websocket(ember: Ember, path: str) -> Iterator[int]:
    """A WebSocket upgrade held open until the block ends; yields the answer's status."""
    lines = upgrade_lines(path, f"127.0.0.1:{ember.port}")
    with socket.create_connection(("127.0.0.1", ember.port), timeout=10) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(4096)
        yield int(head.split()[1])


def admitted_soon(ember: Ember, job_id: str) -> bool:
    """Whether a new event stream is admitted once the server has noticed a client left
    (it does at its next heartbeat); polls up to 10 s."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with open_stream("GET", f"{ember.url}/jobs/{job_id}/events") as reply:
            if reply.status_code == 200:
                return True
        time.sleep(0.05)
    return False


def test_the_third_event_stream_is_429_until_one_closes(ember: Ember) -> None:
    job_id = queued_job(ember)
    events = f"{ember.url}/jobs/{job_id}/events"
    with ExitStack() as held:
        first = held.enter_context(open_stream("GET", events))
        assert first.status_code == 200
        assert held.enter_context(open_websocket(ember, f"/jobs/{job_id}/ws")) == 101
        with open_stream("GET", events) as third:
            assert third.status_code == 429
            third.read()
            assert third.json()["code"] == "too_many_streams"
            assert third.json()["limit"] == 2
        status, headers, body = raw_request(
            ember.port, upgrade_lines(f"/jobs/{job_id}/ws", f"127.0.0.1:{ember.port}")
        )
        assert status == 429 and problem(status, headers, body)["code"] == "too_many_streams"
        chat = {"model": "ticker/m", "stream": True, "messages": [{"role": "user", "content": "x"}]}
        with open_stream("POST", f"{ember.url}/v1/chat/completions", json=chat) as refused:
            assert refused.status_code == 429
            refused.read()
            assert refused.json()["error"]["code"] == "too_many_streams"
        ollama = {"model": "ticker/m", "messages": [{"role": "user", "content": "x"}]}
        with open_stream("POST", f"{ember.url}/api/chat", json=ollama) as refused:
            assert refused.status_code == 429
        assert httpx.get(f"{ember.url}/jobs/{job_id}").status_code == 200, "not a stream"
        held.close()
    assert admitted_soon(ember, job_id)


def test_streamed_answers_count_and_whole_ones_do_not(ember: Ember) -> None:
    chat = {"model": "ticker/m", "stream": True, "messages": [{"role": "user", "content": "x"}]}
    whole = {**chat, "stream": False}
    with ExitStack() as held:
        for path in ["/v1/chat/completions", "/api/chat"]:
            assert (
                held.enter_context(open_stream("POST", f"{ember.url}{path}", json=chat)).status_code
                == 200
            )
        assert httpx.post(f"{ember.url}/v1/chat/completions", json=whole).status_code == 200
        generate = {"model": "ticker/m", "prompt": "x"}
        with open_stream("POST", f"{ember.url}/api/generate", json=generate) as refused:
            assert refused.status_code == 429
    assert admitted_soon(ember, queued_job(ember))
