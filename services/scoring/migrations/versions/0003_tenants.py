"""tenants

Revision ID: 0003
Revises: 0002
Create Date: 2027-01-10

Scores, overrides and case snapshots carry the tenant of their case. The model registry stays
shared, but roles move to `model_roles`, one row per (tenant, model): what was the global role
becomes the default tenant's, which every tenant without roles of its own inherits.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TENANT_TABLES = ("scored_cases", "scores", "score_overrides", "model_activations")


def _tenant() -> sa.Column[str]:
    return sa.Column("tenant", sa.String(length=63), nullable=False, server_default="default")


def upgrade() -> None:
    for table in TENANT_TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(_tenant())
            batch_op.create_index(batch_op.f(f"ix_{table}_tenant"), ["tenant"], unique=False)

    op.create_table(
        "model_roles",
        sa.Column("tenant", sa.String(length=63), server_default="default", nullable=False),
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("traffic_share", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant", "key"),
    )
    op.execute(
        "INSERT INTO model_roles (tenant, key, role, traffic_share, updated_at) "
        "SELECT 'default', key, role, traffic_share, updated_at FROM models "
        "WHERE role <> 'candidate'"
    )
    with op.batch_alter_table("models", schema=None) as batch_op:
        batch_op.add_column(_tenant())
        batch_op.drop_index(batch_op.f("ix_models_role"))
        batch_op.drop_column("traffic_share")
        batch_op.drop_column("role")


def downgrade() -> None:
    with op.batch_alter_table("models", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("role", sa.String(length=16), nullable=False, server_default="candidate")
        )
        batch_op.add_column(
            sa.Column("traffic_share", sa.Float(), nullable=False, server_default="0")
        )
        batch_op.create_index(batch_op.f("ix_models_role"), ["role"], unique=False)
        batch_op.drop_column("tenant")
    # Only the default tenant's roles fit the single global role of the old schema.
    op.execute(
        "UPDATE models SET "
        "role = (SELECT r.role FROM model_roles r "
        "WHERE r.tenant = 'default' AND r.key = models.key), "
        "traffic_share = (SELECT r.traffic_share FROM model_roles r "
        "WHERE r.tenant = 'default' AND r.key = models.key) "
        "WHERE key IN (SELECT key FROM model_roles WHERE tenant = 'default')"
    )
    op.drop_table("model_roles")
    for table in reversed(TENANT_TABLES):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(batch_op.f(f"ix_{table}_tenant"))
            batch_op.drop_column("tenant")
