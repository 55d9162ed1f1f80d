"""personal fields encrypted at rest, with blind indexes

Phones, national ids, contact points (phones, e-mails) and addresses of debtors, and the
debtor's contact points and addresses inside timeline snapshots and replayed idempotent
responses, become AES-GCM tokens (shared/crypto.py). The string columns widen to fit a token;
`national_id_index` and `phone_index` hold the keyed blind indexes. Rows written before this
revision are encrypted here, in batches, with the keyring of the CASES_ settings (the same one
the service uses), so no clear value survives the upgrade.

Downgrade decrypts back to clear text (with the same keyring) before narrowing the columns.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _cipher() -> Any:
    from services.cases.settings import CasesSettings

    return CasesSettings().field_cipher()


def upgrade() -> None:
    from services.cases.encryption import STEPS_BEFORE_TENANTS, reencrypt_all

    with op.batch_alter_table("debtors") as batch_op:
        batch_op.alter_column(
            "national_id", existing_type=sa.String(length=64), type_=sa.String(length=255)
        )
        batch_op.alter_column(
            "phone", existing_type=sa.String(length=32), type_=sa.String(length=255)
        )
        batch_op.add_column(sa.Column("national_id_index", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("phone_index", sa.String(length=64), nullable=True))
        batch_op.create_index("ix_debtors_national_id_index", ["national_id_index"])
        batch_op.create_index("ix_debtors_phone_index", ["phone_index"])
    reencrypt_all(op.get_bind(), _cipher(), steps=STEPS_BEFORE_TENANTS)


def downgrade() -> None:
    from services.cases.encryption import decrypt_all

    decrypt_all(op.get_bind(), _cipher())
    with op.batch_alter_table("debtors") as batch_op:
        batch_op.drop_index("ix_debtors_phone_index")
        batch_op.drop_index("ix_debtors_national_id_index")
        batch_op.drop_column("phone_index")
        batch_op.drop_column("national_id_index")
        batch_op.alter_column(
            "phone", existing_type=sa.String(length=255), type_=sa.String(length=32)
        )
        batch_op.alter_column(
            "national_id", existing_type=sa.String(length=255), type_=sa.String(length=64)
        )
