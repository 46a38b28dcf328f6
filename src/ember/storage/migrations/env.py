"""Alembic environment: runs on the connection :mod:`ember.storage.migrator` hands in."""

from alembic import context

from ember.storage.tables import SEARCH_OBJECT_PREFIX, Base


def _modelled(name: str | None, type_: str, *_: object) -> bool:
    return not (name or "").startswith(SEARCH_OBJECT_PREFIX)


connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
    include_name=_modelled,
)
with context.begin_transaction():
    context.run_migrations()
