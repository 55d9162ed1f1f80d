"""`python -m services.compliance migrate|serve|openapi`."""

import sys
from pathlib import Path

from services.compliance.app import create_app
from services.compliance.cli import COMMANDS
from services.compliance.settings import ComplianceSettings
from shared.runtime import service_main

sys.exit(
    service_main(
        name="compliance",
        settings_factory=ComplianceSettings,
        app_factory=create_app,
        migrations_dir=Path(__file__).parent / "migrations",
        commands=COMMANDS,
    )
)
