"""Follow-up actions: proposed, approved (by policy or a person), executed exactly once by the consumer.

The public names; the adapters' internals stay in the underscore modules.
"""

from deskpilot.server.actions._types import (
    ACTION_KINDS,
    PARAMS_TYPES,
    ActionAdapter,
    ActionError,
    Effect,
    PermanentError,
    TransientError,
    idempotency_key,
)
from deskpilot.server.actions.adapters import build_adapters

__all__ = [
    "ACTION_KINDS",
    "PARAMS_TYPES",
    "ActionAdapter",
    "ActionError",
    "Effect",
    "PermanentError",
    "TransientError",
    "build_adapters",
    "idempotency_key",
]
