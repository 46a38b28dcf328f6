"""The OpenAI-compatible embedder against a fake server over real HTTP, and its error mapping."""

from __future__ import annotations

import base64
import socket
from collections.abc import Iterator
from typing import Any

import httpx2
import numpy as np
import openai
import pytest

from ember.errors import (
    DimensionMismatch,
    ProviderAuthFailed,
    ProviderBadRequest,
    ProviderError,
    ProviderModelNotFound,
    ProviderRateLimited,
    ProviderTimeout,
    ProviderUnavailable,
)
from ember.providers.openai_embeddings import OPENAI_ERRORS, OpenAIEmbedder, provider_error
from ember.testing.embedder import TEXTS, EmbedderContract
from tests.fakes.openai_fake import FakeOpenAIServer, bag_of_words, words_of
from tests.providers.vendor_classes import openai_exports

DIM = 64
KEY = "test-key"
MODEL = "fake-embed"


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(dim=DIM, models=(MODEL,), api_key=KEY) as running:
        yield running


@pytest.fixture
def fake(server: FakeOpenAIServer) -> Iterator[FakeOpenAIServer]:
    server.reset()
    yield server
    server.reset()


MADE: list[OpenAIEmbedder] = []


@pytest.fixture(autouse=True)
def _closed() -> Iterator[None]:
    """Every embedder a test made is closed after it (its pooled sockets with it)."""
    yield
    while MADE:
        MADE.pop().close()


def make(
    fake: FakeOpenAIServer, model: str = MODEL, dim: int = DIM, **settings: Any
) -> OpenAIEmbedder:
    options = {"base_url": fake.base_url, "api_key": KEY, "timeout_s": 5, **settings}
    made = OpenAIEmbedder(model, dim, **options)
    MADE.append(made)
    return made


def expected(text: str) -> np.ndarray:
    vector = bag_of_words(words_of(text), DIM)
    return vector / np.linalg.norm(vector)


class TestOpenAIEmbedderContract(EmbedderContract):
    @pytest.fixture
    def embedder(self, fake: FakeOpenAIServer) -> OpenAIEmbedder:
        return make(fake, batch_size=3)


def test_vectors_are_the_servers_renormalized(fake: FakeOpenAIServer) -> None:
    vectors = make(fake).embed_documents(TEXTS)
    raw_norm = np.linalg.norm(bag_of_words(words_of(TEXTS[2]), DIM))
    assert raw_norm > 1.5
    np.testing.assert_allclose(vectors, np.stack([expected(t) for t in TEXTS]), atol=1e-6)


def test_requests_use_the_clients_base64_default(fake: FakeOpenAIServer) -> None:
    make(fake).embed_query("hello")
    (call,) = fake.calls
    assert call.path == "/v1/embeddings"
    assert call.body == {"model": MODEL, "input": ["hello"], "encoding_format": "base64"}
    assert call.headers["authorization"] == f"Bearer {KEY}"


def test_batches_split_at_batch_size_and_keep_order(fake: FakeOpenAIServer) -> None:
    texts = [f"passage number {i} about topic {i * 7}" for i in range(10)]
    vectors = make(fake, batch_size=4).embed_documents(texts)
    assert [call.body["input"] for call in fake.calls] == [texts[0:4], texts[4:8], texts[8:10]]
    np.testing.assert_allclose(vectors, np.stack([expected(t) for t in texts]), atol=1e-6)


def test_items_are_placed_by_index_not_position(fake: FakeOpenAIServer) -> None:
    fake.scramble = True
    texts = ["alpha beta", "gamma", "delta epsilon zeta"]
    vectors = make(fake).embed_documents(texts)
    np.testing.assert_allclose(vectors, np.stack([expected(t) for t in texts]), atol=1e-6)


def test_empty_input_sends_no_request(fake: FakeOpenAIServer) -> None:
    assert make(fake).embed_documents([]).shape == (0, DIM)
    assert fake.calls == []


def test_one_str_is_not_a_list_of_texts(fake: FakeOpenAIServer) -> None:
    with pytest.raises(TypeError):
        make(fake).embed_documents("hello")
    assert fake.calls == []


