"""`python -m services.scoring migrate|serve|openapi`."""

import sys
from pathlib import Path

from services.scoring.app import create_app
from services.scoring.cli import COMMANDS
from services.scoring.settings import ScoringSettings
from shared.runtime import service_main

sys.exit(
    service_main(
        name="scoring",
        settings_factory=ScoringSettings,
        app_factory=create_app,
        migrations_dir=Path(__file__).parent / "migrations",
        commands=COMMANDS,
    )
)
