"""llm endpoints: the structured-output mode and streaming each endpoint and model accept

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "llm_endpoints",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("endpoint", sa.String(length=500), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("output_mode", sa.String(length=40), nullable=False),
        sa.Column("streaming", sa.Boolean(), nullable=False),
        sa.Column("negotiated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("endpoint", "model", name="uq_llm_endpoints_endpoint_model"),
        sqlite_autoincrement=True,
    )


def downgrade() -> None:
    op.drop_table("llm_endpoints")
