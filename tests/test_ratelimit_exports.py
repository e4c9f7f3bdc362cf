"""The public names of the rate-limit and webhook modules, pinned."""

from ghlsync.ghl import _ratelimit, _webhooks


def test_ratelimit_exports() -> None:
    assert _ratelimit.__all__ == [
        "LimitState",
        "MemoryRateLimiter",
        "Policy",
        "RateHeaders",
        "SqlRateLimiter",
    ]


def test_webhook_exports() -> None:
    assert _webhooks.__all__ == [
        "DEFAULT",
        "GHL_RSA_PUBLIC_KEY_PEM",
        "InvalidSignature",
        "MalformedWebhook",
        "MemoryReplayGuard",
        "MissingSignature",
        "ReplayGuard",
        "ReplayedWebhook",
        "SqlReplayGuard",
        "StaleTimestamp",
        "WebhookVerificationError",
        "WebhookVerifier",
    ]
