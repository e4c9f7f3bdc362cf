"""The GHL API client (v2, and v3 per connection): one request pipeline, and resource groups.

    async with GHLClient(tokens=StaticTokens({"loc1": "pit-..."})) as ghl:
        result = await ghl.contacts.upsert("loc1", {"email": "a@example.com"})
        result.contact.id, result.new

Per attempt, `request()`: `limiter.acquire(key)` → send with `Authorization: Bearer`,
`Version`, `Accept: application/json` → `limiter.observe(key, status, headers)` → on 401 ask
`tokens.after_unauthorized` once and resend → classify, and retry per `should_retry` with
backoff slept on the client's clock. Errors are the classes in `_errors.py`.

Every resource method takes the location id first: it is the key for tokens and the rate
limiter, and is sent as `locationId` wherever GHL needs it. Request bodies accept a model or a
mapping (camelCase or snake_case keys) and are checked before sending: an unknown field raises
`ValidationError` without a request (GHL would answer 422). Responses are models that keep
unknown fields. `client.call(operation_id, ...)` reaches every registered operation
(`ghlsync.ghl._operations.OPERATIONS`) by its spec operationId.

API version per connection: `GHLClient(api_version="v3")`, a mapping key -> "v2"/"v3"
(others "v2"), or a function key -> version (`LocationDirectory.api_version`). A v3
connection sends `Version: v3`, v3 paths and v3 bodies on every operation GHL publishes in
v3, and the v2 Version on the v2-only ones (opportunities, users, workflows, campaigns).
Bodies and answers are translated in `_v3.py`: resources and flows see one shape.
`probe_api_versions(client, key)` says which versions GHL accepts for a token.

Methods (`client.<group>.<method>`; `loc` is the location id; `body` is a request model or a
mapping; models are in `_models.py`; `Any` means GHL's JSON as parsed):

contacts
    get(loc, contact_id) -> Contact
    create(loc, body) -> Contact                          # not idempotent (OutcomeUnknownError)
    update(loc, contact_id, body) -> Contact              # `tags` in body replaces all tags
    delete(loc, contact_id) -> Ack                        # 404 -> NotFoundError (skippable)
    upsert(loc, body) -> UpsertResult                     # .contact, .new
    list(loc, *, limit=100, query=None) -> AsyncIterator[Contact]     # deprecated GET /contacts/
    list_page(loc, *, limit=100, query=None, start_after=None, start_after_id=None) -> ContactPage
    search(loc, body=None, *, page_limit=100) -> AsyncIterator[dict]  # POST /contacts/search
    search_page(loc, body) -> SearchPage
    find_duplicate(loc, *, email=None, number=None) -> Contact | None
    by_business(loc, business_id, **params) -> Any
    add_tags(loc, contact_id, tags) -> list[str]
    remove_tags(loc, contact_id, tags) -> list[str]
    appointments(loc, contact_id) -> list[dict]
    add_followers(loc, contact_id, followers) -> Any
    remove_followers(loc, contact_id, followers) -> Any
    add_to_campaign(loc, contact_id, campaign_id) -> Ack
    remove_from_campaign(loc, contact_id, campaign_id) -> Ack
    remove_from_all_campaigns(loc, contact_id) -> Ack
    add_to_workflow(loc, contact_id, workflow_id, event_start_time=None) -> Ack
    remove_from_workflow(loc, contact_id, workflow_id, event_start_time=None) -> Ack
    bulk_tags(loc, kind: "add" | "remove", contact_ids, tags, remove_all_tags=None) -> Any
    bulk_business(loc, contact_ids, business_id: str | None) -> Any
tasks
    list(loc, contact_id) -> list[Task]
    get(loc, contact_id, task_id) -> Task
    create(loc, contact_id, body) -> Task                 # title, dueDate, completed required
    update(loc, contact_id, task_id, body) -> Task
    complete(loc, contact_id, task_id, completed=True) -> Task
    delete(loc, contact_id, task_id) -> Ack
    search(loc, body=None) -> Any                         # POST /locations/{loc}/tasks/search
notes
    list(loc, contact_id) -> list[Note]
    get(loc, contact_id, note_id) -> Note
    create(loc, contact_id, body) -> Note
    update(loc, contact_id, note_id, body) -> Note
    delete(loc, contact_id, note_id) -> Ack
calendars (Version 2021-04-15)
    list(loc, **params) -> list[dict]                     # GET /calendars/
    create_appointment(loc, body) -> Appointment
    get_appointment(loc, event_id) -> Appointment
    update_appointment(loc, event_id, body) -> Appointment
    delete_event(loc, event_id) -> Ack
    events(loc, *, start_time, end_time, calendar_id=None, user_id=None, group_id=None)
        -> list[Appointment]
    free_slots(loc, calendar_id, *, start_date, end_date, timezone=None, user_id=None) -> Any
    appointment_notes(loc, appointment_id, *, limit=10, offset=0) -> Any
    create_appointment_note(loc, appointment_id, body) -> Any
    update_appointment_note(loc, appointment_id, note_id, body) -> Any
    delete_appointment_note(loc, appointment_id, note_id) -> Ack
locations
    get(loc) -> Any
    custom_fields(loc, *, model=None) -> list[CustomField]
    get_custom_field(loc, field_id) -> CustomField
    create_custom_field(loc, body) -> CustomField
    tags(loc) -> list[Tag]
    create_tag(loc, name) -> Tag
    search_tasks(loc, body=None) -> Any                   # same operation as tasks.search
users
    list(loc) -> list[dict]                               # deprecated GET /users/?locationId=
    get(loc, user_id) -> Any
businesses
    list(loc) -> list[dict]
    get(loc, business_id) -> Any
    create(loc, body) -> Any
    update(loc, business_id, body) -> Any
    delete(loc, business_id) -> Ack
opportunities
    pipelines(loc) -> list[Pipeline]                      # with .stages (id, name, position)
    get(loc, opportunity_id) -> Opportunity
    create(loc, body) -> Opportunity                      # not idempotent (OutcomeUnknownError)
    update(loc, opportunity_id, body) -> Opportunity
    upsert(loc, body) -> OpportunityUpsert                # .opportunity, .new
    set_status(loc, opportunity_id, status, lost_reason_id=None) -> Ack
    delete(loc, opportunity_id) -> Ack
    search(loc, **params) -> Any                          # GET /opportunities/search
    search_advanced(loc, body=None) -> Any                # POST /opportunities/search
    lost_reasons(loc, **params) -> list[dict]
    add_followers(loc, opportunity_id, followers) -> Any
    remove_followers(loc, opportunity_id, followers) -> Any
workflows
    list(loc) -> list[dict]                               # GET /workflows/
campaigns
    list(loc, status=None) -> list[dict]                  # GET /campaigns/
conversations
    send(loc, body) -> dict                               # POST /conversations/messages
client
    request(method, path, *, key, version, params=None, json=None, idempotent=None) -> Any
    call(operation_id, *, key, path_params=None, params=None, body=None) -> Any
    api_version(key) -> "v2" | "v3"
    last_rate(key) -> RateInfo | None
    aclose()                                              # or `async with GHLClient(...)`

OAuth (token exchange, refresh, location token, installed locations) lives in `_oauth.py`.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from json import JSONEncoder
from types import TracebackType
from typing import Any, Self

import httpx2

from ghlsync._clock import SYSTEM_CLOCK, Clock
from ghlsync._metrics import SYNC_METRICS
from ghlsync._secret import Secret
from ghlsync.ghl._errors import (
    GHLError,
    OutcomeUnknownError,
    ReconnectNeededError,
    TransportError,
    classify,
)
from ghlsync.ghl._lane import Plain, header_lines, plain, request_bytes, value_of
from ghlsync.ghl._operations import (
    API_VERSIONS,
    OPERATIONS,
    V3,
    V_DEFAULT,
    ApiVersion,
    Operation,
    find_operation,
)
from ghlsync.ghl._resources import (
    Businesses,
    Calendars,
    Campaigns,
    Contacts,
    Conversations,
    Locations,
    Notes,
    Opportunities,
    Tasks,
    Users,
    Workflows,
)
from ghlsync.ghl._retry import ExcKind, RetryDecision, should_retry
from ghlsync.ghl._seams import RateLimiter, TokenSource
from ghlsync.ghl._transport import KeepAliveTransport, default_transport, origin_of, response_of
from ghlsync.ghl._urls import UrlMaker
from ghlsync.ghl._v3 import answer_from_v3, body_to_v3

__all__ = ["DEFAULT_BASE_URL", "GHLClient", "RateInfo", "probe_api_versions", "redact"]

DEFAULT_BASE_URL = "https://services.leadconnectorhq.com"
_log = logging.getLogger("ghlsync.ghl")
_SECRET_KEYS = frozenset({"access_token", "refresh_token", "client_secret", "code", "password"})
_RATE_HEADERS = (
    "x-ratelimit-limit-daily",
    "x-ratelimit-daily-remaining",
    "x-ratelimit-interval-milliseconds",
    "x-ratelimit-max",
    "x-ratelimit-remaining",
)
_LONGEST_PLAIN_PATH = 2048  # httpx2 caches the parse of URLs up to this length
_LONGEST_PLAIN_QUERY = 8192  # longer: left to httpx2, whose length errors name the query
_HEADER_SETS = 1024  # kept (token, Version) header sets; more: start again (tokens rotate)
_SIZED = frozenset({"POST", "PUT", "PATCH", "QUERY"})  # httpx2 gives these a Content-Length
# httpx2's JSON body encoding, one encoder kept (`json.dumps` with options makes one per call)
_JSON = JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


@dataclass(frozen=True, slots=True)
class RateInfo:
    """The X-RateLimit-* headers of the last response for one key (None when absent)."""

    max: int | None
    remaining: int | None
    interval_ms: int | None
    daily_limit: int | None
    daily_remaining: int | None

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> RateInfo | None:
        """Read the headers; None when the response carried none of them."""
        if isinstance(headers, httpx2.Headers):
            return cls._from_lowered(_lowered(headers))
        return cls._from_lowered({k.lower(): v for k, v in headers.items()})

    @classmethod
    def _from_lowered(cls, lowered: Mapping[str, str]) -> RateInfo | None:
        """`from_headers` for headers whose names are already in lower case."""
        daily_limit, daily_remaining, interval, max_, remaining = map(lowered.get, _RATE_HEADERS)
        if daily_limit is daily_remaining is interval is max_ is remaining is None:
            return None
        return cls(
            daily_limit=_as_int(daily_limit),
            daily_remaining=_as_int(daily_remaining),
            interval_ms=_as_int(interval),
            max=_as_int(max_),
            remaining=_as_int(remaining),
        )


class GHLClient:
    """Async client for the GHL API v2 and v3 (see the module docstring for every method)."""

    def __init__(
        self,
        *,
        base_url: str = DEFAULT_BASE_URL,
        tokens: TokenSource,
        limiter: RateLimiter | None = None,
        transport: httpx2.AsyncBaseTransport | None = None,
        timeout: float = 30.0,
        max_attempts: int = 5,
        clock: Clock = SYSTEM_CLOCK,
        rng: random.Random | None = None,
        api_version: str | Mapping[str, str] | Callable[[str], str] = "v2",
    ) -> None:
        self._api_of = _api_versions(api_version)
        self._tokens = tokens
        self._limiter = limiter
        self._max_attempts = max_attempts
        self._clock = clock
        self._rng = rng
        self._rates: dict[str, dict[str, str]] = {}  # key -> its last answer with X-RateLimit-*
        self._transport = transport if transport is not None else default_transport()
        self._http = httpx2.AsyncClient(
            base_url=base_url.rstrip("/"),
            transport=self._transport,
            timeout=httpx2.Timeout(timeout),
            headers={"Accept": "application/json", "User-Agent": "ghlsync"},
        )
        self._url_prefix = _url_prefix(self._http.base_url)
        self._urls = UrlMaker(self._url_prefix)  # the prefix parsed once: see `_urls`
        self._extensions = {"timeout": self._http.timeout.as_dict()}
        # Plain calls skip httpx2's objects on our own transport (`_lane`).
        self._lane = self._transport if isinstance(self._transport, KeepAliveTransport) else None
        self._origin = origin_of(self._http.base_url)
        self._header_sets: dict[tuple[Secret, str], tuple[httpx2.Headers, _Head | None]] = {}
        self.contacts = Contacts(self)
        self.tasks = Tasks(self)
        self.notes = Notes(self)
        self.calendars = Calendars(self)
        self.locations = Locations(self)
        self.users = Users(self)
        self.businesses = Businesses(self)
        self.opportunities = Opportunities(self)
        self.workflows = Workflows(self)
        self.campaigns = Campaigns(self)
        self.conversations = Conversations(self)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool, after the limiter has written what it holds back."""
        drain = getattr(self._limiter, "drain", None)  # the SQL limiter batches freed slots
        if drain is not None:
            await drain()
        await self._http.aclose()

    def __repr__(self) -> str:
        return f"GHLClient(base_url={str(self._http.base_url)!r})"

    def api_version(self, key: str) -> ApiVersion:
        """The API version ("v2" or "v3") this client speaks for connection `key`."""
        return self._api_of(key)

    def last_rate(self, key: str) -> RateInfo | None:
        """The rate-limit headers of the last response seen for `key` that carried any."""
        headers = self._rates.get(key)
        return None if headers is None else RateInfo._from_lowered(headers)

    async def call(
        self,
        operation_id: str,
        *,
        key: str,
        path_params: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
    ) -> Any:
        """Send the registered operation `operation_id`; the body is checked by its model."""
        operation = OPERATIONS[operation_id]
        path = operation.format_path(path_params or {})
        call = _Call(
            operation.method.upper(),
            path,
            key,
            operation.version,
            _clean_params(params),
            operation.dump_body(body),  # checked here, once
            operation.idempotent,
        )
        return await self._send_call(call, translate=True)

    async def request(
        self,
        method: str,
        path: str,
        *,
        key: str,
        version: str,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        idempotent: bool | None = None,
        translate: bool = True,
    ) -> Any:
        """Send one logical request (retrying per policy) and return the parsed JSON answer.

        A body for a registered operation is checked against its model first; an unknown or
        ill-typed field raises `ValidationError` without sending anything. Requests are
        written as v2 (path, Version, body); on a v3 connection one GHL publishes in v3 goes
        as v3, and its answer comes back in v2's shape (`translate=False`: sent as given).
        """
        call = _Call(method.upper(), path, key, version, params, json, idempotent)
        _check_body(call)
        return await self._send_call(call, translate=translate)

    async def _send_call(self, call: _Call, *, translate: bool) -> Any:
        """`request()` for a call whose body has been checked."""
        v3 = translate and self._to_v3(call)
        token = await self._tokens.token(call.key)
        while True:
            response = await self._attempt(call, token)
            if response is None:
                continue
            if isinstance(response, Plain):  # a success, read already
                answer = value_of(response)
                return answer_from_v3(answer) if v3 else answer
            if response.status_code == 401 and not call.refreshed:
                token = await self._refresh(call, token, response)
                continue
            if response.is_success:
                answer = _parse(response)
                return answer_from_v3(answer) if v3 else answer
            await self._after_error(call, response)

    def _to_v3(self, call: _Call) -> bool:
        """Rewrite `call` as v3 when its key speaks v3 and GHL has the operation in v3."""
        if call.version == V3 or self.api_version(call.key) != V3:
            return False
        operation = _registered(call)
        if operation is None or not operation.uses_v3(V3):
            return False
        call.path = operation.v3_filled(call.path)
        call.version = V3
        call.json = body_to_v3(operation.operation_id, call.json)
        return True

    async def _attempt(self, call: _Call, token: Secret) -> httpx2.Response | Plain | None:
        """One send; None means "a retry is due, already waited for"."""
        if self._limiter is not None:
            await self._limiter.acquire(call.key)
        started = time.perf_counter()
        try:
            response = await self._exchange(call, token)
        except httpx2.TransportError as exc:
            await self._unanswered(call)
            await self._after_transport_error(call, exc)
            return None
        except BaseException:  # cancelled, a body JSON cannot encode, a closed client, ...
            await self._unanswered(call)  # the slot is freed, not held until it expires
            raise
        seconds = time.perf_counter() - started
        if isinstance(response, Plain):
            await self._observe(call, response.status, response.headers, seconds)
        else:
            await self._observe(call, response.status_code, _lowered(response.headers), seconds)
        return response

    async def _exchange(self, call: _Call, token: Secret) -> httpx2.Response | Plain:
        """Send one attempt and read its answer: a plain call on our own transport as bytes,
        its plain success as a `Plain` (`_lane`); everything else as an `httpx2.Response`."""
        lane = self._lane
        if lane is not None:
            message = self._message(call, token)
            if message is not None:
                if self._http.is_closed:
                    raise RuntimeError("Cannot send a request, as the client has been closed.")
                timeouts = self._extensions["timeout"]
                answer = await lane.exchange(self._origin, message, call.method, timeouts)
                return plain(answer) or response_of(answer, self._build(call, token))
        return await self._send(self._build(call, token))

    def _message(self, call: _Call, token: Secret) -> bytes | None:
        """The bytes `KeepAliveTransport` would send for `_build(call, token)`, where that is
        a plain call (the URL of a plain path with a simple tail, `_request`'s headers); else
        None."""
        if call.url is None:
            call.url, call.query, call.absolute = _target(self._url_prefix, call.path, call.params)
        if not call.absolute:
            return None
        _headers, head = self._headers(token, call.version)
        if head is None or (call.json is None and call.method in _SIZED):
            return None
        target = self._urls.target(call.url)
        if target is None:
            return None
        if call.json is None:
            return request_bytes(call.method, target, head.wire(None), b"")
        body = _JSON.encode(call.json).encode("utf-8")
        return request_bytes(call.method, target, head.wire(len(body)), body)

    def _build(self, call: _Call, token: Secret) -> httpx2.Request:
        """The request of one attempt, as `AsyncClient.build_request` would make it.

        For a plain path (`_target`: the absolute URL, the query in it) the request is made
        directly (`_request`), from the client's headers and this token's merged once, Host
        in place (`_headers`): the same method, URL, headers, body and timeouts, for about a
        quarter of the CPU. Other paths go through `build_request`, which joins them to the
        base URL as it always did.
        """
        if call.url is None:
            call.url, call.query, call.absolute = _target(self._url_prefix, call.path, call.params)
        headers, head = self._headers(token, call.version)
        if not call.absolute:
            return self._http.build_request(
                call.method, call.url, params=call.query, json=call.json, headers=headers
            )
        if head is None or (call.json is None and call.method in _SIZED):
            return httpx2.Request(
                call.method, call.url, headers=headers, json=call.json, extensions=self._extensions
            )
        return _request(call.method, self._urls.url(call.url), head, call.json, self._extensions)

    async def _send(self, request: httpx2.Request) -> httpx2.Response:
        """Send `request` on the transport and read the answer: what `AsyncClient.send` does
        for us (no auth flow, no redirects followed, no cookies, no hooks), without its layers.
        """
        if self._transport is None:  # a proxy in the environment: httpx2's own transport
            return await self._http.send(request)
        if self._http.is_closed:
            raise RuntimeError("Cannot send a request, as the client has been closed.")
        response = await self._transport.handle_async_request(request)
        response.request = request
        try:
            await response.aread()
        except BaseException:
            await response.aclose()
            raise
        return response

    def _headers(self, token: Secret, version: str) -> tuple[Mapping[str, str], _Head | None]:
        """The client's headers with `Authorization` and `Version`, as one `httpx2.Headers`
        made once per token and version (httpx2 copies it into each request as it is: a dict
        it would encode, and merge with the client's, every time), and the same headers as
        httpx2 sends them to the base URL's host: its `Host` first (`_request` starts there).
        """
        found = self._header_sets.get((token, version))
        if found is None:
            plain = {"Authorization": f"Bearer {token.reveal()}", "Version": version}
            try:
                headers = httpx2.Headers(self._http.headers)
                headers.update(plain)
            except UnicodeError:
                return plain, None  # not ASCII: httpx2 refuses it, at the point it always did
            head = None
            if self._url_prefix is not None:
                head = _Head(httpx2.Request("GET", self._url_prefix, headers=headers).headers)
            if len(self._header_sets) >= _HEADER_SETS:
                self._header_sets.clear()
            found = self._header_sets[token, version] = (headers, head)
        return found

    async def _unanswered(self, call: _Call) -> None:
        """The send got no answer: the limiter frees its slot (status 0, no headers)."""
        if self._limiter is not None:
            await self._limiter.observe(call.key, 0, {})

    async def _observe(
        self, call: _Call, status: int, headers: dict[str, str], seconds: float
    ) -> None:
        """`headers`: the answer's, names in lower case (decoded once, for the limiter and
        `RateInfo`)."""
        if self._limiter is not None:
            await self._limiter.observe(call.key, status, headers)
        SYNC_METRICS.ghl_call(_operation(call), status, seconds)
        if not headers.keys().isdisjoint(_RATE_HEADERS):
            self._rates[call.key] = headers  # read into a `RateInfo` when asked (`last_rate`)
        if not _log.isEnabledFor(logging.INFO):
            return  # skip building the `extra` of a line that would be dropped
        rate = RateInfo._from_lowered(headers)
        _log.info(
            "ghl %s %s -> %s",
            call.method,
            call.path,
            status,
            extra={
                "ghl_key": call.key,
                "attempt": call.attempt,
                "ms": round(seconds * 1000, 1),
                "remaining": rate.remaining if rate else None,
            },
        )

    async def _refresh(self, call: _Call, token: Secret, response: httpx2.Response) -> Secret:
        call.refreshed = True
        fresh = await self._tokens.after_unauthorized(call.key, token)
        if fresh is None:
            raise self._error(call, response, ReconnectNeededError)
        return fresh

    async def _after_error(self, call: _Call, response: httpx2.Response) -> None:
        decision = should_retry(
            call.method,
            response.status_code,
            None,
            call.attempt,
            self._max_attempts,
            idempotent=call.idempotent,
            headers=response.headers,
            throttled=call.throttled,
            rng=self._rng,
        )
        if decision.outcome_unknown:
            raise self._error(call, response, OutcomeUnknownError, decision.reason)
        if not decision.retry:
            raise self._error(call, response, None)
        # After a 429 the limiter has paused the key; its acquire() does the waiting.
        skip_wait = response.status_code == 429 and self._limiter is not None
        await self._wait(call, decision, skip_wait)

    async def _after_transport_error(self, call: _Call, exc: httpx2.TransportError) -> None:
        kind = _exc_kind(exc)
        decision = should_retry(
            call.method,
            None,
            kind,
            call.attempt,
            self._max_attempts,
            idempotent=call.idempotent,
            rng=self._rng,
        )
        _log.warning("ghl %s %s failed: %s (%s)", call.method, call.path, kind, decision.reason)
        SYNC_METRICS.ghl_call(_operation(call), "transport_error", None)
        if decision.retry:
            await self._wait(call, decision, False)
            return
        error_class = OutcomeUnknownError if decision.outcome_unknown else TransportError
        message = f"{kind}: {type(exc).__name__} ({decision.reason})"
        raise error_class(message, method=call.method, path=call.path) from None

    async def _wait(self, call: _Call, decision: RetryDecision, skip_wait: bool) -> None:
        SYNC_METRICS.ghl_retry(_operation(call), throttled=not decision.counts)
        if decision.counts:
            call.attempt += 1
        else:
            call.throttled += 1
        if not skip_wait:
            await self._clock.sleep(decision.delay)

    def _error(
        self,
        call: _Call,
        response: httpx2.Response,
        error_class: type[GHLError] | None,
        message: str = "",
    ) -> GHLError:
        body = redact(_parse(response))
        chosen = error_class or classify(response.status_code, body, response.headers)
        return chosen(
            message,
            status=response.status_code,
            body=body,
            headers=dict(response.headers),
            method=call.method,
            path=call.path,
        )


