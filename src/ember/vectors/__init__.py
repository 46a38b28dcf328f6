"""Vector indexes: the :class:`VectorIndex` protocol and its adapters.

``FaissIndex`` (in process), ``MilvusIndex`` (Milvus Lite or a server) and ``WeaviateIndex``
load on first use, so importing this package imports none of faiss, pymilvus or weaviate.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ember._lazy import lazy_exports
from ember.vectors.protocol import Vector, VectorHit, VectorIndex

if TYPE_CHECKING:
    from ember.vectors.faiss import FaissIndex
    from ember.vectors.milvus import MilvusIndex
    from ember.vectors.weaviate import WeaviateIndex

__all__ = ["FaissIndex", "MilvusIndex", "Vector", "VectorHit", "VectorIndex", "WeaviateIndex"]

_ADAPTERS = {
    "FaissIndex": "ember.vectors.faiss",
    "MilvusIndex": "ember.vectors.milvus",
    "WeaviateIndex": "ember.vectors.weaviate",
}


__getattr__ = lazy_exports(__name__, _ADAPTERS)
