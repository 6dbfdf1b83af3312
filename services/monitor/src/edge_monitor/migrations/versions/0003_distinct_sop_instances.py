"""distinct SOP instances, versions, and a fold that does not depend on delivery order

Revision ID: 0003
Revises: 0002

Existing rows are carried over: each SOP instance's newest version is taken to be the one
received last, and the counters are recomputed by distinct SOP instance.
"""

from collections import defaultdict
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

STATES = ("pending", "failing", "uploaded", "dead")
ASSOCIATION_REPORTED = ("reported_instances", "reported_bytes", "reported_failures")
INSTANCE_SEQS = ("stored_seq", "retry_seq", "failed_seq", "dead_seq", "uploaded_seq", "last_seq")
_SEQ_OF_STATE = {"failing": "failed_seq", "uploaded": "uploaded_seq", "dead": "dead_seq"}


def upgrade() -> None:
    op.create_table(
        "monitor_applied",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.PrimaryKeyConstraint("seq"),
    )
    op.create_table(
        "monitor_sop_instances",
        sa.Column("datashare", sa.String(length=64), nullable=False),
        sa.Column("sop_instance_uid", sa.Text(), nullable=False),
        sa.Column("study_uid", sa.Text(), nullable=False),
        sa.Column("newest_key", sa.String(length=512), nullable=False),
        sa.Column("newest_seq", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("versions", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("datashare", "sop_instance_uid"),
    )
    with op.batch_alter_table("monitor_datashares") as batch_op:
        for name in ("changed_seq", "versions", "replaced"):
            batch_op.add_column(
                sa.Column(name, sa.BigInteger(), nullable=False, server_default="0")
            )
    with op.batch_alter_table("monitor_instances") as batch_op:
        for name in INSTANCE_SEQS:
            batch_op.add_column(
                sa.Column(name, sa.BigInteger(), nullable=False, server_default="0")
            )
    with op.batch_alter_table("monitor_associations") as batch_op:
        for name in ASSOCIATION_REPORTED:
            batch_op.add_column(
                sa.Column(name, sa.BigInteger(), nullable=False, server_default="0")
            )
    _carry_over(op.get_bind())


def _carry_over(bind: Any) -> None:
    """Group the existing versions by SOP instance and recount (see the module's note).
    Sequences given here are tiny (0-2): every event folded from now on is above them."""
    meta = sa.MetaData()
    inst = sa.Table("monitor_instances", meta, autoload_with=bind)
    sops = sa.Table("monitor_sop_instances", meta, autoload_with=bind)
    ds_table = sa.Table("monitor_datashares", meta, autoload_with=bind)
    study_table = sa.Table("monitor_studies", meta, autoload_with=bind)
    groups: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for row in bind.execute(sa.select(inst)).mappings():
        groups[(row["datashare"], row["sop_instance_uid"])].append(row)
    ds_counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    study_counts: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for (ds, sop), versions in groups.items():
        versions.sort(key=lambda r: (r["received_at"], r["key"]))
        newest = versions[-1]
        for row in versions:
            seqs = {"stored_seq": int(row is newest), "last_seq": 2}
            if row["state"] in _SEQ_OF_STATE:
                seqs[_SEQ_OF_STATE[row["state"]]] = 2
            bind.execute(sa.update(inst).where(inst.c.key == row["key"]).values(**seqs))
        first = versions[0]
        bind.execute(
            sa.insert(sops).values(
                datashare=ds, sop_instance_uid=sop, study_uid=first["study_uid"],
                newest_key=newest["key"], newest_seq=1, state=newest["state"],
                size=newest["size"], versions=len(versions),
            )
        )  # fmt: skip
        counts = ds_counts[ds]
        counts["received"] += 1
        counts["received_bytes"] += newest["size"]
        counts[newest["state"]] += 1
        counts[f"{newest['state']}_bytes"] += newest["size"]
        counts["versions"] += len(versions)
        counts["replaced"] += len(versions) > 1
        study = study_counts[(ds, first["study_uid"])]
        study["received"] += 1
        if newest["state"] != "pending":
            study[newest["state"]] += 1
    for ds, counts in ds_counts.items():
        columns = ["received", "received_bytes", "versions", "replaced"]
        columns += [f"{s}{b}" for s in STATES for b in ("", "_bytes")]
        values = {c: counts.get(c, 0) for c in columns}
        bind.execute(sa.update(ds_table).where(ds_table.c.id == ds).values(**values))
    for (ds, study_uid), counts in study_counts.items():
        values = {c: counts.get(c, 0) for c in ("received", "uploaded", "failing", "dead")}
        bind.execute(
            sa.update(study_table)
            .where(study_table.c.datashare == ds, study_table.c.study_uid == study_uid)
            .values(**values)
        )


def downgrade() -> None:
    with op.batch_alter_table("monitor_associations") as batch_op:
        for name in ASSOCIATION_REPORTED:
            batch_op.drop_column(name)
    with op.batch_alter_table("monitor_instances") as batch_op:
        for name in INSTANCE_SEQS:
            batch_op.drop_column(name)
    with op.batch_alter_table("monitor_datashares") as batch_op:
        for name in ("changed_seq", "versions", "replaced"):
            batch_op.drop_column(name)
    op.drop_table("monitor_sop_instances")
    op.drop_table("monitor_applied")
