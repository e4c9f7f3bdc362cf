"""Backfill tables (migration 0008): one checkpoint per imported CSV file.

`backfill_files` has one row per (file content, kind, location): `next_row` is the first
spreadsheet row not yet queued. Rows are queued and the checkpoint moved in one transaction,
so after a kill `--resume` starts exactly where the queue ends; `counts` (JSON) keeps the
running totals the final summary shows.
"""

from __future__ import annotations

import sqlalchemy as sa

from ghlsync.store._tables import metadata

backfill_files = sa.Table(
    "backfill_files",
    metadata,
    sa.Column("run_key", sa.String(64), primary_key=True),  # sha256(file, kind, location)
    sa.Column("fingerprint", sa.String(64), nullable=False),  # sha256 of the file's bytes
    sa.Column("file_name", sa.String(255), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("location_id", sa.String(64), nullable=False),
    sa.Column("rows_total", sa.Integer, nullable=False),
    sa.Column("next_row", sa.Integer, nullable=False),
    sa.Column("counts", sa.Text, nullable=False, server_default="{}"),
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("finished_at", sa.Float),
)
