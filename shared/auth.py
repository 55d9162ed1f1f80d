"""Who is calling, for which tenant, with which scopes.

Every route except the health checks and `/metrics` requires `Authorization: Bearer <token>`:
either an API key issued by `python -m shared.auth` (hashed at rest in a key file the four
services share, with expiry, rotation and revocation), or a JWT from the operator's identity
provider (issuer, audience and a JWKS file from settings). Both become a `Principal`: the
client, its kind, its tenant and its scopes. A missing, unknown, expired or revoked credential
is a 401; a valid one without the route's scope is a 403.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import threading
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import jwt
from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import AwareDatetime, BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.contracts.envelope import TENANT_PATTERN, current_actor, utc_now
from shared.http import DomainError


class Scope(StrEnum):
    """What a credential may do. Routes name the scope they need."""

    CASES_READ = "cases:read"
    CASES_WRITE = "cases:write"
    CASES_REACH = "cases:reach"
    PAYMENTS_WRITE = "payments:write"
    QUEUE_WORK = "queue:work"
    TEAMS_ADMIN = "teams:admin"
    JOBS_RUN = "jobs:run"
    SCORES_READ = "scores:read"
    SCORES_WRITE = "scores:write"
    MODELS_ADMIN = "models:admin"
    CONTACT_READ = "contact:read"
    CONTACT_DECIDE = "contact:decide"
    CONTACT_WORKLIST = "contact:worklist"
    CONTACT_OUTCOMES = "contact:outcomes"
    RULES_READ = "rules:read"
    RULES_ADMIN = "rules:admin"
    AUDIT_READ = "audit:read"
    AUDIT_PURGE = "audit:purge"
    COMPLAINTS_READ = "complaints:read"
    COMPLAINTS_WRITE = "complaints:write"
    TRANSCRIPTS_WRITE = "transcripts:write"
    QA_WRITE = "qa:write"
    PRIVACY_REQUESTS = "privacy:requests"


class ClientKind(StrEnum):
    """The kinds of client the platform serves; each has a default set of scopes."""

    CRM = "crm"
    DIALER = "dialer"
    COLLECTOR = "collector"
    ADMIN = "admin"
    AUDITOR = "auditor"


S = Scope
KIND_SCOPES: dict[ClientKind, frozenset[Scope]] = {
    # Case records, payments and complaints taken at the front desk.
    ClientKind.CRM: frozenset(
        {
            S.CASES_READ,
            S.CASES_WRITE,
            S.PAYMENTS_WRITE,
            S.SCORES_READ,
            S.CONTACT_READ,
            S.COMPLAINTS_READ,
            S.COMPLAINTS_WRITE,
        }
    ),
    # Asks before each contact, pulls its worklist, reports outcomes and transcripts.
    # The numbers and addresses come from cases, one case at a time (`cases:reach`): no event
    # carries them.
    ClientKind.DIALER: frozenset(
        {
            S.CASES_REACH,
            S.CONTACT_DECIDE,
            S.CONTACT_WORKLIST,
            S.CONTACT_OUTCOMES,
            S.TRANSCRIPTS_WRITE,
        }
    ),
    # Works a queue; case reads and writes are limited to the cases assigned to the collector.
    ClientKind.COLLECTOR: frozenset(
        {S.QUEUE_WORK, S.CASES_READ, S.CASES_WRITE, S.SCORES_READ, S.CONTACT_READ, S.CONTACT_DECIDE}
    ),
    # Rules, models, teams and queues, retention, QA; reads everything it configures.
    ClientKind.ADMIN: frozenset(
        {
            S.CASES_READ,
            S.TEAMS_ADMIN,
            S.JOBS_RUN,
            S.SCORES_READ,
            S.SCORES_WRITE,
            S.MODELS_ADMIN,
            S.CONTACT_READ,
            S.RULES_READ,
            S.RULES_ADMIN,
            S.AUDIT_READ,
            S.AUDIT_PURGE,
            S.COMPLAINTS_READ,
            S.COMPLAINTS_WRITE,
            S.QA_WRITE,
            S.PRIVACY_REQUESTS,
        }
    ),
    # Read-only: the evidence log, proofs, exports, and what they refer to.
    ClientKind.AUDITOR: frozenset(
        {
            S.AUDIT_READ,
            S.CASES_READ,
            S.SCORES_READ,
            S.CONTACT_READ,
            S.RULES_READ,
            S.COMPLAINTS_READ,
        }
    ),
}
del S


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller."""

    client: str
    kind: ClientKind
    tenant: str
    scopes: frozenset[str]
    #: The person or system the credential stands for inside the tenant (a collector's id).
    subject: str | None
    #: How it authenticated: `api_key:<key id>` or `jwt:<issuer>`.
    credential: str

    @property
    def actor(self) -> str:
        """How events and audit entries name this caller."""
        return f"{self.kind.value}:{self.client}"