@dataclass(slots=True)
class _Call:
    """One logical request and its retry bookkeeping."""

    method: str
    path: str
    key: str
    version: str
    params: Mapping[str, Any] | None
    json: Any
    idempotent: bool | None
    attempt: int = 1
    throttled: int = 0
    refreshed: bool = False
    operation: str | None = None  # the metrics label, found once per logical request
    found: Operation | None = None  # the registered operation of `found_for`
    found_for: str | None = None  # the path `found` was looked up for
    url: str | None = None  # what httpx2 is given, from the first attempt on (see `_target`)
    query: Mapping[str, Any] | None = None
    absolute: bool = False  # `url` is the whole URL, its query in it (a plain path)


def _registered(call: _Call) -> Operation | None:
    """The registered operation of `call`'s path, looked up once per path it takes."""
    if call.found_for != call.path:
        call.found = find_operation(call.method, call.path)
        call.found_for = call.path
    return call.found


def _operation(call: _Call) -> str:
    """The spec operation id of `call` (a bounded label: never the path, which holds ids)."""
    if call.operation is None:
        found = _registered(call)
        call.operation = found.operation_id if found is not None else "other"
    return call.operation


def _plain(path: str) -> bool:
    return (
        path[:1] == "/"
        and path[1:2] != "/"
        and "?" not in path
        and "#" not in path
        and path.isprintable()
        and len(path) <= _LONGEST_PLAIN_PATH
    )


