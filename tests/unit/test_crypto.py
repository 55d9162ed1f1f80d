"""Field encryption: tokens, associated data, tampering, key ids and rotation, blind indexes."""

from __future__ import annotations

import base64
import os
from typing import Any

import pytest
from sqlalchemy.dialects import sqlite

from services.cases.settings import CasesSettings
from shared import crypto
from shared.crypto import (
    CryptoError,
    EncryptedJSON,
    EncryptedString,
    FieldCipher,
    KeyConfigError,
    SealedPathsJSON,
    token_key_id,
)

K1 = os.urandom(32)
K2 = os.urandom(32)
INDEX = os.urandom(32)


def cipher(active: str = "k1", index: bytes = INDEX, **keys: bytes) -> FieldCipher:
    return FieldCipher(keys=keys or {"k1": K1}, active_key_id=active, index_key=index)


def test_round_trip_gives_the_value_back_and_no_clear_text_in_the_token() -> None:
    c = cipher()
    token = c.encrypt("310101199001011234", context="debtors.national_id")
    assert token.startswith("enc:v1:k1:")
    assert "310101199001011234" not in token
    assert c.decrypt(token, context="debtors.national_id") == "310101199001011234"
    # A fresh nonce each time: equal values do not give equal tokens.
    assert c.encrypt("310101199001011234", context="debtors.national_id") != token


def test_unicode_round_trip() -> None:
    c = cipher()
    token = c.encrypt("上海市浦东新区 1 号", context="debtors.addresses")
    assert c.decrypt(token, context="debtors.addresses") == "上海市浦东新区 1 号"


def test_a_token_moved_to_another_field_does_not_decrypt() -> None:
    c = cipher()
    token = c.encrypt("+8613800138000", context="debtors.phone")
    with pytest.raises(CryptoError, match=r"debtors\.national_id"):
        c.decrypt(token, context="debtors.national_id")