class Unauthenticated(DomainError):
    """No credential, or one that is unknown, expired, revoked or malformed (401)."""

    status = 401
    problem_type = "https://qingshou.dev/problems/unauthenticated"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        # RFC 6750 §3: the challenge says which scheme to use and why the token failed.
        self.headers = {"WWW-Authenticate": 'Bearer realm="qingshou", error="invalid_token"'}


class Forbidden(DomainError):
    """Authenticated, but the credential does not allow this (403)."""

    status = 403
    problem_type = "https://qingshou.dev/problems/forbidden"


class AuthSettings(BaseSettings):
    """Credential settings shared by all four services (env prefix QS_AUTH_)."""

    model_config = SettingsConfigDict(env_prefix="QS_AUTH_", extra="ignore")

    keys_file: str = Field(
        default="var/api-keys.json",
        description="API key file written by `python -m shared.auth`; secrets stored as SHA-256.",
    )
    jwt_issuer: str | None = Field(default=None, description="Accept JWTs from this issuer.")
    jwt_audience: str | None = Field(default=None, description="Required `aud` of JWTs.")
    jwt_jwks_file: str | None = Field(default=None, description="JWKS with the issuer's keys.")
    jwt_algorithms: list[str] = Field(default_factory=lambda: ["RS256", "ES256", "EdDSA"])
    jwt_tenant_claim: str = "tenant"
    jwt_kind_claim: str = "qs_kind"
    jwt_leeway_s: int = Field(default=30, ge=0, le=300)


class KeyRecord(BaseModel):
    """One API key as stored: never the secret, only its SHA-256."""

    key_id: str = Field(pattern=r"^[0-9a-f]{12}$")
    client: str = Field(min_length=1, max_length=100)
    kind: ClientKind
    tenant: str = Field(pattern=TENANT_PATTERN)
    scopes: list[Scope] | None = Field(
        default=None, description="Overrides the kind's default scopes when given."
    )
    subject: str | None = None
    secret_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    created_at: AwareDatetime
    expires_at: AwareDatetime | None = None
    revoked_at: AwareDatetime | None = None
    rotated_to: str | None = None

    def granted(self) -> frozenset[str]:
        """The scopes this key carries."""
        return frozenset(self.scopes if self.scopes is not None else KIND_SCOPES[self.kind])


class KeyFile(BaseModel):
    """The key file's contents."""

    keys: list[KeyRecord] = Field(default_factory=list)


KEY_PREFIX = "qsk_"


def _secret_hash(secret: str) -> str:
    # Keys carry 256 random bits, so a fast hash is enough: there is nothing to brute-force,
    # unlike a password (this is how GitHub and Stripe store theirs).
    return hashlib.sha256(secret.encode()).hexdigest()


def split_api_key(token: str) -> tuple[str, str] | None:
    """(key id, secret) of a `qsk_<key id>_<secret>` token, or None if it is not one."""
    if not token.startswith(KEY_PREFIX):
        return None
    key_id, sep, secret = token[len(KEY_PREFIX) :].partition("_")
    if not sep or len(key_id) != 12 or not secret:
        return None
    return key_id, secret


