"""Alembic environment of the scoring database."""

from services.scoring.models import Base
from shared.messaging import messaging_metadata
from shared.migrate import run_env

run_env(target_metadata=[Base.metadata, messaging_metadata])
