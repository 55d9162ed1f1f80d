"""Credentials: API keys (hashed at rest, expiry, rotation, revocation) and JWTs (issuer,
audience, key set, claims to tenant, kind and scopes)."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm

from shared.auth import (
    KIND_SCOPES,
    Authenticator,
    AuthSettings,
    ClientKind,
    KeyStore,
    Scope,
    Unauthenticated,
)
from shared.keys import create_key, parse_duration, revoke_key

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def new_store(tmp_path: Path) -> KeyStore:
    return KeyStore(tmp_path / "keys.json")


def test_an_issued_key_authenticates_as_its_client_kind_tenant_and_scopes(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    token, record = store.create(
        client="crm-main", kind=ClientKind.CRM, tenant="acme", now=NOW, expires_in=None
    )
    principal = store.authenticate(token, now=NOW)
    assert (principal.client, principal.kind, principal.tenant) == ("crm-main", "crm", "acme")
    assert principal.scopes == KIND_SCOPES[ClientKind.CRM]
    assert principal.credential == f"api_key:{record.key_id}"
    assert principal.actor == "crm:crm-main"


def test_the_file_holds_only_a_hash_of_the_secret_and_is_private(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    token, _ = store.create(
        client="dialer", kind=ClientKind.DIALER, tenant="acme", now=NOW, expires_in=None
    )
    secret = token.rsplit("_", 1)[-1]
    text = store.path.read_text()
    assert secret not in text
    assert token not in text
    assert os.stat(store.path).st_mode & 0o077 == 0


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),  # wrong secret
        lambda t: "qsk_000000000000_" + t.split("_", 2)[2],  # unknown key id
        lambda t: t.replace("qsk_", "qsk"),  # malformed
    ],
)
def test_a_wrong_or_unknown_key_is_refused(tmp_path: Path, mangle: Any) -> None:
    store = new_store(tmp_path)
    token, _ = store.create(
        client="c", kind=ClientKind.CRM, tenant="acme", now=NOW, expires_in=None
    )
    with pytest.raises(Unauthenticated):
        store.authenticate(mangle(token), now=NOW)


def test_expired_and_revoked_keys_are_refused_from_that_instant(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    token, _ = store.create(
        client="c", kind=ClientKind.CRM, tenant="acme", now=NOW, expires_in=timedelta(hours=1)
    )
    store.authenticate(token, now=NOW + timedelta(minutes=59))
    with pytest.raises(Unauthenticated, match="expired"):
        store.authenticate(token, now=NOW + timedelta(hours=1))
    other, other_record = store.create(
        client="d", kind=ClientKind.CRM, tenant="acme", now=NOW, expires_in=None
    )
    revoke_key(
        store=store,
        key_id=other_record.key_id,
        reason="leaked",
        operator="ops",
        bootstrap_servers=None,
        now=NOW,
    )
    with pytest.raises(Unauthenticated, match="revoked"):
        store.authenticate(other, now=NOW + timedelta(seconds=1))


def test_rotation_keeps_the_old_key_for_the_grace_period_only(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    old_token, old = create_key(
        store=store,
        client="crm-main",
        kind=ClientKind.CRM,
        tenant="acme",
        expires_in=None,
        scopes=None,
        subject=None,
        operator="ops",
        bootstrap_servers=None,
        now=NOW,
    )
    new_token, new = create_key(
        store=store,
        client="",
        kind=ClientKind.ADMIN,
        tenant="",
        expires_in=timedelta(days=90),
        scopes=None,
        subject=None,
        operator="ops",
        bootstrap_servers=None,
        replaces=old.key_id,
        grace=timedelta(hours=24),
        now=NOW,
    )
    # The successor inherits the client, kind and tenant, whatever the arguments said.
    principal = store.authenticate(new_token, now=NOW)
    assert (principal.client, principal.kind, principal.tenant) == ("crm-main", "crm", "acme")
    assert store.get(old.key_id).rotated_to == new.key_id
    store.authenticate(old_token, now=NOW + timedelta(hours=23))
    with pytest.raises(Unauthenticated):
        store.authenticate(old_token, now=NOW + timedelta(hours=24))


def test_a_key_written_by_another_process_is_seen_without_a_restart(tmp_path: Path) -> None:
    serving = new_store(tmp_path)
    assert serving.records() == {}
    token, _ = new_store(tmp_path).create(
        client="late", kind=ClientKind.AUDITOR, tenant="acme", now=NOW, expires_in=None
    )
    assert serving.authenticate(token, now=NOW).kind == ClientKind.AUDITOR


def test_explicit_scopes_replace_the_kinds_defaults(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    token, _ = store.create(
        client="bi",
        kind=ClientKind.AUDITOR,
        tenant="acme",
        now=NOW,
        expires_in=None,
        scopes=[Scope.AUDIT_READ],
    )
    assert store.authenticate(token, now=NOW).scopes == {"audit:read"}


def test_durations() -> None:
    assert parse_duration("90d") == timedelta(days=90)
    assert parse_duration("12h") == timedelta(hours=12)
    assert parse_duration("30m") == timedelta(minutes=30)
    with pytest.raises(Exception, match="not a duration"):
        parse_duration("1 year")


# -- JWT ---------------------------------------------------------------------------------------


@pytest.fixture
def idp(tmp_path: Path) -> tuple[Ed25519PrivateKey, AuthSettings]:
    """An identity provider's signing key and settings that trust it through a JWKS file."""
    key = Ed25519PrivateKey.generate()
    jwk = json.loads(OKPAlgorithm.to_jwk(key.public_key()))
    jwk.update({"kid": "idp-1", "use": "sig", "alg": "EdDSA"})
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [jwk]}))
    settings = AuthSettings(
        keys_file=str(tmp_path / "keys.json"),
        jwt_issuer="https://idp.example",
        jwt_audience="qingshou",
        jwt_jwks_file=str(jwks),
    )
    return key, settings


