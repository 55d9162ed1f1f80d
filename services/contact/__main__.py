"""`python -m services.contact migrate|serve|openapi`."""

import sys
from pathlib import Path

from services.contact.app import create_app
from services.contact.settings import ContactSettings
from shared.runtime import service_main

sys.exit(
    service_main(
        name="contact",
        settings_factory=ContactSettings,
        app_factory=create_app,
        migrations_dir=Path(__file__).parent / "migrations",
    )
)
