"""The local embedder with the real bundled all-MiniLM-L6-v2 (loaded once for the module)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from ember.errors import ProviderError, ProviderUnavailable
from ember.providers.hf_tokenizer import MINILM_ID, minilm_path
from ember.testing.embedder import EmbedderContract

if TYPE_CHECKING:
    from ember.providers.sentence_transformers import SentenceTransformerEmbedder

pytestmark = pytest.mark.slow

LONG = " ".join(f"word{i % 50} is followed by more text" for i in range(120))


def embedder_class() -> type[SentenceTransformerEmbedder]:
    from ember.providers.sentence_transformers import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder


@pytest.fixture(scope="module")
def minilm() -> SentenceTransformerEmbedder:
    return embedder_class()().load()


class TestSentenceTransformerContract(EmbedderContract):
    @pytest.fixture
    def embedder(self, minilm: SentenceTransformerEmbedder) -> SentenceTransformerEmbedder:
        return minilm


def test_bundled_model(minilm: SentenceTransformerEmbedder) -> None:
    assert minilm.model_id == MINILM_ID
    assert minilm.dim == 384
    assert minilm.max_seq_length == 256
    import torch

    assert minilm.device == ("cuda" if torch.cuda.is_available() else "cpu")
    assert minilm.loaded


def test_construction_loads_nothing_and_the_tokenizer_needs_no_weights() -> None:
    embedder = embedder_class()()
    assert not embedder.loaded
    tokenizer = embedder.tokenizer()
    assert tokenizer.name == MINILM_ID
    assert tokenizer.count("word " * 300) == 300
    assert not embedder.loaded


def test_the_bundled_id_or_path_selects_the_bundled_model() -> None:
    assert embedder_class()(MINILM_ID).model_id == MINILM_ID
    assert embedder_class()(str(minilm_path())).model_id == MINILM_ID
    assert embedder_class()(model_id="custom/name").model_id == "custom/name"


def test_long_passages_are_truncated_not_refused(minilm: SentenceTransformerEmbedder) -> None:
    assert minilm.tokenizer().count(LONG) > 2 * minilm.max_seq_length
    vectors = minilm.embed_documents([LONG, LONG + " and a different ending entirely"])
    assert vectors.shape == (2, 384)
    np.testing.assert_allclose(vectors[1], vectors[0], atol=1e-5)


def test_max_seq_length_changes_the_window_and_the_id(minilm: SentenceTransformerEmbedder) -> None:
    short = embedder_class()(max_seq_length=16)
    assert short.model_id == f"{MINILM_ID}@max_seq_length=16"
    assert short.max_seq_length == 16
    head = "Mitochondria produce most of the chemical energy needed by the cell to power it"
    texts = [f"{head}, said the teacher.", f"{head}, while volcanoes erupt in Iceland today."]
    assert np.allclose(*short.embed_documents(texts), atol=1e-5)
    assert not np.allclose(*minilm.embed_documents(texts), atol=1e-3)


def test_one_str_is_not_a_list_of_texts(minilm: SentenceTransformerEmbedder) -> None:
    with pytest.raises(TypeError):
        minilm.embed_documents("hello")


def test_an_empty_string_still_gets_a_unit_vector(minilm: SentenceTransformerEmbedder) -> None:
    vector = minilm.embed_documents([""])[0]
    assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-5)


def test_a_missing_model_fails_on_first_use_as_unavailable(tmp_path: Path) -> None:
    embedder = embedder_class()(str(tmp_path / "absent"))
    assert embedder.model_id == str(tmp_path / "absent")
    with pytest.raises(ProviderUnavailable) as caught:
        embedder.embed_query("hello")
    assert caught.value.code == "provider_unavailable"
    assert caught.value.__cause__ is not None


def test_a_broken_model_directory_is_unavailable(tmp_path: Path) -> None:
    (tmp_path / "modules.json").write_text("not json")
    embedder = embedder_class()(str(tmp_path))
    assert embedder.model_id == tmp_path.name
    with pytest.raises(ProviderUnavailable):
        embedder.load()
    with pytest.raises(ProviderUnavailable):
        embedder.tokenizer()


def test_model_failures_become_provider_errors(
    minilm: SentenceTransformerEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sentence_transformers import SentenceTransformer

    def explode(*args: object, **kwargs: object) -> None:
        raise RuntimeError("kernel failed")

    monkeypatch.setattr(SentenceTransformer, "encode_document", explode)
    with pytest.raises(ProviderError, match="kernel failed") as caught:
        minilm.embed_documents(["hello"])
    assert caught.value.code == "provider_error"


@pytest.mark.parametrize("settings", [{"batch_size": 0}, {"max_seq_length": 0}, {"num_threads": 0}])
def test_settings_out_of_range_are_refused(settings: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        embedder_class()(**settings)


def test_num_threads_sets_torchs_threads_at_load() -> None:
    import torch

    before = torch.get_num_threads()
    try:
        embedder_class()(num_threads=1).load()
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
