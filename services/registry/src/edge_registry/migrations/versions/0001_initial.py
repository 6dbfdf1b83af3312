"""Datashares, their history and the outbox of changes to publish.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "registry_datashares",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("ae_title", sa.String(16), nullable=False),
        sa.Column("match", sa.String(8), nullable=False),
        sa.Column("allowed_calling_aets", sa.JSON(), nullable=False),
        sa.Column("allowed_networks", sa.JSON(), nullable=False),
        sa.Column("destination", sa.Text(), nullable=True),
        sa.Column("destination_credentials", sa.JSON(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(200), nullable=False),
    )
    # Backstop for the API's own check (which gives the clear message): two enabled
    # datashares may not share an AE title, compared without case, in the same match mode.
    op.create_index(
        "ux_registry_datashares_enabled_ae_title",
        "registry_datashares",
        ["match", sa.text("upper(ae_title)")],
        unique=True,
        sqlite_where=sa.text("enabled"),
        postgresql_where=sa.text("enabled"),
    )
    op.create_table(
        "registry_history",
        sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("datashare_id", sa.String(64), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("changes", sa.JSON(), nullable=False),
    )
    op.create_index("ix_registry_history_datashare_id", "registry_history", ["datashare_id"])
    op.create_table(
        "registry_outbox",
        sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("datashare_id", sa.String(64), nullable=False),
        sa.Column("event", sa.Text(), nullable=False),
        sa.Column("kv_value", sa.Text(), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("registry_outbox")
    op.drop_index("ix_registry_history_datashare_id", "registry_history")
    op.drop_table("registry_history")
    op.drop_index("ux_registry_datashares_enabled_ae_title", "registry_datashares")
    op.drop_table("registry_datashares")
