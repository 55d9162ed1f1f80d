"""`python -m services.cases migrate|serve|openapi`."""

import sys
from pathlib import Path

from services.cases.app import create_app
from services.cases.settings import CasesSettings
from shared.runtime import service_main

sys.exit(
    service_main(
        name="cases",
        settings_factory=CasesSettings,
        app_factory=create_app,
        migrations_dir=Path(__file__).parent / "migrations",
    )
)
