"""The GHL client's request pipeline, driven through httpx2.MockTransport."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

import httpx2
import pytest

from ghlsync._clock import FakeClock
from ghlsync._secret import Secret
from ghlsync.ghl._client import GHLClient, redact
from ghlsync.ghl._errors import (
    AuthenticationError,
    GHLError,
    NotFoundError,
    OutcomeUnknownError,
    RateLimitedError,
    ReconnectNeededError,
    ServerError,
    UnprocessableError,
    ValidationError,
)
from ghlsync.ghl._seams import Budget

TOKEN = "pit-0123456789abcdef-SECRET"
FRESH = "pit-fedcba9876543210-FRESH"
LOC = "loc_1"


class FakeTokens:
    """Hands out TOKEN; after a 401 hands out FRESH (or None when `reconnect` is set)."""

    def __init__(self, *, reconnect: bool = False) -> None:
        self.current = Secret(TOKEN)
        self.refreshes: list[str] = []
        self.reconnect = reconnect

    async def token(self, key: str) -> Secret:
        return self.current

    async def after_unauthorized(self, key: str, rejected: Secret) -> Secret | None:
        self.refreshes.append(rejected.reveal())
        if self.reconnect:
            return None
        self.current = Secret(FRESH)
        return self.current


class FakeLimiter:
    """Records acquire/observe calls."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, int | None]] = []

    async def acquire(self, key: str) -> None:
        self.events.append(("acquire", key, None))

    async def observe(self, key: str, status: int, headers: Mapping[str, str]) -> None:
        self.events.append(("observe", key, status))

    async def has_budget(self, key: str) -> bool:
        return True

    async def budget(self, key: str) -> Budget:
        return Budget(key, 100, 10_000, None, 200_000, None, 0.0, 0)


Handler = Callable[[httpx2.Request], httpx2.Response]


