"""The :class:`~ember.providers.protocol.Embedder` contract as a pytest mixin.

An adapter's test module subclasses :class:`EmbedderContract` and provides an ``embedder``
fixture (it may be module-scoped: the tests never change it)::

    class TestMyEmbedder(EmbedderContract):
        @pytest.fixture
        def embedder(self): ...

The similarity test uses :data:`RETRIEVAL_CASES`, written so that both a trained model and a
bag-of-words embedding rank each query's own passage first: queries and passages share words
as well as meaning. An embedder returning constant or random vectors fails it.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from ember.providers.protocol import Embedder

__all__ = ["RETRIEVAL_CASES", "TEXTS", "EmbedderContract"]

TEXTS: list[str] = [
    "The mitochondria is the powerhouse of the cell.",
    "short",
    "Caffeine taken late in the day disrupts sleep quality and shortens deep sleep. " * 4,
    "Crème brûlée, naïve café, 東京 and emoji 🎉 in one line.",
    "  leading and trailing whitespace\t\n",
    "Vaccines train the immune system to recognise a pathogen.",
    "Rivers carry sediment from mountains to the sea.",
]
"""Passages of varied length, script and whitespace (more than one request's worth for small
batch sizes)."""

RETRIEVAL_CASES: list[tuple[str, str]] = [
    ("How do I reset my password?", "I forgot my password and need to reset it."),
    ("does caffeine hurt sleep", "Caffeine late in the day makes sleep shorter and worse."),
    ("capital city of France", "Paris is the capital of France."),
    ("volcano eruption ash", "The volcano erupted and covered the village in ash."),
    (
        "how plants use photosynthesis",
        "Plants turn sunlight into chemical energy by photosynthesis.",
    ),
]
"""(query, the one passage among all the cases' passages that answers it). A query shares
words with its own passage only."""


class EmbedderContract:
    """Tests every :class:`~ember.providers.protocol.Embedder` must pass.

    Needs an ``embedder`` fixture. ``tolerance`` bounds how far vectors of the same text may
    differ (alone or in a batch, call to call) and how far norms may stray from 1; an adapter on
    hardware with less exact arithmetic may loosen it.
    """

    tolerance = 1e-4

    def assert_unit_rows(self, vectors: npt.NDArray[np.float32]) -> None:
        """Every row (or the one vector) has L2 norm 1 within :attr:`tolerance`."""
        norms = np.linalg.norm(np.atleast_2d(vectors), axis=1)
        np.testing.assert_allclose(norms, 1.0, atol=self.tolerance)

    def test_model_id_and_dim(self, embedder: Embedder) -> None:
        assert isinstance(embedder.model_id, str) and embedder.model_id
        assert isinstance(embedder.dim, int) and embedder.dim > 0

    def test_documents_shape_and_dtype(self, embedder: Embedder) -> None:
        vectors = embedder.embed_documents(TEXTS)
        assert isinstance(vectors, np.ndarray)
        assert vectors.shape == (len(TEXTS), embedder.dim)
        assert vectors.dtype == np.float32
        assert np.all(np.isfinite(vectors))

    def test_query_shape_and_dtype(self, embedder: Embedder) -> None:
        vector = embedder.embed_query("What powers the cell?")
        assert isinstance(vector, np.ndarray)
        assert vector.shape == (embedder.dim,)
        assert vector.dtype == np.float32

    def test_vectors_are_normalized(self, embedder: Embedder) -> None:
        self.assert_unit_rows(embedder.embed_documents(TEXTS))
        self.assert_unit_rows(embedder.embed_query("What powers the cell?"))

    def test_empty_input(self, embedder: Embedder) -> None:
        vectors = embedder.embed_documents([])
        assert vectors.shape == (0, embedder.dim)
        assert vectors.dtype == np.float32

    def test_any_sequence_is_accepted(self, embedder: Embedder) -> None:
        as_list = embedder.embed_documents(TEXTS[:3])
        as_tuple = embedder.embed_documents(tuple(TEXTS[:3]))
        np.testing.assert_allclose(as_tuple, as_list, atol=self.tolerance)

    def test_deterministic(self, embedder: Embedder) -> None:
        first = embedder.embed_documents(TEXTS)
        second = embedder.embed_documents(TEXTS)
        np.testing.assert_allclose(second, first, atol=self.tolerance)
        query = embedder.embed_query(TEXTS[0])
        np.testing.assert_allclose(embedder.embed_query(TEXTS[0]), query, atol=self.tolerance)

    def test_repeated_text_in_one_batch_gets_one_vector(self, embedder: Embedder) -> None:
        vectors = embedder.embed_documents([TEXTS[0], TEXTS[2], TEXTS[0]])
        np.testing.assert_allclose(vectors[2], vectors[0], atol=self.tolerance)

    def test_batch_preserves_order(self, embedder: Embedder) -> None:
        batch = embedder.embed_documents(TEXTS)
        alone = np.stack([embedder.embed_documents([text])[0] for text in TEXTS])
        np.testing.assert_allclose(batch, alone, atol=self.tolerance)
        reversed_batch = embedder.embed_documents(TEXTS[::-1])
        np.testing.assert_allclose(reversed_batch[::-1], batch, atol=self.tolerance)

    def test_different_texts_get_different_vectors(self, embedder: Embedder) -> None:
        vectors = embedder.embed_documents(TEXTS)
        similarity = vectors @ vectors.T
        off_diagonal = similarity[~np.eye(len(TEXTS), dtype=bool)]
        assert np.all(off_diagonal < 1 - 1e-3)

    def test_query_and_documents_share_a_space(self, embedder: Embedder) -> None:
        query = embedder.embed_query(TEXTS[0])
        documents = embedder.embed_documents(TEXTS)
        assert query.shape == documents.shape[1:] == (embedder.dim,)
        assert int(np.argmax(documents @ query)) == 0

    def test_each_query_ranks_its_passage_first(self, embedder: Embedder) -> None:
        passages = embedder.embed_documents([passage for _, passage in RETRIEVAL_CASES])
        for expected, (query, _) in enumerate(RETRIEVAL_CASES):
            scores = passages @ embedder.embed_query(query)
            others = np.delete(scores, expected)
            assert int(np.argmax(scores)) == expected, (query, scores)
            assert scores[expected] > others.max() + 0.05, (query, scores)
