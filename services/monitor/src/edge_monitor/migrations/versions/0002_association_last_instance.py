"""when an association last stored an instance

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("monitor_associations") as batch_op:
        batch_op.add_column(sa.Column("last_instance_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("monitor_associations") as batch_op:
        batch_op.drop_column("last_instance_at")
