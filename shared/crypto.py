"""Field encryption at rest: AES-256-GCM with key ids (so keys rotate) and keyed blind indexes.

A value is stored as a short text token that fits string and JSON columns:

    enc:v1:<key id>:<base64url(nonce (12 bytes) || ciphertext || tag (16 bytes)), no padding>

The associated data binds the token to where it lives (`<table>.<column>`, plus the JSON path
for values inside a document), so a token copied into another column does not decrypt. Any
key of the keyring decrypts; new values are written under the active key id. A value that is
not a token (clear text written before encryption was turned on) is returned unchanged, so old
rows stay readable until the migration or `rotate-keys` rewrites them.

`blind_index` is HMAC-SHA256 under a separate index key over a normalised value: equal values
give equal indexes (so they can be looked up), and nobody without the key can compute one.

The SQLAlchemy types at the bottom encrypt on bind and decrypt on result with the process-wide
cipher set by `configure` (the service does it at start-up).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import JSON, String
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

PREFIX = "enc:v1:"
NONCE_BYTES = 12
KEY_BYTES = 32
KEY_ID = re.compile(r"^[A-Za-z0-9_-]{1,16}$")
INDEX_KINDS = ("national_id", "phone", "email")
_HEX_KEY = re.compile(r"^[0-9a-fA-F]{64}$")


class CryptoError(ValueError):
    """A token that cannot be decrypted (unknown key id, tampered, or bound elsewhere)."""


class KeyConfigError(ValueError):
    """The keyring in the settings is unusable."""


def decode_key(text: str, *, name: str) -> bytes:
    """A 32-byte key given as 64 hex digits or as (standard or URL-safe) base64."""
    text = text.strip()
    if _HEX_KEY.match(text):
        return bytes.fromhex(text)
    try:
        raw = base64.b64decode(text.replace("-", "+").replace("_", "/") + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != KEY_BYTES:
        raise KeyConfigError(
            f"key {name!r} must be {KEY_BYTES} bytes, given as 64 hex digits or base64"
        )
    return raw


def is_token(value: object) -> bool:
    return isinstance(value, str) and value.startswith(PREFIX)


def token_key_id(token: str) -> str | None:
    """The key id a token was written under (None if `token` is not one)."""
    if not token.startswith(PREFIX):
        return None
    key_id, _, _ = token[len(PREFIX) :].partition(":")
    return key_id


def normalise(value: str, *, kind: str) -> str:
    """What the blind index hashes: phones as digits (a leading + kept), e-mails casefolded,
    national ids upper case; surrounding white space never counts."""
    value = value.strip()
    if kind == "phone":
        digits = "".join(ch for ch in value if ch.isdigit())
        return ("+" + digits) if value.startswith("+") else digits
    if kind == "email":
        return value.casefold()
    if kind == "national_id":
        return value.upper()
    raise ValueError(f"no blind index kind {kind!r} (known: {', '.join(INDEX_KINDS)})")


class FieldCipher:
    """AES-GCM with a keyring: encrypts under the active key id, decrypts under any."""

    def __init__(
        self, *, keys: Mapping[str, bytes | str], active_key_id: str, index_key: bytes | str
    ) -> None:
        if not keys:
            raise KeyConfigError("the keyring is empty")
        self._aead: dict[str, AESGCM] = {}
        for key_id, key in keys.items():
            if not KEY_ID.match(key_id):
                raise KeyConfigError(f"key id {key_id!r} must match {KEY_ID.pattern}")
            raw = decode_key(key, name=key_id) if isinstance(key, str) else key
            if len(raw) != KEY_BYTES:
                raise KeyConfigError(f"key {key_id!r} must be {KEY_BYTES} bytes")
            self._aead[key_id] = AESGCM(raw)  # one object per key: no per-value setup
        if active_key_id not in self._aead:
            raise KeyConfigError(
                f"the active key id {active_key_id!r} is not in the keyring "
                f"({', '.join(sorted(self._aead))})"
            )
        self.active_key_id = active_key_id
        index_raw = decode_key(index_key, name="index") if isinstance(index_key, str) else index_key
        if len(index_raw) != KEY_BYTES:
            raise KeyConfigError(f"the index key must be {KEY_BYTES} bytes")
        self._index_key = index_raw

    @property
    def key_ids(self) -> frozenset[str]:
        return frozenset(self._aead)

    def encrypt(self, value: str, *, context: str) -> str:
        """`value` as a token under the active key, bound to `context` (e.g. "debtors.phone")."""
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead[self.active_key_id].encrypt(
            nonce, value.encode(), _aad(self.active_key_id, context)
        )
        body = base64.urlsafe_b64encode(nonce + sealed).rstrip(b"=").decode("ascii")
        return f"{PREFIX}{self.active_key_id}:{body}"

    def decrypt(self, token: str, *, context: str) -> str:
        """The clear value of `token`; a value that is not a token comes back unchanged."""
        if not token.startswith(PREFIX):
            return token
        key_id, sep, body = token[len(PREFIX) :].partition(":")
        if not sep:
            raise CryptoError("malformed token: no key id")
        aead = self._aead.get(key_id)
        if aead is None:
            raise CryptoError(
                f"token written under key id {key_id!r}, which is not in the keyring "
                f"({', '.join(sorted(self._aead))}): add the old key to decrypt it"
            )
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        except (binascii.Error, ValueError) as exc:
            raise CryptoError("malformed token: bad base64") from exc
        if len(raw) < NONCE_BYTES + 16:
            raise CryptoError("malformed token: too short")
        try:
            clear = aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], _aad(key_id, context))
        except InvalidTag:
            raise CryptoError(
                f"token does not decrypt for {context!r}: tampered, or copied from another field"
            ) from None
        return clear.decode()

    def needs_rotation(self, token: str) -> bool:
        """True for clear text and for tokens under a key id other than the active one."""
        return token_key_id(token) != self.active_key_id

    def blind_index(self, value: str, *, kind: str) -> str:
        """HMAC-SHA256 (hex) of the normalised value under the index key, per kind."""
        message = f"{kind}\x00{normalise(value, kind=kind)}".encode()
        return hmac.new(self._index_key, message, hashlib.sha256).hexdigest()


def _aad(key_id: str, context: str) -> bytes:
    return f"qingshou:{PREFIX}{key_id}:{context}".encode()


# --- the process-wide cipher -------------------------------------------------------------------

_lock = threading.Lock()
_cipher: FieldCipher | None = None
_loader: Callable[[], FieldCipher] | None = None


def configure(cipher: FieldCipher | None) -> FieldCipher | None:
    """Install the cipher the column types use; returns the one it replaces."""
    global _cipher
    with _lock:
        previous, _cipher = _cipher, cipher
    return previous


def set_loader(loader: Callable[[], FieldCipher]) -> None:
    """How to build the cipher when nothing configured one (tools that open the database
    without starting the service: the import command, benchmarks, migrations)."""
    global _loader
    _loader = loader


def current() -> FieldCipher:
    """The configured cipher (built by the loader on first use if none was configured)."""
    global _cipher
    cipher = _cipher
    if cipher is not None:
        return cipher
    with _lock:
        if _cipher is None:
            if _loader is None:
                raise KeyConfigError("field encryption is not configured")
            _cipher = _loader()
        return _cipher


@contextmanager
def using(cipher: FieldCipher) -> Iterator[FieldCipher]:
    """Use `cipher` for the duration of the block (tests, key rotation)."""
    previous = configure(cipher)
    try:
        yield cipher
    finally:
        configure(previous)


# --- column types ------------------------------------------------------------------------------


class EncryptedString(TypeDecorator[str]):
    """A string stored as a token bound to `context` ("<table>.<column>")."""

    impl = String
    cache_ok = True

    def __init__(self, length: int, *, context: str) -> None:
        super().__init__(length)
        self.context = context

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        if value is None or value == "":
            return value
        return current().encrypt(value, context=self.context)

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return current().decrypt(value, context=self.context)


class EncryptedJSON(TypeDecorator[Any]):
    """A JSON document stored as one token (a JSON string) bound to `context`. Empty documents
    ([] or {}) hold nothing personal and stay as they are; clear (legacy) documents read as is."""

    impl = JSON
    cache_ok = True

    def __init__(self, *, context: str) -> None:
        super().__init__()
        self.context = context

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        return seal_json(value, context=self.context)

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        return open_json(value, context=self.context)


class SealedPathsJSON(TypeDecorator[Any]):
    """A JSON object of which only some nested members are personal (e.g. the debtor's contact
    points inside a case snapshot): those members are sealed as tokens, each bound to
    `<context>.<path>`; the rest of the document stays readable."""

    impl = JSON
    cache_ok = True

    def __init__(self, *, context: str, paths: tuple[str, ...]) -> None:
        super().__init__()
        self.context = context
        self.paths = paths

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        return map_paths(value, self.paths, lambda v, path: seal_json(v, context=self._ctx(path)))

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        return map_paths(value, self.paths, lambda v, path: open_json(v, context=self._ctx(path)))

    def _ctx(self, path: str) -> str:
        return f"{self.context}.{path}"


def seal_json(value: Any, *, context: str, cipher: FieldCipher | None = None) -> Any:
    """A JSON document as one token (None and empty documents stay as they are)."""
    if value is None or value == [] or value == {}:
        return value
    cipher = cipher or current()
    return cipher.encrypt(json.dumps(value, ensure_ascii=False), context=context)


def open_json(value: Any, *, context: str, cipher: FieldCipher | None = None) -> Any:
    """The document a token holds; anything else (a clear legacy document) as it is."""
    if is_token(value):
        return json.loads((cipher or current()).decrypt(value, context=context))
    return value


def map_paths(value: Any, paths: tuple[str, ...], apply: Callable[[Any, str], Any]) -> Any:
    """A copy of the JSON object `value` with `apply(member, path)` at each dotted path present
    (absent paths are skipped; the caller's document is never changed in place)."""
    if not isinstance(value, dict):
        return value
    out = dict(value)
    for path in paths:
        *parents, leaf = path.split(".")
        node: Any = out
        for name in parents:
            child = node.get(name) if isinstance(node, dict) else None
            if not isinstance(child, dict):
                node = None
                break
            child = dict(child)
            node[name] = child
            node = child
        if isinstance(node, dict) and leaf in node:
            node[leaf] = apply(node[leaf], path)
    return out


def walk_tokens(value: Any) -> Iterator[str]:
    """Every token inside a stored value (a string, or a JSON document holding tokens)."""
    if isinstance(value, str):
        if value.startswith(PREFIX):
            yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from walk_tokens(item)
    elif isinstance(value, list):
        for item in value:
            yield from walk_tokens(item)
