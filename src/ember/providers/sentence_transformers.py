"""Local embeddings with sentence-transformers on torch; the bundled all-MiniLM-L6-v2 by default.

Importing this module imports torch (seconds), which is why ``ember.providers`` exports it
lazily. The model itself loads lazily too: constructing an embedder never touches the weights;
the first call that needs them (or :meth:`SentenceTransformerEmbedder.load`) does.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from sentence_transformers import SentenceTransformer
from tokenizers import Tokenizer as _HfTokenizer
from transformers.utils import logging as transformers_logging

from ember.errors import ProviderError, ProviderUnavailable
from ember.providers.hf_tokenizer import MINILM_ID, HuggingFaceTokenizer, minilm_path

__all__ = ["SentenceTransformerEmbedder"]


class SentenceTransformerEmbedder:
    """An :class:`~ember.providers.protocol.Embedder` running a sentence-transformers model.

    ``model_path`` is a model directory or a hub id already in the local cache; ``None`` or the
    bundled model's own id means the bundled all-MiniLM-L6-v2. ``model_id`` names the vectors;
    when not given it is derived: the bundled model is ``sentence-transformers/all-MiniLM-L6-v2``,
    another directory is named after itself, a hub id after itself, and an explicit
    ``max_seq_length`` adds ``@max_seq_length=N`` (another window gives other vectors for long
    texts).

    ``device`` defaults to ``"cuda"`` when torch sees a GPU, else ``"cpu"``. Texts longer than
    ``max_seq_length`` tokens (256 for MiniLM) are truncated by the model. Calls are serialized:
    one forward pass at a time per embedder, so concurrent callers never run more torch threads
    than one pass uses. ``num_threads`` sets torch's intra-op threads (process-wide) at load time;
    by default torch's own choice stands, which follows ``OMP_NUM_THREADS`` (Ray sets it per actor).

    The weights load on first use, or at :meth:`load` (call it to warm up at start). Importing
    this module takes about 4 s on 2 CPU cores (torch); loading MiniLM then takes about 0.2 s on
    CPU and about 1 s on a GPU (CUDA start-up).
    """

    def __init__(
        self,
        model_path: str | None = None,
        model_id: str | None = None,
        batch_size: int = 32,
        device: str | None = None,
        max_seq_length: int | None = None,
        *,
        num_threads: int | None = None,
    ) -> None:
        """Validate the settings; loads nothing.

        :raises ValueError: ``batch_size``, ``max_seq_length`` or ``num_threads`` is below 1.
        """
        for label, value in (
            ("batch_size", batch_size),
            ("max_seq_length", max_seq_length),
            ("num_threads", num_threads),
        ):
            if value is not None and value < 1:
                raise ValueError(f"{label} must be at least 1, got {value}")
        self._path = str(minilm_path()) if model_path in (None, MINILM_ID) else str(model_path)
        self._name = _model_name(self._path)
        self._model_id = model_id or self._name
        if model_id is None and max_seq_length is not None:
            self._model_id = f"{self._name}@max_seq_length={max_seq_length}"
        self._batch_size = batch_size
        self._device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self._max_seq_length = max_seq_length
        self._num_threads = num_threads
        self._lock = threading.Lock()
        self._model: SentenceTransformer | None = None
        self._dim = 0

    @property
    def model_id(self) -> str:
        """Stable id of the model and its settings (see the class docstring)."""
        return self._model_id

    @property
    def device(self) -> str:
        """The torch device the model runs on."""
        return self._device

    @property
    def loaded(self) -> bool:
        """Whether the weights are in memory."""
        return self._model is not None

    @property
    def dim(self) -> int:
        """Length of every vector (loads the model if needed).

        :raises ProviderUnavailable: the model cannot be loaded.
        """
        self._loaded()
        return self._dim

    @property
    def max_seq_length(self) -> int:
        """Tokens of a text the model reads; the rest is cut off (loads the model if needed).

        :raises ProviderUnavailable: the model cannot be loaded.
        """
        length = self._loaded().max_seq_length
        if length is None:
            raise ProviderUnavailable(f"embedding model {self._name} declares no maximum length")
        return length

    def load(self) -> SentenceTransformerEmbedder:
        """Load the weights now (idempotent) and return ``self``.

        :raises ProviderUnavailable: the model cannot be loaded.
        """
        self._loaded()
        return self

    def embed_documents(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Embed passages: shape ``(len(texts), dim)``, float32, rows L2-normalized, in order.

        :raises TypeError: ``texts`` is one ``str`` rather than a sequence of them.
        :raises ProviderUnavailable: the model cannot be loaded or the device ran out of memory.
        :raises ProviderError: the model failed on this input.
        """
        if isinstance(texts, str):
            raise TypeError("embed_documents takes a sequence of texts, not one str")
        model = self._loaded()
        if not texts:
            return np.empty((0, self._dim), dtype=np.float32)
        return self._encode(model.encode_document, list(texts))

    def embed_query(self, text: str) -> npt.NDArray[np.float32]:
        """Embed one search query: shape ``(dim,)``, float32, L2-normalized.

        :raises ProviderUnavailable: the model cannot be loaded or the device ran out of memory.
        :raises ProviderError: the model failed on this input.
        """
        model = self._loaded()
        return self._encode(model.encode_query, [text]).reshape(self._dim)

    def tokenizer(self) -> HuggingFaceTokenizer:
        """The model's tokenizer, without truncation, named after the model (without settings).

        Read from the model directory's ``tokenizer.json`` when there is one (no weights load);
        otherwise copied from the loaded model.

        :raises ProviderUnavailable: the model cannot be loaded.
        :raises ProviderError: the model has no fast (``tokenizers``) tokenizer.
        """
        path = Path(self._path) / "tokenizer.json"
        if path.is_file():
            return HuggingFaceTokenizer(path, self._name)
        backend = getattr(getattr(self._loaded(), "tokenizer", None), "backend_tokenizer", None)
        if not isinstance(backend, _HfTokenizer):
            raise ProviderError(f"embedding model {self._name} has no fast tokenizer")
        return HuggingFaceTokenizer.from_tokenizer(backend, self._name)

    def _loaded(self) -> SentenceTransformer:
        model = self._model
        if model is None:
            with self._lock:
                if self._model is None:
                    self._model = self._load()
                model = self._model
        return model

    def _load(self) -> SentenceTransformer:
        if self._num_threads is not None and self._device == "cpu":
            torch.set_num_threads(self._num_threads)
        transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
        try:
            model = SentenceTransformer(self._path, device=self._device)
            if self._max_seq_length is not None:
                model.max_seq_length = self._max_seq_length
            dim = model.get_embedding_dimension()
        except Exception as exc:
            raise ProviderUnavailable(
                f"cannot load embedding model {self._name} on {self._device}: {exc}"
            ) from exc
        if not dim:
            raise ProviderUnavailable(f"embedding model {self._name} declares no dimension")
        self._dim = dim
        return model

    def _encode(self, encode: Callable[..., Any], texts: list[str]) -> npt.NDArray[np.float32]:
        try:
            with self._lock, torch.inference_mode():
                vectors = encode(
                    texts,
                    batch_size=self._batch_size,
                    normalize_embeddings=True,
                    convert_to_numpy=True,
                    show_progress_bar=False,
                )
        except torch.OutOfMemoryError as exc:
            raise ProviderUnavailable(f"{self._device} ran out of memory: {exc}") from exc
        except Exception as exc:
            raise ProviderError(f"embedding model {self._name} failed: {exc}") from exc
        if not isinstance(vectors, np.ndarray) or vectors.shape != (len(texts), self._dim):
            raise ProviderError(f"embedding model {self._name} returned an unexpected result")
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def __repr__(self) -> str:
        return f"SentenceTransformerEmbedder(model_id={self._model_id!r}, device={self._device!r})"


def _model_name(path: str) -> str:
    candidate = Path(path)
    if not candidate.is_dir():
        return path
    try:
        bundled = minilm_path()
    except ImportError:
        return candidate.resolve().name
    return MINILM_ID if candidate.resolve() == bundled.resolve() else candidate.resolve().name
