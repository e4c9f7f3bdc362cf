"""The GoHighLevel API client (v2, and v3 per connection): requests, auth, rate limits, errors
and webhooks.

```python
from ghlsync.ghl import GHLClient, StaticTokens, MemoryRateLimiter

async with GHLClient(tokens=StaticTokens({"loc_1": "pit-..."}), limiter=MemoryRateLimiter()) as ghl:
    result = await ghl.contacts.upsert("loc_1", {"email": "ava@example.com"})
```
"""

from ghlsync._secret import Secret
from ghlsync.ghl._client import DEFAULT_BASE_URL, GHLClient, RateInfo, probe_api_versions
from ghlsync.ghl._crypto import SecretKeyError, TokenCipher
from ghlsync.ghl._errors import (
    AuthenticationError,
    BadRequestError,
    ConflictError,
    FatalError,
    GHLError,
    NotFoundError,
    OutcomeUnknownError,
    PermissionDeniedError,
    RateLimitedError,
    ReconnectNeededError,
    RetriableError,
    ServerError,
    SkippableError,
    TransportError,
    UnexpectedStatusError,
    UnprocessableError,
    ValidationError,
    classify,
)
from ghlsync.ghl._oauth import InvalidGrantError, LocationInactiveError, OAuthApp, TokenSet
from ghlsync.ghl._operations import OPERATIONS, Operation
from ghlsync.ghl._ratelimit import MemoryRateLimiter, SqlRateLimiter
from ghlsync.ghl._retry import RetryDecision, backoff, should_retry
from ghlsync.ghl._seams import Budget, RateLimiter, TokenSource
from ghlsync.ghl._tokens import StaticTokens
from ghlsync.ghl._vault import ConnectionStatus, TokenVault
from ghlsync.ghl._webhooks import (
    InvalidSignature,
    MissingSignature,
    ReplayedWebhook,
    StaleTimestamp,
    WebhookVerificationError,
    WebhookVerifier,
)

__all__ = [
    "DEFAULT_BASE_URL",
    "OPERATIONS",
    "AuthenticationError",
    "BadRequestError",
    "Budget",
    "ConflictError",
    "ConnectionStatus",
    "FatalError",
    "GHLClient",
    "GHLError",
    "InvalidGrantError",
    "InvalidSignature",
    "LocationInactiveError",
    "MemoryRateLimiter",
    "MissingSignature",
    "NotFoundError",
    "OAuthApp",
    "Operation",
    "OutcomeUnknownError",
    "PermissionDeniedError",
    "RateInfo",
    "RateLimitedError",
    "RateLimiter",
    "ReconnectNeededError",
    "ReplayedWebhook",
    "RetriableError",
    "RetryDecision",
    "Secret",
    "SecretKeyError",
    "ServerError",
    "SkippableError",
    "SqlRateLimiter",
    "StaleTimestamp",
    "StaticTokens",
    "TokenCipher",
    "TokenSet",
    "TokenSource",
    "TokenVault",
    "TransportError",
    "UnexpectedStatusError",
    "UnprocessableError",
    "ValidationError",
    "WebhookVerificationError",
    "WebhookVerifier",
    "backoff",
    "classify",
    "probe_api_versions",
    "should_retry",
]
