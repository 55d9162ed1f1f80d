"""`python -m services.cases migrate|serve|openapi|import FILE|rotate-keys`."""

import sys
from pathlib import Path

from services.cases.app import create_app
from services.cases.cli import import_command, rotate_keys_command
from services.cases.settings import CasesSettings
from shared.runtime import service_main

sys.exit(
    service_main(
        name="cases",
        settings_factory=CasesSettings,
        app_factory=create_app,
        migrations_dir=Path(__file__).parent / "migrations",
        commands={"import": import_command, "rotate-keys": rotate_keys_command},
    )
)