def test_other_dimension_is_a_mismatch(fake: FakeOpenAIServer) -> None:
    with pytest.raises(DimensionMismatch) as caught:
        make(fake, dim=DIM + 1).embed_documents(["hello"])
    assert caught.value.code == "dimension_mismatch"
    assert caught.value.extra == {"expected": DIM + 1, "got": DIM}


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, ProviderBadRequest),
        (401, ProviderAuthFailed),
        (403, ProviderAuthFailed),
        (404, ProviderModelNotFound),
        (408, ProviderTimeout),
        (409, ProviderError),
        (413, ProviderError),
        (422, ProviderBadRequest),
        (429, ProviderRateLimited),
        (500, ProviderUnavailable),
        (502, ProviderUnavailable),
        (503, ProviderUnavailable),
    ],
)
def test_http_errors_map_to_ember_errors(
    fake: FakeOpenAIServer, status: int, error: type[ProviderError]
) -> None:
    fake.fail_next(status, message="the fake says no")
    with pytest.raises(ProviderError) as caught:
        make(fake).embed_documents(["hello"])
    assert type(caught.value) is error
    assert caught.value.code == error.code
    assert caught.value.extra["status"] == status
    assert "the fake says no" not in caught.value.detail, "the upstream body stays in the log"
    assert f"answered HTTP {status}" in caught.value.detail
    assert isinstance(caught.value.__cause__, openai.APIStatusError)
    assert len(fake.calls) == 1


def test_rate_limit_carries_retry_after(fake: FakeOpenAIServer) -> None:
    fake.fail_next(429, retry_after=2.5)
    with pytest.raises(ProviderRateLimited) as caught:
        make(fake).embed_query("hello")
    assert caught.value.code == "provider_rate_limited"
    assert caught.value.extra == {"status": 429, "retry_after_s": 2.5}


def test_wrong_key_is_auth_failed(fake: FakeOpenAIServer) -> None:
    with pytest.raises(ProviderAuthFailed) as caught:
        make(fake, api_key="wrong").embed_query("hello")
    assert caught.value.code == "provider_auth_failed"


def test_unknown_model_is_a_bad_request(fake: FakeOpenAIServer) -> None:
    with pytest.raises(ProviderBadRequest, match="answered HTTP 404") as caught:
        make(fake, model="no-such-model").embed_query("hello")
    assert "does not exist" not in caught.value.detail


def test_empty_string_is_refused_like_openai_does(fake: FakeOpenAIServer) -> None:
    with pytest.raises(ProviderBadRequest):
        make(fake).embed_documents(["fine", ""])


def test_stall_past_the_timeout_is_a_timeout(fake: FakeOpenAIServer) -> None:
    fake.stall_next(10)
    embedder = make(fake, timeout_s=0.3)
    with pytest.raises(ProviderTimeout) as caught:
        embedder.embed_query("hello")
    assert caught.value.code == "provider_timeout"
    assert isinstance(caught.value.__cause__, openai.APITimeoutError)
    assert len(fake.calls) == 1
    assert embedder.embed_query("hello").shape == (DIM,)


def test_nothing_listening_is_unavailable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    embedder = OpenAIEmbedder(MODEL, DIM, base_url=f"http://127.0.0.1:{port}/v1", api_key=KEY)
    with pytest.raises(ProviderUnavailable) as caught:
        embedder.embed_query("hello")
    assert caught.value.code == "provider_unavailable"
    assert isinstance(caught.value.__cause__, openai.APIConnectionError)


def test_client_retries_are_off_by_default_and_can_be_set(fake: FakeOpenAIServer) -> None:
    fake.fail_next(500, retry_after=0.01)
    with pytest.raises(ProviderUnavailable):
        make(fake).embed_query("hello")
    assert len(fake.calls) == 1

    fake.reset()
    fake.fail_next(500, retry_after=0.01)
    assert make(fake, max_retries=1).embed_query("hello").shape == (DIM,)
    assert len(fake.calls) == 2


def test_injected_client_gets_the_embedders_timeout_and_retries(fake: FakeOpenAIServer) -> None:
    with openai.OpenAI(base_url=fake.base_url, api_key=KEY, max_retries=5, timeout=60) as client:
        embedder = OpenAIEmbedder(MODEL, DIM, client=client, timeout_s=0.3)
        fake.stall_next(10)
        with pytest.raises(ProviderTimeout):
            embedder.embed_query("hello")
    assert len(fake.calls) == 1


def test_client_and_url_together_are_refused(fake: FakeOpenAIServer) -> None:
    with (
        openai.OpenAI(base_url=fake.base_url, api_key=KEY) as client,
        pytest.raises(ValueError, match="not both"),
    ):
        OpenAIEmbedder(MODEL, DIM, base_url=fake.base_url, client=client)


@pytest.mark.parametrize("settings", [{"dim": 0}, {"batch_size": 0}, {"timeout_s": 0}])
def test_settings_out_of_range_are_refused(
    fake: FakeOpenAIServer, settings: dict[str, int]
) -> None:
    with pytest.raises(ValueError, match="must be"):
        make(fake, **settings)


