"""A datashare's de-identification (null: forwarded byte for byte).

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
    op.add_column("registry_datashares", sa.Column("deidentification", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("registry_datashares") as batch:
        batch.drop_column("deidentification")