def sign(key: Ed25519PrivateKey, kid: str = "idp-1", **overrides: Any) -> str:
    now = datetime.now(UTC)
    claims: dict[str, Any] = {
        "iss": "https://idp.example",
        "aud": "qingshou",
        "sub": "zhang.wei",
        "exp": now + timedelta(minutes=5),
        "tenant": "acme",
        "qs_kind": "collector",
    }
    claims.update(overrides)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": kid})


def test_a_valid_jwt_becomes_a_principal(idp: tuple[Ed25519PrivateKey, AuthSettings]) -> None:
    key, settings = idp
    principal = Authenticator(settings).authenticate(sign(key))
    assert (principal.client, principal.kind, principal.tenant) == (
        "zhang.wei",
        "collector",
        "acme",
    )
    assert principal.subject == "zhang.wei"
    assert principal.scopes == KIND_SCOPES[ClientKind.COLLECTOR]
    assert principal.credential == "jwt:https://idp.example"


def test_jwt_scope_claim_narrows_to_known_scopes(
    idp: tuple[Ed25519PrivateKey, AuthSettings],
) -> None:
    key, settings = idp
    token = sign(key, scope="cases:read made:up")
    assert Authenticator(settings).authenticate(token).scopes == {"cases:read"}


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"exp": datetime.now(UTC) - timedelta(minutes=5)}, "expired"),
        ({"aud": "someone-else"}, "not valid"),
        ({"iss": "https://evil.example"}, "not valid"),
        ({"tenant": None}, "tenant"),
        ({"tenant": "Not A Slug"}, "tenant"),
        ({"qs_kind": "root"}, "client kind"),
        ({"sub": None}, "not valid"),
    ],
)
def test_jwts_failing_a_check_are_refused(
    idp: tuple[Ed25519PrivateKey, AuthSettings], overrides: dict[str, Any], reason: str
) -> None:
    key, settings = idp
    with pytest.raises(Unauthenticated, match=reason):
        Authenticator(settings).authenticate(sign(key, **overrides))


def test_a_jwt_signed_by_another_key_or_kid_is_refused(
    idp: tuple[Ed25519PrivateKey, AuthSettings],
) -> None:
    _key, settings = idp
    stranger = Ed25519PrivateKey.generate()
    with pytest.raises(Unauthenticated, match="not valid"):
        Authenticator(settings).authenticate(sign(stranger))
    with pytest.raises(Unauthenticated, match="no key"):
        Authenticator(settings).authenticate(sign(stranger, kid="other"))


def test_an_unsigned_jwt_is_refused(idp: tuple[Ed25519PrivateKey, AuthSettings]) -> None:
    key, settings = idp
    header, payload, _sig = sign(key).split(".")
    claims = jwt.decode(sign(key), options={"verify_signature": False})
    forged = jwt.encode(claims, "", algorithm="none")
    for token in (forged, f"{header}.{payload}."):
        with pytest.raises(Unauthenticated):
            Authenticator(settings).authenticate(token)


def test_jwts_are_refused_when_no_issuer_is_configured(
    idp: tuple[Ed25519PrivateKey, AuthSettings], tmp_path: Path
) -> None:
    key, _settings = idp
    bare = AuthSettings(keys_file=str(tmp_path / "k.json"))
    with pytest.raises(Unauthenticated, match="not accepted"):
        Authenticator(bare).authenticate(sign(key))


def test_missing_or_foreign_tokens_are_refused(tmp_path: Path) -> None:
    authenticator = Authenticator(AuthSettings(keys_file=str(tmp_path / "k.json")))
    for token in (None, "", "Basic abc", "just-a-string"):
        with pytest.raises(Unauthenticated):
            authenticator.authenticate(token)
