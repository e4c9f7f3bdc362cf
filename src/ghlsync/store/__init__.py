"""The one SQL store: SQLite by default, PostgreSQL by URL."""
