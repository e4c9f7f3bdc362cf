"""Alembic migrations of the store (run them with `ghlsync.store.migrate`)."""