class KeyStore:
    """The API key file: read on change (services share it), written atomically (the CLI)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._by_id: dict[str, KeyRecord] = {}

    def records(self) -> dict[str, KeyRecord]:
        """Key records by id, re-read when the file changed (rotation needs no restart)."""
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return {}
        stamp = (stat.st_mtime_ns, stat.st_size)
        with self._lock:
            if stamp != self._stamp:
                loaded = KeyFile.model_validate_json(self.path.read_bytes())
                self._by_id = {record.key_id: record for record in loaded.keys}
                self._stamp = stamp
            return self._by_id

    def authenticate(self, token: str, *, now: datetime) -> Principal:
        """The principal of an API key; raises Unauthenticated."""
        parts = split_api_key(token)
        if parts is None:
            raise Unauthenticated("the bearer token is neither an API key nor a JWT")
        key_id, secret = parts
        record = self.records().get(key_id)
        # Compare even when the id is unknown so timing does not reveal which ids exist.
        expected = record.secret_sha256 if record is not None else "0" * 64
        if not hmac.compare_digest(expected, _secret_hash(secret)) or record is None:
            raise Unauthenticated("unknown API key")
        if record.revoked_at is not None and record.revoked_at <= now:
            raise Unauthenticated(f"API key {key_id} was revoked")
        if record.expires_at is not None and record.expires_at <= now:
            raise Unauthenticated(f"API key {key_id} expired at {record.expires_at.isoformat()}")
        return Principal(
            client=record.client,
            kind=record.kind,
            tenant=record.tenant,
            scopes=record.granted(),
            subject=record.subject,
            credential=f"api_key:{key_id}",
        )

    def _write(self, records: Iterable[KeyRecord]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        body = KeyFile(keys=list(records)).model_dump_json(indent=2)
        temporary = self.path.with_name(f".{self.path.name}.{secrets.token_hex(4)}")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(body)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.path)

    def create(
        self,
        *,
        client: str,
        kind: ClientKind,
        tenant: str,
        now: datetime,
        expires_in: timedelta | None,
        scopes: Sequence[Scope] | None = None,
        subject: str | None = None,
        commit: bool = True,
    ) -> tuple[str, KeyRecord]:
        """A new key: the token (shown once) and its record. `commit=False` only builds them,
        so the caller can publish the audit event before the key exists."""
        key_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        record = KeyRecord(
            key_id=key_id,
            client=client,
            kind=kind,
            tenant=tenant,
            scopes=list(scopes) if scopes is not None else None,
            subject=subject,
            secret_sha256=_secret_hash(secret),
            created_at=now,
            expires_at=now + expires_in if expires_in is not None else None,
        )
        if commit:
            self.save(record)
        return f"{KEY_PREFIX}{key_id}_{secret}", record

    def save(self, *changed: KeyRecord) -> None:
        """Add or replace records, keeping the others."""
        with self._lock:
            self._stamp = None
        current = dict(self.records())
        for record in changed:
            current[record.key_id] = record
        self._write(current.values())
        with self._lock:
            self._stamp = None

    def get(self, key_id: str) -> KeyRecord:
        """A key's record; raises KeyError if there is none."""
        return self.records()[key_id]


