"""Alembic migrations, run at start-up by :func:`pixelgate.store.db.Database.open`."""
