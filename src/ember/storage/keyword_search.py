"""SQL adapter of :class:`~ember.storage.protocol.KeywordSearch`: the database's own keyword
search over live chunks, FTS5 ``bm25`` on SQLite and ``ts_rank_cd`` over a weighted
``tsvector`` (title ``A``, text ``B``) on Postgres. The query is split into words, stopwords
dropped, and any remaining word matches."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import ColumnElement, Text, cast, column, func, literal_column, select, table
from sqlalchemy.dialects.postgresql import TSQUERY

from ember.filters import Filter
from ember.storage.database import Database
from ember.storage.filter_sql import filter_clause
from ember.storage.tables import Chunk

__all__ = ["SqlKeywordSearch"]

_WORD = re.compile(r"\w+", re.UNICODE)
_STOPWORDS = frozenset(
    "a about above after again against all am an and any are as at be because been before "
    "being below between both but by can did do does doing down during each few for from "
    "further had has have having he her here hers herself him himself his how i if in into is "
    "it its itself just me more most my myself no nor not now of off on once only or other our "
    "ours ourselves out over own same she should so some such than that the their theirs them "
    "themselves then there these they this those through to too under until up very was we "
    "were what when where which while who whom why will with you your yours yourself "
    "yourselves".split()
)
_PG_VECTOR = (
    "(setweight(to_tsvector('english', coalesce(chunks.title, '')), 'A') || "
    "setweight(to_tsvector('english', chunks.text), 'B'))"
)


class SqlKeywordSearch:
    """Keyword search over the chunks table, in the database."""

    def __init__(self, database: Database) -> None:
        self._db = database

    def keyword_search(
        self, collection_id: str, query: str, k: int, where: Filter | None = None
    ) -> list[tuple[int, float]]:
        words = [w for w in _WORD.findall(query.lower()) if w not in _STOPWORDS]
        if not words or k <= 0:
            return []
        condition = filter_clause(Chunk.meta, self._db.dialect, where)
        if self._db.dialect == "sqlite":
            fts: ColumnElement[Any] = literal_column("chunks_fts")
            rank = func.bm25(fts, 2.0, 1.0)
            fts_table = table("chunks_fts", column("rowid"))
            statement = (
                select(Chunk.id, rank)
                .select_from(Chunk)
                .join(fts_table, fts_table.c.rowid == Chunk.id)
                .where(
                    fts.op("MATCH")(" OR ".join(f'"{word}"' for word in words)),
                    Chunk.collection_id == collection_id,
                    Chunk.retired.is_(False),
                    condition,
                )
                .order_by(rank)
                .limit(k)
            )
            rows = self._db.run(lambda session: list(session.execute(statement)))
            return [(int(row[0]), -float(row[1])) for row in rows]
        vector: ColumnElement[Any] = literal_column(_PG_VECTOR)
        tsquery = cast(
            func.replace(cast(func.plainto_tsquery("english", " ".join(words)), Text), "&", "|"),
            TSQUERY,
        )
        rank = func.ts_rank_cd(literal_column("'{0.1,0.2,0.5,1.0}'::float4[]"), vector, tsquery)
        statement = (
            select(Chunk.id, rank)
            .where(
                vector.op("@@")(tsquery),
                Chunk.collection_id == collection_id,
                Chunk.retired.is_(False),
                condition,
            )
            .order_by(rank.desc())
            .limit(k)
        )
        rows = self._db.run(lambda session: list(session.execute(statement)))
        return [(int(row[0]), float(row[1])) for row in rows]
