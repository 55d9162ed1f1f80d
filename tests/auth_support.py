"""API keys for the tests: one key file for the whole run, read by every app and subprocess.

Importing this module (tests/conftest.py does) writes the file and points QS_AUTH_KEYS_FILE at
it. `headers()` gives the all-scopes key of a tenant, which the tests that are not about access
use; `headers(kind=...)` a key with only that kind's default scopes.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from datetime import timedelta
from pathlib import Path

from shared.auth import ClientKind, KeyStore, Scope
from shared.contracts.envelope import DEFAULT_TENANT, utc_now

TENANTS = (DEFAULT_TENANT, "acme", "globex")
_DIR = Path(tempfile.mkdtemp(prefix="qs-test-keys-"))
atexit.register(shutil.rmtree, _DIR, True)
KEYS_FILE = _DIR / "api-keys.json"
os.environ["QS_AUTH_KEYS_FILE"] = str(KEYS_FILE)

store = KeyStore(KEYS_FILE)
_tokens: dict[tuple[str, str], str] = {}
_records = []
for _tenant in TENANTS:
    for _kind in ("all", *(k.value for k in ClientKind)):
        _token, _record = store.create(
            client=f"test-{_kind}",
            kind=ClientKind.ADMIN if _kind == "all" else ClientKind(_kind),
            tenant=_tenant,
            now=utc_now(),
            expires_in=timedelta(days=2),
            scopes=list(Scope) if _kind == "all" else None,
            commit=False,
        )
        _tokens[(_tenant, _kind)] = _token
        _records.append(_record)
store.save(*_records)


def token(*, kind: str = "all", tenant: str = DEFAULT_TENANT) -> str:
    """The bearer token of the test key of `kind` (or "all") in `tenant`."""
    return _tokens[(tenant, kind)]


def headers(*, kind: str = "all", tenant: str = DEFAULT_TENANT) -> dict[str, str]:
    """An Authorization header for that key."""
    return {"Authorization": f"Bearer {token(kind=kind, tenant=tenant)}"}