def _url_prefix(base_url: httpx2.URL) -> str | None:
    """The base URL as the string a plain path is appended to (None: let httpx2 join them).

    Rebuilt from its raw path as httpx2 joins it, so a bare host gains its "/".
    """
    text = str(base_url.copy_with(raw_path=base_url.raw_path))
    if text.endswith("/") and "?" not in text and "#" not in text:
        return text
    return None


def _target(
    prefix: str | None, path: str, params: Mapping[str, Any] | None
) -> tuple[str, Mapping[str, Any] | None, bool]:
    """The URL and params to give httpx2, and whether the URL is absolute: for a plain path,
    the absolute URL it would build (with its query in it), else the path and params as given.

    Given a relative path, httpx2 parses it, parses it again joined to the base URL, and a
    third time with the query: about 40% of its request building. The same URL as one
    string is parsed once (and a repeated one comes from httpx2's cache). Paths where the
    two could differ at all (no leading "/", "//", "?", "#", control characters, long ones)
    and long queries are left to httpx2 as before.
    """
    if prefix is None or not _plain(path):
        return path, params, False
    url = f"{prefix}{path[1:]}"
    if not params:
        return url, None, True
    query = httpx2.QueryParams(params)
    if not query:  # as httpx2 decides "no query"
        return url, None, True
    text = str(query)  # "" when every value is an empty list: httpx2 sends a bare "?"
    if len(text) > _LONGEST_PLAIN_QUERY:
        return path, params, False
    return f"{url}?{text}", None, True


