"""Table-driven tests of the error classification and the retry policy."""

from __future__ import annotations

import random

import pytest

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
    classify,
)
from ghlsync.ghl._retry import ExcKind, backoff, should_retry


@pytest.mark.parametrize(
    ("status", "expected", "family"),
    [
        (400, BadRequestError, FatalError),
        (401, AuthenticationError, FatalError),
        (403, PermissionDeniedError, FatalError),
        (404, NotFoundError, SkippableError),
        (409, ConflictError, SkippableError),
        (422, UnprocessableError, FatalError),
        (429, RateLimitedError, RetriableError),
        (418, UnexpectedStatusError, FatalError),
        (500, ServerError, RetriableError),
        (502, ServerError, RetriableError),
        (503, ServerError, RetriableError),
        (504, ServerError, RetriableError),
    ],
)
def test_classify(status: int, expected: type[GHLError], family: type[GHLError]) -> None:
    assert classify(status, {}, {}) is expected
    assert issubclass(expected, family)


def test_tree_places_special_errors() -> None:
    assert issubclass(ReconnectNeededError, AuthenticationError)
    assert issubclass(OutcomeUnknownError, RetriableError)
    assert issubclass(TransportError, RetriableError)


def test_error_str_leads_with_trace_id_and_keeps_fields() -> None:
    body = {"message": "Invalid field additional_phones", "traceId": "abc-123"}
    error = UnprocessableError(
        status=422, body=body, headers={"X-Foo": "1"}, method="POST", path="/contacts/"
    )
    assert str(error) == "Request abc-123: POST /contacts/ -> 422 Invalid field additional_phones"
    assert error.trace_id == "abc-123"
    assert error.headers == {"x-foo": "1"}
    assert error.body == body


def test_trace_id_from_header_and_text_body() -> None:
    error = ServerError(status=502, body="<html>bad gateway</html>", headers={"traceId": "h-1"})
    assert error.trace_id == "h-1"
    assert "bad gateway" in str(error)


_TABLE: list[tuple[str, int | None, ExcKind | None, int, bool | None, bool, bool, bool]] = [
    # method, status, exc, attempt, idempotent, retry, counts, outcome_unknown
    ("GET", 429, None, 1, None, True, False, False),
    ("POST", 429, None, 5, None, True, False, False),  # 429 never uses up attempts
    ("GET", 400, None, 1, None, False, True, False),
    ("GET", 404, None, 1, None, False, True, False),
    ("PUT", 422, None, 1, None, False, True, False),
    ("GET", 500, None, 1, None, True, True, False),
    ("GET", 500, None, 5, None, False, True, False),  # out of attempts
    ("PUT", 502, None, 2, None, True, True, False),
    ("GET", 501, None, 1, None, False, True, False),
    ("DELETE", 504, None, 1, None, True, True, False),
    ("POST", 503, None, 1, None, True, True, False),  # 503: not taken, safe to resend
    ("POST", 500, None, 1, None, False, True, True),
    ("POST", 504, None, 1, None, False, True, True),
    ("POST", 500, None, 1, True, True, True, False),  # upsert/search marked idempotent
    ("GET", None, "read_timeout", 1, None, True, True, False),
    ("POST", None, "read_timeout", 1, None, False, True, True),
    ("POST", None, "dropped", 1, None, False, True, True),
    ("POST", None, "write_timeout", 1, None, False, True, True),
    ("POST", None, "connect", 1, None, True, True, False),
    ("POST", None, "pool_timeout", 1, None, True, True, False),
    ("POST", None, "connect", 5, None, False, True, False),
    ("PUT", None, "dropped", 1, None, True, True, False),
]


@pytest.mark.parametrize(
    ("method", "status", "exc", "attempt", "idem", "retry", "counts", "unknown"), _TABLE
)
def test_should_retry(
    method: str,
    status: int | None,
    exc: ExcKind | None,
    attempt: int,
    idem: bool | None,
    retry: bool,
    counts: bool,
    unknown: bool,
) -> None:
    decision = should_retry(method, status, exc, attempt, 5, idempotent=idem)
    assert (decision.retry, decision.counts, decision.outcome_unknown) == (retry, counts, unknown)
    assert decision.reason
    if decision.retry:
        assert 0 <= decision.delay <= 60


def test_429_follows_rate_headers() -> None:
    headers = {"X-RateLimit-Remaining": "0", "X-RateLimit-Interval-Milliseconds": "10000"}
    assert should_retry("GET", 429, None, 1, 5, headers=headers).delay == 10.0
    assert should_retry("GET", 429, None, 1, 5, headers={"Retry-After": "3"}).delay == 3.0
    spent = should_retry("GET", 429, None, 1, 5, headers={"X-RateLimit-Daily-Remaining": "0"})
    assert not spent.retry
    assert not should_retry("GET", 429, None, 1, 5, throttled=8).retry


@pytest.mark.parametrize("attempt", range(1, 15))
def test_backoff_stays_within_floor_and_ceiling(attempt: int) -> None:
    rng = random.Random(attempt)
    delays = [backoff(attempt, floor=0.5, ceiling=60, rng=rng) for _ in range(200)]
    assert all(0.5 <= d <= min(60.0, 0.5 * 2**attempt) for d in delays)
    assert len(set(delays)) > 1  # jittered


def test_backoff_grows_with_attempts() -> None:
    early = max(backoff(1, rng=random.Random(i)) for i in range(50))
    late = max(backoff(8, rng=random.Random(i)) for i in range(50))
    assert early <= 1.0 < late
