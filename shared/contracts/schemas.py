"""Published JSON Schemas of the envelope and every event payload (for dialer and CRM teams).

`python -m shared.contracts.schemas --write` regenerates `shared/contracts/schemas/`;
`--check` fails if the committed files are stale (run by the tests).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from shared.contracts.envelope import Envelope
from shared.contracts.events import PAYLOADS
from shared.contracts.topics import (
    ADMIN_EVENTS,
    CASES_EVENTS,
    COMPLIANCE_EVENTS,
    CONTACT_EVENTS,
    CONTACT_OUTCOMES,
    SCORING_EVENTS,
)

SCHEMA_DIR = Path(__file__).parent / "schemas"
TOPIC_OF: dict[str, str] = {
    "case.opened": CASES_EVENTS,
    "case.updated": CASES_EVENTS,
    "payment.received": CASES_EVENTS,
    "ptp.broken": CASES_EVENTS,
    "case.hold_placed": CASES_EVENTS,
    "case.hold_released": CASES_EVENTS,
    "debtor.erased": CASES_EVENTS,
    "case.scored": SCORING_EVENTS,
    "score.overridden": SCORING_EVENTS,
    "contact.planned": CONTACT_EVENTS,
    "contact.outcome": CONTACT_OUTCOMES,
    "contact.outcome_recorded": CONTACT_EVENTS,
    "contact.escalated": CONTACT_EVENTS,
    "contact.blocked": CONTACT_EVENTS,
    "contact.cancelled": CONTACT_EVENTS,
    "contact.policy_changed": CONTACT_EVENTS,
    "compliance.checkpoint": COMPLIANCE_EVENTS,
    "violation.detected": COMPLIANCE_EVENTS,
    "complaint.opened": COMPLIANCE_EVENTS,
    "complaint.status_changed": COMPLIANCE_EVENTS,
    "transcript.reviewed": COMPLIANCE_EVENTS,
    "qa.reviewed": COMPLIANCE_EVENTS,
    "compliance.purged": COMPLIANCE_EVENTS,
    "admin.key_created": ADMIN_EVENTS,
    "admin.key_revoked": ADMIN_EVENTS,
    "model.activated": SCORING_EVENTS,
}


def render() -> dict[str, str]:
    """File name -> JSON text of every published schema."""
    files: dict[str, Any] = {}
    envelope = Envelope.model_json_schema()
    envelope["$id"] = "https://qingshou.dev/schemas/envelope.json"
    files["envelope.json"] = envelope
    index: list[dict[str, Any]] = []
    for payload in PAYLOADS:
        name = f"{payload.event_type}.v{payload.event_version}.json"
        schema = payload.model_json_schema()
        schema["$id"] = f"https://qingshou.dev/schemas/{name}"
        schema["x-event-type"] = payload.event_type
        schema["x-event-version"] = payload.event_version
        schema["x-topic"] = TOPIC_OF.get(payload.event_type)
        files[name] = schema
        index.append(
            {
                "type": payload.event_type,
                "version": payload.event_version,
                "topic": TOPIC_OF.get(payload.event_type),
                "schema": name,
                "description": (payload.__doc__ or "").strip(),
            }
        )
    files["index.json"] = {"envelope": "envelope.json", "events": index}
    return {
        name: json.dumps(body, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        for name, body in files.items()
    }


def stale_files() -> list[str]:
    """Names whose committed text differs from what the contracts render today."""
    stale = []
    for name, text in render().items():
        path = SCHEMA_DIR / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            stale.append(name)
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared.contracts.schemas")
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    if args.write:
        SCHEMA_DIR.mkdir(exist_ok=True)
        for name, text in render().items():
            (SCHEMA_DIR / name).write_text(text, encoding="utf-8")
        print(f"wrote {len(render())} schema files to {SCHEMA_DIR}")
        return 0
    stale = stale_files()
    if stale:
        print(f"stale schema files (run `make schemas`): {', '.join(stale)}")
        return 1
    print("schemas are up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
