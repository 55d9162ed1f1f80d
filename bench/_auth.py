"""One all-scopes API key for a benchmark run: the services refuse requests without one, and a
benchmark should pay for authentication like any client does."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from datetime import timedelta
from pathlib import Path

from shared.auth import ClientKind, KeyStore, Scope
from shared.contracts.envelope import DEFAULT_TENANT, utc_now

_DIR = Path(tempfile.mkdtemp(prefix="qs-bench-keys-"))
atexit.register(shutil.rmtree, _DIR, True)
os.environ["QS_AUTH_KEYS_FILE"] = str(_DIR / "api-keys.json")
TOKEN, _ = KeyStore(_DIR / "api-keys.json").create(
    client="bench",
    kind=ClientKind.ADMIN,
    tenant=DEFAULT_TENANT,
    now=utc_now(),
    expires_in=timedelta(days=1),
    scopes=list(Scope),
)
HEADERS = {"Authorization": f"Bearer {TOKEN}"}
