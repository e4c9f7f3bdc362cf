"""Environments: which environment (`environments:` of ghlsync.yaml) each GHL connection,
location and DripJobs connection belongs to, so one environment's events are never sent with
another's credentials. NULL: written before environments existed, or by a process that runs
none; such a row is served by any environment.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_TABLES = ("ghl_connections", "locations", "dripjobs_connections")


def upgrade() -> None:
    """Add the `environment` column."""
    for table in _TABLES:
        op.add_column(table, sa.Column("environment", sa.String(32)))


def downgrade() -> None:
    """Drop it."""
    for table in _TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("environment")
