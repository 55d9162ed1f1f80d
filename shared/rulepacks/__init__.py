"""Contact and conduct rule packs (cn, us-federal, us-ma, uk), shared by the services that
decide contact (contact) and those that re-check it independently (compliance).

Versioned code plus data: each pack carries its version, each rule the stable id and citation
of REGULATIONS.md. A decision records the pack versions it was made under, so a re-check
months later can tell a rule change from a violation.
"""

from shared.rulepacks.engine import (
    CONNECTED_RESULTS,
    CONVERSATION_RESULTS,
    PACKS,
    PERSON_HOLDS,
    Attempt,
    DebtorState,
    Decision,
    DecisionRequest,
    Hold,
    Objection,
    Policy,
    attempt_from_outcome,
    decide,
    hold_rule_ids,
    hours_rule_ids,
    opt_out_rule_ids,
    pack_limits,
    pack_versions,
    policy_from_document,
)
from shared.rulepacks.windows import Channel, ContactWindow, is_allowed_at, next_allowed_slot

__all__ = [
    "CONNECTED_RESULTS",
    "CONVERSATION_RESULTS",
    "PACKS",
    "PERSON_HOLDS",
    "Attempt",
    "Channel",
    "ContactWindow",
    "DebtorState",
    "Decision",
    "DecisionRequest",
    "Hold",
    "Objection",
    "Policy",
    "attempt_from_outcome",
    "decide",
    "hold_rule_ids",
    "hours_rule_ids",
    "is_allowed_at",
    "next_allowed_slot",
    "opt_out_rule_ids",
    "pack_limits",
    "pack_versions",
    "policy_from_document",
]
