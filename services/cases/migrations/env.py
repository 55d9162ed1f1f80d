"""Alembic environment of the cases database."""

from services.cases.models import Base
from shared.messaging import messaging_metadata
from shared.migrate import run_env

run_env(target_metadata=[Base.metadata, messaging_metadata])
