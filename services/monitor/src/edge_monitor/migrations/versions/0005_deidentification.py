"""the de-identification in force per datashare, and versions de-identified or held

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("monitor_datashares") as batch_op:
        batch_op.add_column(
            sa.Column("deidentification", sa.Text(), nullable=False, server_default="")
        )
        for name in ("deidentified", "held"):
            batch_op.add_column(
                sa.Column(name, sa.BigInteger(), nullable=False, server_default="0")
            )
    with op.batch_alter_table("monitor_instances") as batch_op:
        for name in ("deidentified", "held"):
            batch_op.add_column(
                sa.Column(name, sa.Boolean(), nullable=False, server_default=sa.false())
            )


def downgrade() -> None:
    with op.batch_alter_table("monitor_instances") as batch_op:
        for name in ("held", "deidentified"):
            batch_op.drop_column(name)
    with op.batch_alter_table("monitor_datashares") as batch_op:
        for name in ("held", "deidentified", "deidentification"):
            batch_op.drop_column(name)