class _Head:
    """The headers httpx2 gives a request to the base URL's host, its Host first: as they
    are (`bare`), and with each JSON body length's Content-Length and Content-Type appended
    as httpx2 appends them (`sized`, kept: setting two headers costs more than the copy)."""

    __slots__ = ("bare", "sized", "wires")

    def __init__(self, bare: httpx2.Headers) -> None:
        self.bare = bare
        self.sized: dict[int, httpx2.Headers] = {}
        self.wires: dict[int | None, bytes] = {}  # `wire`'s, per body length

    def wire(self, length: int | None) -> bytes:
        """The header lines of `bare` (None) or `for_json(length)` as they are sent."""
        found = self.wires.get(length)
        if found is None:
            found = header_lines(self.bare if length is None else self.for_json(length))
            if len(self.wires) >= _HEADER_SETS:
                self.wires.clear()
            self.wires[length] = found
        return found

    def for_json(self, length: int) -> httpx2.Headers:
        found = self.sized.get(length)
        if found is None:
            found = httpx2.Headers(self.bare)
            found["Content-Length"] = str(length)
            found["Content-Type"] = "application/json"
            if len(self.sized) >= _HEADER_SETS:
                self.sized.clear()
            self.sized[length] = found
        return found


def _request(
    method: str, target: httpx2.URL, head: _Head, json: Any, extensions: Mapping[str, Any]
) -> httpx2.Request:
    """`httpx2.Request(method, url, headers=..., json=json)` made from `head` (the headers it
    ends with, kept per client, token, version and body length): httpx2 would encode every
    header again to put its Host in front. A body is encoded as httpx2 encodes JSON; a
    method httpx2 would give `Content-Length: 0` without a body does not come here. `target`
    is parsed by the caller (`UrlMaker`) before the body is encoded: a bad URL fails first, as
    in httpx2.
    """
    if json is None:
        body = b""
        headers = head.bare
    else:
        text = _JSON.encode(json)
        body = text.encode("utf-8")
        headers = head.for_json(len(body))
    request = httpx2.Request(
        method, target, headers=headers, stream=httpx2.ByteStream(body), extensions=extensions
    )
    request.read()
    return request


