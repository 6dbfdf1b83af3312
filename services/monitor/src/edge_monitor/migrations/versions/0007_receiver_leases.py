"""receiver processes and their heartbeats; which receiver accepted each association; the
newest event time folded

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "monitor_receivers",
        sa.Column("receiver", sa.String(255), primary_key=True),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("last_seen", sa.DateTime(), nullable=False),
        sa.Column("lease_s", sa.Float(), nullable=False),
    )
    with op.batch_alter_table("monitor_associations") as batch_op:
        batch_op.add_column(
            sa.Column("receiver", sa.String(255), nullable=False, server_default="")
        )
    with op.batch_alter_table("monitor_position") as batch_op:
        batch_op.add_column(sa.Column("latest_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("monitor_position") as batch_op:
        batch_op.drop_column("latest_at")
    with op.batch_alter_table("monitor_associations") as batch_op:
        batch_op.drop_column("receiver")
    op.drop_table("monitor_receivers")