def test_local_server_needs_no_key(fake: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    embedder = OpenAIEmbedder(MODEL, DIM, base_url=fake.base_url)
    fake.api_key = None
    try:
        assert embedder.embed_query("hello").shape == (DIM,)
    finally:
        fake.api_key = KEY


def test_openai_without_a_key_is_auth_failed(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENAI_API_KEY", "OPENAI_ADMIN_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ProviderAuthFailed, match="OPENAI_API_KEY"):
        OpenAIEmbedder("text-embedding-3-small", 1536)


def test_model_id_names_the_model(fake: FakeOpenAIServer) -> None:
    assert make(fake).model_id == f"openai:{MODEL}"


def test_the_walk_finds_the_classes_the_client_raises() -> None:
    """The completeness test of the table is in test_vendor_errors.py, over this walk."""
    exported = set(openai_exports())
    assert {openai.APITimeoutError, openai.RateLimitError, openai.InternalServerError} <= exported
    assert len(exported) >= 15
    assert exported <= set(OPENAI_ERRORS)


@pytest.mark.parametrize(
    ("vendor", "error"),
    [
        (openai.APITimeoutError, ProviderTimeout),
        (openai.APIConnectionError, ProviderUnavailable),
        (openai.RateLimitError, ProviderRateLimited),
        (openai.AuthenticationError, ProviderAuthFailed),
        (openai.PermissionDeniedError, ProviderAuthFailed),
        (openai.BadRequestError, ProviderBadRequest),
        (openai.UnprocessableEntityError, ProviderBadRequest),
        (openai.NotFoundError, ProviderModelNotFound),
        (openai.InternalServerError, ProviderUnavailable),
        (openai.OpenAIError, ProviderError),
    ],
    ids=lambda value: value.__name__,
)
def test_mapping_table(vendor: type[openai.OpenAIError], error: type[ProviderError]) -> None:
    assert OPENAI_ERRORS[vendor] is error


def test_most_specific_class_wins() -> None:
    request = httpx2.Request("POST", "http://127.0.0.1:9/v1/embeddings")
    timeout = openai.APITimeoutError(request=request)
    assert type(provider_error(timeout, "call")) is ProviderTimeout
    oauth = openai.OAuthError(response=httpx2.Response(401, request=request), body=None)
    assert type(provider_error(oauth, "call")) is ProviderAuthFailed
    plain = provider_error(openai.OpenAIError("odd"), "call")
    assert type(plain) is ProviderError
    assert plain.detail == "call: failed (provider error, OpenAIError)"


@pytest.mark.parametrize(
    ("headers", "extra"),
    [
        ({"retry-after-ms": "1500"}, {"status": 429, "retry_after_s": 1.5}),
        ({"retry-after": "3"}, {"status": 429, "retry_after_s": 3.0}),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, {"status": 429, "retry_after_s": 0.0}),
        ({"retry-after": "soon"}, {"status": 429}),
        ({}, {"status": 429}),
    ],
)
def test_retry_after_forms(headers: dict[str, str], extra: dict[str, float]) -> None:
    request = httpx2.Request("POST", "http://127.0.0.1:9/v1/embeddings")
    response = httpx2.Response(429, headers=headers, request=request)
    error = provider_error(openai.RateLimitError("slow down", response=response, body=None), "call")
    assert type(error) is ProviderRateLimited
    assert error.extra == extra


def test_the_fake_speaks_the_openai_wire_format(fake: FakeOpenAIServer) -> None:
    headers = {"authorization": f"Bearer {KEY}"}
    url = f"{fake.base_url}/embeddings"
    body = {"model": MODEL, "input": "hello world", "encoding_format": "float"}
    reply = httpx2.post(url, json=body, headers=headers).json()
    assert reply["object"] == "list"
    assert reply["model"] == MODEL
    assert reply["usage"] == {"prompt_tokens": 2, "total_tokens": 2}
    (item,) = reply["data"]
    assert (item["object"], item["index"], len(item["embedding"])) == ("embedding", 0, DIM)
    packed = {"model": MODEL, "input": "hello world", "encoding_format": "base64"}
    (b64,) = httpx2.post(url, json=packed, headers=headers).json()["data"]
    unpacked = np.frombuffer(base64.b64decode(b64["embedding"]), dtype="<f4")
    np.testing.assert_array_equal(unpacked, item["embedding"])
    tokens = httpx2.post(url, json={"model": MODEL, "input": [[1, 2], [3]]}, headers=headers)
    assert [row["index"] for row in tokens.json()["data"]] == [0, 1]
    with openai.OpenAI(base_url=fake.base_url, api_key=KEY) as client:
        assert [model.id for model in client.models.list()] == [MODEL]