def _check_body(call: _Call) -> None:
    """Refuse, before sending, a body its registered operation's model rejects (GHL: 422).

    The models are v2's: a v3 body (made from a checked model by `call`) goes as it is.
    """
    if call.json is None or call.version == V3:
        return
    operation = _registered(call)
    if operation is not None and operation.body is not None:
        operation.check_body(call.json)


async def probe_api_versions(client: GHLClient, location_id: str) -> dict[str, bool]:
    """Which API versions GHL accepts for `location_id`'s token: `{"v2": bool, "v3": bool}`.

    One harmless `GET /locations/{locationId}` per version (that operation exists in both);
    any error answer (a 400 for an unsupported Version, a 401, a 403) counts as "not accepted".
    """
    path = OPERATIONS["get-location"].format_path({"locationId": location_id})
    accepted: dict[str, bool] = {}
    for api, version in (("v2", V_DEFAULT), ("v3", V3)):
        try:
            await client.request("GET", path, key=location_id, version=version, translate=False)
        except GHLError:
            accepted[api] = False
        else:
            accepted[api] = True
    return accepted


def _api_versions(
    api_version: str | Mapping[str, str] | Callable[[str], str],
) -> Callable[[str], ApiVersion]:
    """key -> version, from one version, a mapping (others "v2") or a function (checked)."""
    if isinstance(api_version, str):
        fixed = _api(api_version)
        return lambda _key: fixed
    if isinstance(api_version, Mapping):
        known = {key: _api(value) for key, value in api_version.items()}
        return lambda key: known.get(key, "v2")
    function = api_version
    return lambda key: _api(function(key))


