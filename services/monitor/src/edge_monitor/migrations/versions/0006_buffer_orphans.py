"""buffer objects no instance.stored named, removed by the uploader (buffer.orphan_removed)

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("monitor_datashares") as batch_op:
        for name in ("orphans_removed", "orphan_bytes_removed"):
            batch_op.add_column(
                sa.Column(name, sa.BigInteger(), nullable=False, server_default="0")
            )
        batch_op.add_column(sa.Column("last_orphan_removed_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("monitor_datashares") as batch_op:
        for name in ("last_orphan_removed_at", "orphan_bytes_removed", "orphans_removed"):
            batch_op.drop_column(name)
