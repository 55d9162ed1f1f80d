"""JSON structured logging with the current correlation id on every line, and personal data
(phone numbers, national ids, e-mail addresses) masked in whatever a line says."""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

correlation_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "correlation_id", default=None
)

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


# A Chinese resident id (17 digits and a digit or X), then phone numbers: 11 digits starting
# 1[3-9] (Chinese mobile) or 8-15 digits after a "+" (E.164), neither inside a longer token
# (so ids, offsets and timestamps are left alone).
_NATIONAL_ID = re.compile(r"(?<![\w.])(\d{6})\d{8}(\d{3}[\dXx])(?!\w|\.\d)")
_PHONE = re.compile(r"(?<![\w.+])(\+?\d{0,4}[ -]?)?(1[3-9]\d)[ -]?\d{4}[ -]?(\d{4})(?!\w|\.\d)")
_E164 = re.compile(r"(?<![\w.])\+(\d{1,3})[\d -]{4,12}(\d{4})(?!\w|\.\d)")
_EMAIL = re.compile(r"(?<![\w.+-])([\w.+-])[\w.+-]*@([\w-]+(?:\.[\w-]+)+)")


def mask_personal_data(text: str) -> str:
    """`text` with phone numbers, national ids and e-mail addresses masked the way collectors
    see them on screen (`138****5678`, `110101********123X`, `l***@example.com`)."""
    text = _NATIONAL_ID.sub(lambda m: f"{m[1]}********{m[2]}", text)
    text = _PHONE.sub(lambda m: f"{m[1] or ''}{m[2]}****{m[3]}", text)
    text = _E164.sub(lambda m: f"+{m[1]}****{m[2]}", text)
    return _EMAIL.sub(lambda m: f"{m[1]}***@{m[2]}", text)


class MaskingFormatter(logging.Formatter):
    """A plain-text formatter that masks personal data like the JSON one."""

    def format(self, record: logging.LogRecord) -> str:
        return mask_personal_data(super().format(record))


@contextmanager
def correlation_scope(value: str | None) -> Iterator[None]:
    """Make `value` the correlation id of every log line written inside the block."""
    token = correlation_id.set(value)
    try:
        yield
    finally:
        correlation_id.reset(token)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, correlation id, extras."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        cid = correlation_id.get()
        if cid:
            entry["correlation_id"] = cid
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        # Masked after serialising, so extras, messages and tracebacks are all covered.
        return mask_personal_data(json.dumps(entry, default=str, ensure_ascii=False))


def configure_logging(*, service: str, level: str = "INFO", json_lines: bool = True) -> None:
    """Route all logging to stderr, as JSON lines unless `json_lines` is false."""
    handler = logging.StreamHandler(sys.stderr)
    if json_lines:
        handler.setFormatter(JsonFormatter(service))
    else:
        handler.setFormatter(MaskingFormatter(f"%(asctime)s {service} %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiokafka logs every reconnect attempt at ERROR while the broker is down; our relay and
    # consumer already report that once per backoff step.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