def scripted(*answers: httpx2.Response | Exception) -> tuple[Handler, list[httpx2.Request]]:
    """A handler giving `answers` in order, and the list of requests it saw."""
    seen: list[httpx2.Request] = []
    queue = list(answers)

    def handle(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        answer = queue.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return handle, seen


def make_client(
    handler: Handler, *, tokens: FakeTokens | None = None, limiter: FakeLimiter | None = None
) -> tuple[GHLClient, FakeClock]:
    clock = FakeClock()
    client = GHLClient(
        base_url="http://ghl.test",
        tokens=tokens or FakeTokens(),
        limiter=limiter,
        transport=httpx2.MockTransport(handler),
        clock=clock,
        max_attempts=3,
    )
    return client, clock


def ok(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> httpx2.Response:
    return httpx2.Response(status, json=body, headers=headers or {})


async def test_sends_auth_version_accept_and_returns_model() -> None:
    handler, seen = scripted(ok({"contact": {"id": "c1", "email": "a@x.io", "newField": 1}}))
    client, _ = make_client(handler)
    async with client:
        contact = await client.contacts.get(LOC, "c1")
    assert contact.id == "c1"
    assert contact.model_extra == {"newField": 1}
    request = seen[0]
    assert request.url.path == "/contacts/c1"
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.headers["version"] == "2021-07-28"
    assert request.headers["accept"] == "application/json"


async def test_calendar_operations_send_their_version() -> None:
    handler, seen = scripted(ok({"event": {"id": "e1"}}))
    client, _ = make_client(handler)
    async with client:
        event = await client.calendars.get_appointment(LOC, "e1")
    assert event.id == "e1"
    assert seen[0].headers["version"] == "2021-04-15"


async def test_limiter_acquired_before_and_observes_after_each_attempt() -> None:
    limiter = FakeLimiter()
    handler, _ = scripted(ok({}, 500), ok({"contact": {"id": "c1"}}))
    client, _ = make_client(handler, limiter=limiter)
    async with client:
        await client.contacts.get(LOC, "c1")
    assert limiter.events == [
        ("acquire", LOC, None),
        ("observe", LOC, 500),
        ("acquire", LOC, None),
        ("observe", LOC, 200),
    ]


async def test_401_refreshes_once_then_retries_once_with_new_token() -> None:
    tokens = FakeTokens()
    handler, seen = scripted(ok({"message": "Invalid JWT"}, 401), ok({"contact": {"id": "c1"}}))
    client, _ = make_client(handler, tokens=tokens)
    async with client:
        await client.contacts.get(LOC, "c1")
    assert tokens.refreshes == [TOKEN]
    assert [r.headers["authorization"] for r in seen] == [f"Bearer {TOKEN}", f"Bearer {FRESH}"]


async def test_401_after_refresh_is_authentication_error_without_third_try() -> None:
    tokens = FakeTokens()
    handler, seen = scripted(ok({}, 401), ok({}, 401))
    client, _ = make_client(handler, tokens=tokens)
    async with client:
        with pytest.raises(AuthenticationError):
            await client.contacts.get(LOC, "c1")
    assert len(seen) == 2
    assert len(tokens.refreshes) == 1


async def test_401_without_refreshable_token_needs_reconnect() -> None:
    handler, seen = scripted(ok({}, 401))
    client, _ = make_client(handler, tokens=FakeTokens(reconnect=True))
    async with client:
        with pytest.raises(ReconnectNeededError):
            await client.contacts.get(LOC, "c1")
    assert len(seen) == 1


async def test_429_is_retried_without_using_an_attempt() -> None:
    limited = ok({"message": "Too many"}, 429, headers={"X-RateLimit-Remaining": "0"})
    handler, seen = scripted(
        limited, limited, limited, ok({}, 500), ok({}, 500), ok({"contact": {"id": "c"}})
    )
    client, _ = make_client(handler)  # max_attempts=3: three 429s must not count
    async with client:
        contact = await client.contacts.get(LOC, "c")
    assert contact.id == "c"
    assert len(seen) == 6


async def test_429_waits_one_burst_window_when_no_limiter() -> None:
    limited = ok(
        {}, 429, {"X-RateLimit-Remaining": "0", "X-RateLimit-Interval-Milliseconds": "10000"}
    )
    handler, _ = scripted(limited, ok({"contact": {"id": "c"}}))
    client, clock = make_client(handler)
    start = clock.monotonic()
    async with client:
        await client.contacts.get(LOC, "c")
    assert clock.monotonic() - start == pytest.approx(10.0)


async def test_429_with_daily_budget_spent_raises_rate_limited() -> None:
    spent = ok({}, 429, headers={"X-RateLimit-Daily-Remaining": "0"})
    handler, seen = scripted(spent)
    client, _ = make_client(handler)
    async with client:
        with pytest.raises(RateLimitedError):
            await client.contacts.get(LOC, "c")
    assert len(seen) == 1


async def test_5xx_on_get_retried_until_max_attempts() -> None:
    handler, seen = scripted(ok({}, 502), ok({}, 502), ok({"traceId": "t-9"}, 502))
    client, _ = make_client(handler)
    async with client:
        with pytest.raises(ServerError) as caught:
            await client.contacts.get(LOC, "c")
    assert len(seen) == 3
    assert caught.value.trace_id == "t-9"


async def test_post_read_timeout_is_outcome_unknown_not_resent() -> None:
    handler, seen = scripted(httpx2.ReadTimeout("slow"))
    client, _ = make_client(handler)
    async with client:
        with pytest.raises(OutcomeUnknownError):
            await client.contacts.create(LOC, {"email": "a@x.io"})
    assert len(seen) == 1


async def test_get_read_timeout_is_retried() -> None:
    handler, seen = scripted(httpx2.ReadTimeout("slow"), ok({"contact": {"id": "c"}}))
    client, _ = make_client(handler)
    async with client:
        contact = await client.contacts.get(LOC, "c")
    assert contact.id == "c"
    assert len(seen) == 2


async def test_post_connect_error_is_retried_because_nothing_was_sent() -> None:
    handler, seen = scripted(httpx2.ConnectError("refused"), ok({"contact": {"id": "c"}}, 201))
    client, _ = make_client(handler)
    async with client:
        contact = await client.contacts.create(LOC, {"email": "a@x.io"})
    assert contact.id == "c"
    assert len(seen) == 2


async def test_post_500_is_outcome_unknown_but_upsert_is_retried() -> None:
    handler, seen = scripted(ok({}, 500))
    client, _ = make_client(handler)
    async with client:
        with pytest.raises(OutcomeUnknownError):
            await client.contacts.create(LOC, {"email": "a@x.io"})
    assert len(seen) == 1
    handler, seen = scripted(ok({}, 500), ok({"new": True, "contact": {"id": "c"}}))
    client, _ = make_client(handler)
    async with client:
        result = await client.contacts.upsert(LOC, {"email": "a@x.io"})
    assert result.new is True
    assert result.contact.id == "c"
    assert len(seen) == 2


async def test_unknown_field_rejected_before_sending() -> None:
    handler, seen = scripted()
    client, _ = make_client(handler)
    async with client:
        with pytest.raises(ValidationError, match="additional_phones"):
            await client.contacts.create(LOC, {"email": "a@x.io", "additional_phones": ["1"]})
        with pytest.raises(ValidationError, match="dueDate"):
            await client.tasks.create(LOC, "c1", {"title": "Call", "completed": False})
    assert seen == []


async def test_body_accepts_snake_case_and_sends_camel_case() -> None:
    handler, seen = scripted(ok({"new": False, "contact": {"id": "c"}}))
    client, _ = make_client(handler)
    async with client:
        await client.contacts.upsert(LOC, {"first_name": "Ann", "postalCode": "12345"})
    assert json.loads(seen[0].content) == {
        "firstName": "Ann",
        "postalCode": "12345",
        "locationId": LOC,
    }


async def test_404_on_delete_is_not_found() -> None:
    handler, _ = scripted(ok({"message": "Contact not found", "traceId": "tr-1"}, 404))
    client, _ = make_client(handler)
    async with client:
        with pytest.raises(NotFoundError) as caught:
            await client.contacts.delete(LOC, "gone")
    assert str(caught.value).startswith("Request tr-1:")
    assert "DELETE /contacts/gone" in str(caught.value)


async def test_422_is_unprocessable_with_message() -> None:
    handler, _ = scripted(ok({"message": ["phone must be valid"], "statusCode": 422}, 422))
    client, _ = make_client(handler)
    async with client:
        with pytest.raises(UnprocessableError, match="phone must be valid"):
            await client.contacts.update(LOC, "c", {"phone": "x"})


def _page(ids: list[str], after: int | None, after_id: str | None) -> httpx2.Response:
    contacts = [{"id": i} for i in ids]
    return ok({"contacts": contacts, "meta": {"startAfter": after, "startAfterId": after_id}})


async def test_list_keeps_location_and_limit_on_every_page() -> None:
    handler, seen = scripted(
        _page(["a", "b"], 111, "b"), _page(["c", "d"], 222, "d"), _page(["e"], 333, "e")
    )
    client, _ = make_client(handler)
    async with client:
        ids = [c.id async for c in client.contacts.list(LOC, limit=2)]
    assert ids == ["a", "b", "c", "d", "e"]
    queries = [dict(r.url.params) for r in seen]
    assert all(q["locationId"] == LOC and q["limit"] == "2" for q in queries)
    assert "startAfterId" not in queries[0]
    assert (queries[1]["startAfter"], queries[1]["startAfterId"]) == ("111", "b")
    assert (queries[2]["startAfter"], queries[2]["startAfterId"]) == ("222", "d")


async def test_search_pages_by_last_search_after() -> None:
    first = ok({"contacts": [{"id": "a"}, {"id": "b", "searchAfter": [5, "b"]}], "total": 3})
    second = ok({"contacts": [{"id": "c", "searchAfter": [6, "c"]}], "total": 3})
    handler, seen = scripted(first, second)
    client, _ = make_client(handler)
    async with client:
        found = [c["id"] async for c in client.contacts.search(LOC, page_limit=2)]
    assert found == ["a", "b", "c"]
    bodies = [json.loads(r.content) for r in seen]
    assert bodies[0] == {"locationId": LOC, "pageLimit": 2}
    assert bodies[1] == {"locationId": LOC, "pageLimit": 2, "searchAfter": [5, "b"]}


async def test_last_rate_exposes_headers() -> None:
    headers = {"X-RateLimit-Max": "100", "X-RateLimit-Remaining": "97"}
    handler, _ = scripted(ok({"contact": {"id": "c"}}, headers=headers))
    client, _ = make_client(handler)
    async with client:
        assert client.last_rate(LOC) is None
        await client.contacts.get(LOC, "c")
    rate = client.last_rate(LOC)
    assert rate is not None
    assert (rate.max, rate.remaining) == (100, 97)


async def test_token_never_in_logs_reprs_or_errors(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    echo = {"message": "bad", "access_token": TOKEN, "refresh_token": FRESH}
    handler, _ = scripted(ok({}, 401), ok(echo, 400), httpx2.ReadTimeout(f"Bearer {TOKEN}"))
    client, _ = make_client(handler)
    shown: list[str] = [repr(client), repr(client.contacts)]
    async with client:
        with pytest.raises(GHLError) as first:
            await client.contacts.get(LOC, "c")
        with pytest.raises(GHLError) as second:
            await client.contacts.create(LOC, {"email": "a@x.io"})
    for caught in (first.value, second.value):
        shown += [str(caught), repr(caught), repr(caught.__dict__)]
    shown += [r.getMessage() + repr(r.__dict__) for r in caplog.records]
    assert caplog.records, "the client should log its requests"
    for text in shown:
        assert TOKEN not in text
        assert FRESH not in text


async def test_429_with_limiter_leaves_the_waiting_to_the_limiter() -> None:
    limited = ok(
        {}, 429, {"X-RateLimit-Remaining": "0", "X-RateLimit-Interval-Milliseconds": "9000"}
    )
    limiter = FakeLimiter()
    handler, seen = scripted(limited, ok({"contact": {"id": "c"}}))
    client, clock = make_client(handler, limiter=limiter)
    start = clock.monotonic()
    async with client:
        await client.contacts.get(LOC, "c")
    assert clock.monotonic() == start
    assert [e[0] for e in limiter.events].count("acquire") == len(seen) == 2


async def test_path_values_are_url_quoted() -> None:
    handler, seen = scripted(ok({"contact": {"id": "a/b"}}))
    client, _ = make_client(handler)
    async with client:
        await client.contacts.get(LOC, "a/b?x")
    assert seen[0].url.raw_path == b"/contacts/a%2Fb%3Fx"


def test_redact_masks_token_fields_at_any_depth() -> None:
    body = {"access_token": TOKEN, "nested": [{"refresh_token": FRESH, "keep": 1}]}
    assert redact(body) == {"access_token": "***", "nested": [{"refresh_token": "***", "keep": 1}]}


async def test_raw_request_body_checked_against_registered_operation() -> None:
    handler, seen = scripted(ok({"task": {"id": "t"}}, 201))
    client, _ = make_client(handler)
    task = {"title": "Call", "dueDate": "2026-12-01T10:00:00Z", "completed": False}
    async with client:
        with pytest.raises(ValidationError, match="colour"):
            await client.request(
                "POST",
                "/contacts/c1/tasks",
                key=LOC,
                version="2021-07-28",
                json={**task, "colour": 1},
            )
        assert seen == []
        await client.request("POST", "/contacts/c1/tasks", key=LOC, version="2021-07-28", json=task)
    assert json.loads(seen[0].content) == task


@pytest.mark.parametrize(
    ("body", "answer", "error"),
    [
        ({"when": {1, 2}}, ok({}), TypeError),  # JSON cannot encode a set: fails building
        ({"x": 1}, RuntimeError("a transport bug"), RuntimeError),  # not a TransportError
    ],
)
async def test_a_send_that_fails_outside_the_transport_errors_frees_its_slot(
    body: dict[str, Any], answer: httpx2.Response | Exception, error: type[Exception]
) -> None:
    """The limiter hears of every slot it gave: without the answer (status 0), not never
    (the slot would stay in flight until its hold ran out)."""
    handler, _ = scripted(answer)
    limiter = FakeLimiter()
    client, _ = make_client(handler, limiter=limiter)
    async with client:
        with pytest.raises(error):
            await client.request("POST", "/custom/thing", key=LOC, version="2021-07-28", json=body)
    assert limiter.events == [("acquire", LOC, None), ("observe", LOC, 0)]
