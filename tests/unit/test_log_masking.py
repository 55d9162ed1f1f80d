"""Personal data never reaches a log line in clear: phones, national ids and e-mails are
masked in messages, extras and tracebacks, and nothing else is touched."""

from __future__ import annotations

import json
import logging

import pytest

from shared.logging import JsonFormatter, MaskingFormatter, mask_personal_data


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("call 13812345678 now", "call 138****5678 now"),
        ("phone +86 138 1234 5678", "phone +86 138****5678"),
        ("tel 138-1234-5678.", "tel 138****5678."),
        ("id 11010119900307123X ok", "id 110101********123X ok"),
        ("id 110101199003071234", "id 110101********1234"),
        ("mail li.wei@example.com,", "mail l***@example.com,"),
        ("us +1 415 555 0123", "us +1****0123"),
    ],
)
def test_masks(text: str, masked: str) -> None:
    assert mask_personal_data(text) == masked


@pytest.mark.parametrize(
    "text",
    [
        "case 6f1c2e4a-1d3b-4c55-9a7e-2b8f0c1d2e3f",
        "at 2026-11-30T12:00:00.123+00:00 offset 1234567 seq 20000",
        "listening on 127.0.0.1:54321",
        "hash 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "amount 12345678.90 CNY",
    ],
)
def test_leaves_other_numbers_alone(text: str) -> None:
    assert mask_personal_data(text) == text


def test_formatters_mask_messages_extras_and_tracebacks() -> None:
    logger = logging.getLogger("test.masking")
    record = logger.makeRecord(
        "test.masking",
        logging.INFO,
        __file__,
        1,
        "debtor %s",
        ("13812345678",),
        None,
        extra={"email": "li.wei@example.com"},
    )
    try:
        raise ValueError("bad id 11010119900307123X")
    except ValueError:
        import sys

        record.exc_info = sys.exc_info()
    line = JsonFormatter("cases").format(record)
    entry = json.loads(line)
    assert entry["msg"] == "debtor 138****5678"
    assert entry["email"] == "l***@example.com"
    assert "11010119900307123X" not in entry["exc"]
    assert "110101********123X" in entry["exc"]
    plain = MaskingFormatter("%(message)s").format(record)
    assert "13812345678" not in plain
    assert "11010119900307123X" not in plain
