"""Console tables (migration 0010): the admin password of `/console`.

`console_admin` holds at most one row (`id` = 1): the scrypt hash of the password set with
`ghlsync console set-password`, and the random key that signs session cookies. Setting a new
password draws a new key, so every open session ends with the old password.
"""

from __future__ import annotations

import sqlalchemy as sa

from ghlsync.store._tables import metadata

console_admin = sa.Table(
    "console_admin",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("password_hash", sa.Text, nullable=False),  # "scrypt$n$r$p$salt$hash"
    sa.Column("session_key", sa.String(64), nullable=False),  # hex; signs cookies
    sa.Column("updated_at", sa.Float, nullable=False),
)
