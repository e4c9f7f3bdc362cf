"""The claim index ends with the id: `ix_work_claim` (status, location_id, available_at, id).

A claim takes each location's oldest due items `ORDER BY available_at, id LIMIT k`. Without
the id in the index, PostgreSQL read every due item of the location and sorted them to return
`k` (~960 rows read for 2 on a 1,000-item backlog; about half of the claim's time); with it,
the index is in that order and the scan stops after `k`. SQLite appends the rowid (`id`) to
every index already: the same order, one redundant column.

Revision ID: 0017
Revises: 0016
"""

from __future__ import annotations

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Rebuild the index with the id last."""
    op.drop_index("ix_work_claim", table_name="work_items")
    op.create_index("ix_work_claim", "work_items", ["status", "location_id", "available_at", "id"])


def downgrade() -> None:
    """Back to the index without the id."""
    op.drop_index("ix_work_claim", table_name="work_items")
    op.create_index("ix_work_claim", "work_items", ["status", "location_id", "available_at"])
