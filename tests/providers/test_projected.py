"""The projected embedder: the Embedder contract over the real MiniLM, and its model ids."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ember.config import load_config
from ember.errors import EmberError
from ember.providers.projected import ProjectedEmbedder, load_projection
from ember.providers.sentence_transformers import SentenceTransformerEmbedder
from ember.services import build_embedder
from ember.testing.embedder import EmbedderContract


def _orthonormal(rows: int, columns: int, seed: int = 3) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((rows, columns)))
    return q.astype(np.float32)


@pytest.fixture(scope="module")
def base() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder().load()


class TestProjectedEmbedder(EmbedderContract):
    @pytest.fixture
    def embedder(self, base: SentenceTransformerEmbedder) -> ProjectedEmbedder:
        return ProjectedEmbedder(base, _orthonormal(base.dim, 128))


def test_the_model_id_names_the_base_the_width_and_the_matrix(base) -> None:
    one = ProjectedEmbedder(base, _orthonormal(base.dim, 32, seed=1))
    other = ProjectedEmbedder(base, _orthonormal(base.dim, 32, seed=2))
    assert one.model_id.startswith(f"{base.model_id}+proj32-") and one.dim == 32
    assert one.model_id != other.model_id
    assert one.base is base


def test_the_config_setting_wraps_the_configured_model(tmp_path: Path, base) -> None:
    path = tmp_path / "p.npy"
    np.save(path, _orthonormal(base.dim, 16))
    embedder, tokenizer = build_embedder(
        load_config(None, {"EMBER_EMBEDDINGS_PROJECTION": str(path)})
    )
    assert isinstance(embedder, ProjectedEmbedder) and embedder.dim == 16
    assert tokenizer.name == base.tokenizer().name


def test_a_bad_matrix_is_a_clear_error(tmp_path: Path, base) -> None:
    with pytest.raises(EmberError, match="cannot read"):
        load_projection(tmp_path / "missing.npy")
    np.save(tmp_path / "flat.npy", np.ones(5, dtype=np.float32))
    with pytest.raises(EmberError, match="not a matrix"):
        load_projection(tmp_path / "flat.npy")
    wrong = ProjectedEmbedder(base, _orthonormal(100, 10))
    with pytest.raises(EmberError, match="expects 100-dimensional"):
        wrong.embed_query("anything")