def _api(value: str) -> ApiVersion:
    for known in API_VERSIONS:
        if value == known:
            return known
    raise ValueError(f"api_version must be one of {list(API_VERSIONS)}, not {value!r}")


def redact(value: Any) -> Any:
    """A copy of parsed JSON with token-like fields masked, safe to log or keep in errors."""
    if isinstance(value, Mapping):
        return {k: "***" if str(k).lower() in _SECRET_KEYS else redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def _parse(response: httpx2.Response) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return response.text


def _exc_kind(exc: httpx2.TransportError) -> ExcKind:
    if isinstance(exc, httpx2.PoolTimeout):
        return "pool_timeout"
    if isinstance(exc, httpx2.ConnectError | httpx2.ConnectTimeout):
        return "connect"
    if isinstance(exc, httpx2.ReadTimeout):
        return "read_timeout"
    if isinstance(exc, httpx2.WriteTimeout):
        return "write_timeout"
    if isinstance(exc, httpx2.ReadError | httpx2.WriteError | httpx2.RemoteProtocolError):
        return "dropped"
    # Proxy and protocol set-up failures happen before anything is sent.
    return "connect"


def _clean_params(params: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Drop None values, so optional arguments left out are not sent as empty strings."""
    if params is None:
        return None
    return {k: v for k, v in params.items() if v is not None}


def _lowered(headers: httpx2.Headers) -> dict[str, str]:
    """The headers as a dict: names in lower case, a repeated one's values joined by ", "."""
    return dict(headers.items())


def _as_int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
