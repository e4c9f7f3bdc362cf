"""The DripJobs side: inbound events from Zapier, their keys, verification and body parsing.

The default preset's event names and fields live in the mapping preset (`ghlsync.mapping`),
which is also what decides whether an event is known.
"""

from ghlsync.dripjobs._body import BodyError, parse_body
from ghlsync.dripjobs._fields import delivery_id
from ghlsync.dripjobs._keys import fold_key, fold_keys
from ghlsync.dripjobs._verify import (
    DEFAULT_TOLERANCE_SECONDS,
    InboundVerifier,
    VerificationError,
    Verified,
    sign,
    signing_key,
)

__all__ = [
    "DEFAULT_TOLERANCE_SECONDS",
    "BodyError",
    "InboundVerifier",
    "VerificationError",
    "Verified",
    "delivery_id",
    "fold_key",
    "fold_keys",
    "parse_body",
    "sign",
    "signing_key",
]
