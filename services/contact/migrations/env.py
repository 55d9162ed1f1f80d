"""Alembic environment of the contact database."""

from services.contact.models import Base
from shared.messaging import messaging_metadata
from shared.migrate import run_env

run_env(target_metadata=[Base.metadata, messaging_metadata])
