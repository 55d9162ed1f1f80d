"""Signed checkpoints: an Ed25519 signature over a canonical tree head."""

from __future__ import annotations

import hashlib
from datetime import datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from shared.contracts import canonical_json

LOG_ID = "qingshou-evidence-log"


def checkpoint_message(*, tree_size: int, root_hash: str, issued_at: datetime) -> bytes:
    """The exact bytes that are signed."""
    return canonical_json(
        {
            "log": LOG_ID,
            "tree_size": tree_size,
            "root_hash": root_hash,
            "issued_at": issued_at.isoformat(),
        }
    )


def private_key(seed_hex: str) -> Ed25519PrivateKey:
    """The signing key from its 32-byte seed (hex)."""
    return Ed25519PrivateKey.from_private_bytes(bytes.fromhex(seed_hex))


def public_key_hex(key: Ed25519PrivateKey) -> str:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


def key_id(public_hex: str) -> str:
    """Short, stable name of a public key (so keys can rotate)."""
    return hashlib.sha256(bytes.fromhex(public_hex)).hexdigest()[:16]


def sign(key: Ed25519PrivateKey, message: bytes) -> str:
    return key.sign(message).hex()


def verify(*, public_hex: str, message: bytes, signature_hex: str) -> bool:
    """True if `signature_hex` is the key's signature of `message`."""
    try:
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_hex)).verify(
            bytes.fromhex(signature_hex), message
        )
    except (InvalidSignature, ValueError):
        return False
    return True