@pytest.mark.parametrize("position", [12, 20, -1])
def test_a_tampered_token_does_not_decrypt(position: int) -> None:
    c = cipher()
    token = c.encrypt("+8613800138000", context="debtors.phone")
    prefix, body = token.rsplit(":", 1)
    raw = bytearray(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    raw[position] ^= 0x01
    forged = prefix + ":" + base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    with pytest.raises(CryptoError):
        c.decrypt(forged, context="debtors.phone")


def test_a_token_relabelled_with_another_key_id_does_not_decrypt() -> None:
    c = cipher("k1", k1=K1, k2=K1)  # even with the same key material under both ids
    token = c.encrypt("x@example.com", context="debtors.contact_points")
    relabelled = token.replace("enc:v1:k1:", "enc:v1:k2:", 1)
    with pytest.raises(CryptoError):
        c.decrypt(relabelled, context="debtors.contact_points")


def test_malformed_tokens_are_refused() -> None:
    c = cipher()
    for bad in ("enc:v1:k1", "enc:v1:k1:%%%", "enc:v1:k1:AAAA"):
        with pytest.raises(CryptoError):
            c.decrypt(bad, context="debtors.phone")


def test_an_unknown_key_id_is_a_clear_error() -> None:
    token = cipher("k2", k2=K2).encrypt("+8613800138000", context="debtors.phone")
    with pytest.raises(CryptoError, match=r"key id 'k2'.*not in the keyring"):
        cipher().decrypt(token, context="debtors.phone")


def test_clear_legacy_values_read_as_they_are() -> None:
    assert cipher().decrypt("+8613800138000", context="debtors.phone") == "+8613800138000"


def test_rotation_old_keys_decrypt_and_new_values_use_the_active_id() -> None:
    old = cipher("k1", k1=K1)
    token = old.encrypt("310101199001011234", context="debtors.national_id")
    rotated = cipher("k2", k1=K1, k2=K2)
    assert rotated.decrypt(token, context="debtors.national_id") == "310101199001011234"
    assert rotated.needs_rotation(token)
    fresh = rotated.encrypt("310101199001011234", context="debtors.national_id")
    assert token_key_id(fresh) == "k2"
    assert not rotated.needs_rotation(fresh)
    with pytest.raises(CryptoError):  # the old ring cannot read the new key's tokens
        old.decrypt(fresh, context="debtors.national_id")


def test_blind_index_normalises_each_kind() -> None:
    c = cipher()
    assert c.blind_index("+86 138-0013-8000", kind="phone") == c.blind_index(
        "+8613800138000", kind="phone"
    )
    # The country code is kept as given: with and without + are different numbers.
    assert c.blind_index("8613800138000", kind="phone") != c.blind_index(
        "+8613800138000", kind="phone"
    )
    assert c.blind_index("  Zhang.San@Example.COM ", kind="email") == c.blind_index(
        "zhang.san@example.com", kind="email"
    )
    assert c.blind_index("31010119900101123x", kind="national_id") == c.blind_index(
        " 31010119900101123X", kind="national_id"
    )
    assert c.blind_index("31010119900101123X", kind="national_id") != c.blind_index(
        "31010119900101123Y", kind="national_id"
    )
    index = c.blind_index("+8613800138000", kind="phone")
    assert len(index) == 64
    assert int(index, 16) >= 0
    with pytest.raises(ValueError, match="no blind index kind"):
        c.blind_index("x", kind="name")


def test_blind_index_is_keyed_and_separates_kinds() -> None:
    a, b = cipher(index=INDEX), cipher(index=os.urandom(32))
    assert a.blind_index("12345678", kind="phone") != b.blind_index("12345678", kind="phone")
    assert a.blind_index("12345678", kind="phone") != a.blind_index("12345678", kind="national_id")
    # Independent of the encryption keys: rotating them keeps the indexes.
    assert cipher("k2", k1=K1, k2=K2).blind_index("12345678", kind="phone") == a.blind_index(
        "12345678", kind="phone"
    )


def test_keyring_validation() -> None:
    with pytest.raises(KeyConfigError, match="active key id"):
        cipher("k9")
    with pytest.raises(KeyConfigError, match="32 bytes"):
        FieldCipher(keys={"k1": os.urandom(16)}, active_key_id="k1", index_key=INDEX)
    with pytest.raises(KeyConfigError, match="32 bytes"):
        FieldCipher(keys={"k1": "abcd"}, active_key_id="k1", index_key=INDEX)
    with pytest.raises(KeyConfigError, match="key id"):
        FieldCipher(keys={"k:1": K1}, active_key_id="k:1", index_key=INDEX)
    with pytest.raises(KeyConfigError, match="index key"):
        FieldCipher(keys={"k1": K1}, active_key_id="k1", index_key=b"short")
    # Hex and base64 spell the same key.
    by_hex = FieldCipher(keys={"k1": K1.hex()}, active_key_id="k1", index_key=INDEX.hex())
    by_b64 = FieldCipher(
        keys={"k1": base64.b64encode(K1).decode()},
        active_key_id="k1",
        index_key=base64.urlsafe_b64encode(INDEX).decode(),
    )
    token = by_hex.encrypt("v", context="t.c")
    assert by_b64.decrypt(token, context="t.c") == "v"
    assert by_hex.blind_index("v", kind="email") == by_b64.blind_index("v", kind="email")


def test_settings_validate_the_keyring_at_start_up() -> None:
    assert CasesSettings().field_cipher().active_key_id == "demo1"
    with pytest.raises(ValueError, match="active key id 'k2'"):
        CasesSettings(field_key_id="k2")
    with pytest.raises(ValueError, match="32 bytes"):
        CasesSettings(field_keys={"k1": "00" * 16}, field_key_id="k1")
    with pytest.raises(ValueError, match="32 bytes"):
        CasesSettings(index_key="tooshort")


def test_column_types_encrypt_on_bind_and_decrypt_on_result() -> None:
    with crypto.using(cipher()):
        dialect = sqlite.dialect()
        text = EncryptedString(255, context="debtors.phone")
        stored = text.process_bind_param("+8613800138000", dialect)
        assert stored is not None
        assert stored.startswith("enc:v1:k1:")
        assert text.process_result_value(stored, dialect) == "+8613800138000"
        assert text.process_bind_param(None, dialect) is None

        doc = EncryptedJSON(context="debtors.addresses")
        value = [{"lines": ["1 Road"], "city": "Shanghai", "country": "CN"}]
        sealed = doc.process_bind_param(value, dialect)
        assert isinstance(sealed, str)
        assert "Shanghai" not in sealed
        assert doc.process_result_value(sealed, dialect) == value
        assert doc.process_bind_param([], dialect) == []
        assert doc.process_result_value(value, dialect) == value

        snap = SealedPathsJSON(context="timeline.snapshot", paths=("debtor.contact_points",))
        document: dict[str, Any] = {
            "id": 1,
            "debtor": {"name": "n", "contact_points": [{"value": "a@b.cn"}]},
        }
        sealed_doc: dict[str, Any] = snap.process_bind_param(document, dialect)
        assert "a@b.cn" not in str(sealed_doc)
        assert sealed_doc["debtor"]["name"] == "n"
        assert document["debtor"]["contact_points"] == [{"value": "a@b.cn"}]  # not changed
        assert snap.process_result_value(sealed_doc, dialect) == document
        # The sealed member is bound to its path: moved elsewhere, it does not open.
        with pytest.raises(CryptoError):
            doc.process_result_value(sealed_doc["debtor"]["contact_points"], dialect)