class JwtVerifier:
    """Bearer JWTs from the operator's identity provider, keys from a JWKS file."""

    def __init__(self, settings: AuthSettings) -> None:
        self.settings = settings
        self._stamp: tuple[int, int] | None = None
        self._keys: jwt.PyJWKSet | None = None
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        """Only when an issuer, an audience and a JWKS file are all configured."""
        s = self.settings
        return bool(s.jwt_issuer and s.jwt_audience and s.jwt_jwks_file)

    def _key_set(self) -> jwt.PyJWKSet:
        assert self.settings.jwt_jwks_file is not None
        path = Path(self.settings.jwt_jwks_file)
        stat = path.stat()
        stamp = (stat.st_mtime_ns, stat.st_size)
        with self._lock:
            if stamp != self._stamp or self._keys is None:
                self._keys = jwt.PyJWKSet.from_dict(json.loads(path.read_bytes()))
                self._stamp = stamp
            return self._keys

    def authenticate(self, token: str) -> Principal:
        """The principal of a JWT; raises Unauthenticated."""
        if not self.enabled:
            raise Unauthenticated("JWTs are not accepted here (no issuer configured)")
        s = self.settings
        try:
            header = jwt.get_unverified_header(token)
            key_id = header.get("kid")
            keys = self._key_set()
            candidates = [k for k in keys.keys if key_id is None or k.key_id == key_id]
            if not candidates:
                raise Unauthenticated(f"no key {key_id!r} in the issuer's key set")
            claims: dict[str, Any] = jwt.decode(
                token,
                key=candidates[0],
                algorithms=s.jwt_algorithms,
                audience=s.jwt_audience,
                issuer=s.jwt_issuer,
                leeway=s.jwt_leeway_s,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("the token has expired") from None
        except (jwt.InvalidTokenError, jwt.PyJWKSetError, OSError, ValueError) as exc:
            raise Unauthenticated(f"the token is not valid: {exc}") from None
        return principal_from_claims(claims, settings=s)


def principal_from_claims(claims: dict[str, Any], *, settings: AuthSettings) -> Principal:
    """Map verified JWT claims to a principal: tenant and kind from configurable claims,
    scopes from `scope` (space-separated) or `scp` (list), else the kind's defaults."""
    tenant = claims.get(settings.jwt_tenant_claim)
    try:
        kind = ClientKind(str(claims.get(settings.jwt_kind_claim)))
    except ValueError:
        raise Unauthenticated(
            f"the token's {settings.jwt_kind_claim!r} claim names no client kind"
        ) from None
    if not isinstance(tenant, str) or not _valid_tenant(tenant):
        raise Unauthenticated(f"the token's {settings.jwt_tenant_claim!r} claim is not a tenant")
    raw_scopes = claims.get("scope", claims.get("scp"))
    if isinstance(raw_scopes, str):
        requested = set(raw_scopes.split())
    elif isinstance(raw_scopes, list):
        requested = {str(s) for s in raw_scopes}
    else:
        requested = None
    known = {s.value for s in Scope}
    scopes = frozenset(requested & known) if requested is not None else frozenset(KIND_SCOPES[kind])
    return Principal(
        client=str(claims["sub"]),
        kind=kind,
        tenant=tenant,
        scopes=scopes,
        subject=str(claims["sub"]),
        credential=f"jwt:{claims['iss']}",
    )


def _valid_tenant(value: str) -> bool:
    return re.fullmatch(TENANT_PATTERN, value) is not None


class Authenticator:
    """Turns a bearer token into a principal: API keys first (by prefix), else a JWT."""

    def __init__(self, settings: AuthSettings) -> None:
        self.keys = KeyStore(settings.keys_file)
        self.jwts = JwtVerifier(settings)

    def authenticate(self, token: str | None, *, now: datetime | None = None) -> Principal:
        """The caller behind `token`; raises Unauthenticated."""
        if not token:
            raise Unauthenticated("this endpoint needs a credential: Authorization: Bearer …")
        if token.startswith(KEY_PREFIX):
            return self.keys.authenticate(token, now=now or utc_now())
        if token.count(".") == 2:
            return self.jwts.authenticate(token)
        raise Unauthenticated("the bearer token is neither an API key nor a JWT")


bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="An API key (`qsk_…`) from `python -m shared.auth create`, or a JWT from the "
    "configured identity provider.",
)


class Authorize:
    """The dependency behind `requires`: its `scopes` are public so tests and tools can read
    what each route demands."""

    def __init__(self, scopes: Sequence[Scope]) -> None:
        self.scopes = tuple(scopes)

    async def __call__(
        self,
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
    ) -> AsyncIterator[Principal]:
        authenticator: Authenticator = request.app.state.authenticator
        principal = authenticator.authenticate(credentials.credentials if credentials else None)
        missing = [scope.value for scope in self.scopes if scope.value not in principal.scopes]
        if missing:
            raise Forbidden(
                f"a {principal.kind.value} credential without {', '.join(missing)} "
                f"may not {request.method} {request.url.path}"
            )
        request.state.principal = principal
        # Events written while serving this request name who caused them (build_envelope).
        token = current_actor.set(principal.actor)
        try:
            yield principal
        finally:
            current_actor.reset(token)


def requires(*scopes: Scope) -> Any:
    """A route dependency: authenticates the caller and checks it holds every scope in
    `scopes`. Declare `principal: Annotated[Principal, requires(Scope.X)]` to receive it."""
    return Depends(Authorize(scopes))


def check_scopes(values: Iterable[str]) -> list[Scope]:
    """Parse scope names (for the CLI), raising ValueError naming the unknown ones."""
    parsed: list[Scope] = []
    unknown: list[str] = []
    for value in values:
        try:
            parsed.append(Scope(value))
        except ValueError:
            unknown.append(value)
    if unknown:
        raise ValueError(f"unknown scope(s): {', '.join(unknown)}")
    return parsed
