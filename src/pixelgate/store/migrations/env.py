"""Alembic environment: pixelgate hands in an open connection (see ``pixelgate.store.db``)."""

from alembic import context

connection = context.config.attributes["connection"]
# render_as_batch lets ALTERs run on SQLite, which can't alter most columns in place.
context.configure(connection=connection, render_as_batch=True, compare_type=True)
with context.begin_transaction():
    context.run_migrations()
