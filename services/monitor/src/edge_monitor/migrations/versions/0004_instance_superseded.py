"""a version the uploader will not send because a newer one came (instance.superseded)

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("monitor_instances") as batch_op:
        batch_op.add_column(
            sa.Column("superseded_seq", sa.BigInteger(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("monitor_instances") as batch_op:
        batch_op.drop_column("superseded_seq")
