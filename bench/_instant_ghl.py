"""An instant GHL: an `httpx2.MockTransport` that answers the flows' calls at once.

It returns the shapes the official specs give (and the flows read): an upsert answers
`{"contact": {...}, "new": true}`, a tag call the contact's whole tag list, a create its
object with an id. It keeps just enough state to be honest: upserts match an existing
contact by email (GHL's duplicate rule, as far as the benchmark needs it), tags accumulate
per contact, a `GET` of a contact's tasks, notes or appointments lists what was created.
`refuses_duplicates` makes it answer `GET /locations/{id}` as a location at GHL's default
setting does (`allowDuplicateContact: false`, as the sandbox's locations do), so the contact
flow creates a new customer with one `POST /contacts/` carrying its tags (a known email is
refused with 400 and `meta.contactId`, as GHL does); without it that read is refused (404) and
the flow takes its other path, an upsert and then a tag call. Every accepted write is recorded
with its `time.monotonic()` (on Linux the same clock in every process, so a load generator in
another process can timestamp its sends against it).

Run as a script it is the *stand-in*: the same fake as an HTTP server on loopback in its own
process (raw ASGI on uvicorn), so the GHL client pays for real HTTP:

    python bench/_instant_ghl.py PORT_FILE [--refuses-duplicates]

(`--refuses-duplicates`: see above) writes the port it listens on to PORT_FILE;
`GET /_bench/writes` answers the writes so far as `[[at, method, path, marker or null], ...]`.
Stop it with SIGTERM.

Answers carry `X-RateLimit-*` headers advertising a limit far above anything the benchmark
sends, so a rate limiter in front of it learns "no pacing needed" from the first answer.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx2

_HEADERS = {
    "X-RateLimit-Max": "1000000",
    "X-RateLimit-Interval-Milliseconds": "1000",
    "X-RateLimit-Remaining": "999999",
    "X-RateLimit-Limit-Daily": "1000000000",
    "X-RateLimit-Daily-Remaining": "999999999",
}
_CHILD_LIST = re.compile(r"^/contacts/([^/]+)/(tasks|notes|appointments)$")
_CHILD_ONE = re.compile(r"^/contacts/([^/]+)/(tasks|notes)/([^/]+)(/completed)?$")
_TAGS = re.compile(r"^/contacts/([^/]+)/tags$")
_CONTACT = re.compile(r"^/contacts/([^/]+)$")
_LOCATION = re.compile(r"^/locations/([^/]+)$")
_APPOINTMENT = re.compile(r"^/calendars/events/appointments/([^/]+)$")
_WRAPPER = {"tasks": "task", "notes": "note"}


@dataclass(frozen=True, slots=True)
class Write:
    """One write GHL received: when (`time.monotonic()`), what, and the raw body."""

    at: float
    method: str
    path: str
    body: bytes


@dataclass
class InstantGHL:
    """The fake's state; `transport()` gives the seam the GHL client takes."""

    on_write: Callable[[Write], None] | None = None
    writes: list[Write] = field(default_factory=list)
    calls: int = 0
    contacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    _by_email: dict[str, str] = field(default_factory=dict)
    _children: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    _next: int = 0
    refuses_duplicates: bool = False

    def transport(self) -> httpx2.MockTransport:
        """A transport answering every request in this process, with no I/O."""
        return httpx2.MockTransport(self.handle)

    def handle(self, request: httpx2.Request) -> httpx2.Response:
        """Answer one request (the MockTransport handler)."""
        status, answer = self.answer(request.method, request.url.path, request.content)
        return httpx2.Response(status, json=answer, headers=_HEADERS)

    def answer(self, method: str, path: str, body: bytes) -> tuple[int, Any]:
        """Status and JSON answer of one request (recorded when it writes)."""
        self.calls += 1
        at = time.monotonic()
        data = json.loads(body) if body else {}
        status, answer = self._route(method, path, data)
        if method != "GET" and status < 400:  # a refused request wrote nothing
            write = Write(at, method, path, body)
            self.writes.append(write)
            if self.on_write is not None:
                self.on_write(write)
        return status, answer

    def _id(self, prefix: str) -> str:
        self._next += 1
        return f"{prefix}{self._next:08d}"

    def _route(self, method: str, path: str, data: dict[str, Any]) -> tuple[int, Any]:
        if method == "POST" and path == "/contacts/upsert":
            return self._upsert(data)
        if method == "POST" and path == "/contacts/" and self.refuses_duplicates:
            return self._create(data)
        if method == "GET" and self.refuses_duplicates and _LOCATION.match(path):
            settings = {"allowDuplicateContact": False}
            return 200, {"location": {"id": path.rsplit("/", 1)[1], "settings": settings}}
        if method == "POST" and path == "/contacts/search":  # serve's reconcile sweep
            return 200, {"contacts": [], "total": 0}
        if path == "/contacts/search/duplicate":
            email = str(data.get("email") or "").lower()
            found = self.contacts.get(self._by_email.get(email, ""))
            return 200, {"contact": found}
        if method == "POST" and path == "/calendars/events/appointments":
            return 201, self._create_child(str(data.get("contactId")), "appointments", data)
        if (match := _APPOINTMENT.match(path)) is not None:
            return 200, {"id": match[1], **data}
        if (match := _TAGS.match(path)) is not None:
            return self._tags(method, match[1], data)
        if (match := _CHILD_LIST.match(path)) is not None:
            return self._children_route(method, match[1], match[2], data)
        if (match := _CHILD_ONE.match(path)) is not None:
            record = {"id": match[3], **data}
            return 200, {_WRAPPER[match[2]]: record} if method != "DELETE" else {"succeded": True}
        if (match := _CONTACT.match(path)) is not None:
            return self._contact(method, match[1], data)
        if path.startswith("/locations/") and path.endswith("/customFields"):
            return 200, {"customFields": []}
        return 404, {"statusCode": 404, "message": f"instant GHL: no route {method} {path}"}

    def _upsert(self, data: dict[str, Any]) -> tuple[int, Any]:
        email = str(data.get("email") or "").lower()
        existing = self._by_email.get(email) if email else None
        if existing is not None:
            contact = self.contacts[existing]
            contact.update({k: v for k, v in data.items() if k != "tags"})
            return 200, {"contact": contact, "new": False, "traceId": "instant"}
        contact = {"id": self._id("c"), "tags": [], **data}
        self.contacts[contact["id"]] = contact
        if email:
            self._by_email[email] = contact["id"]
        return 201, {"contact": contact, "new": True, "traceId": "instant"}

    def _create(self, data: dict[str, Any]) -> tuple[int, Any]:
        email = str(data.get("email") or "").lower()
        existing = self._by_email.get(email) if email else None
        if existing is not None:
            meta = {"contactId": existing, "matchingField": "email"}
            message = "This location does not allow duplicated contacts."
            return 400, {"statusCode": 400, "message": message, "meta": meta}
        tags = list(dict.fromkeys(str(t).lower() for t in data.get("tags", [])))
        contact = {"id": self._id("c"), **data, "tags": tags}
        self.contacts[contact["id"]] = contact
        if email:
            self._by_email[email] = contact["id"]
        return 201, {"contact": contact}

    def _contact(self, method: str, contact_id: str, data: dict[str, Any]) -> tuple[int, Any]:
        contact = self.contacts.get(contact_id)
        if contact is None:
            return 404, {"statusCode": 404, "message": "Contact not found"}
        if method == "DELETE":
            del self.contacts[contact_id]
            return 200, {"succeded": True}
        contact.update(data)
        return 200, {"succeded": True, "contact": contact}

    def _tags(self, method: str, contact_id: str, data: dict[str, Any]) -> tuple[int, Any]:
        contact = self.contacts.get(contact_id)
        if contact is None:
            return 404, {"statusCode": 404, "message": "Contact not found"}
        wanted = [str(t).lower() for t in data.get("tags", [])]
        tags: list[str] = contact["tags"]
        if method == "POST":
            tags.extend(t for t in wanted if t not in tags)
        else:
            contact["tags"] = tags = [t for t in tags if t not in wanted]
        return 201 if method == "POST" else 200, {"tags": tags}

    def _children_route(
        self, method: str, contact_id: str, kind: str, data: dict[str, Any]
    ) -> tuple[int, Any]:
        if method == "GET":
            listed = [r for r in self._children.get(kind, {}).values() if r["_c"] == contact_id]
            if kind == "appointments":
                return 200, {"events": listed}
            return 200, {kind: listed}
        record = self._create_child(contact_id, kind, data)
        return 201, {_WRAPPER[kind]: record}

    def _create_child(self, contact_id: str, kind: str, data: dict[str, Any]) -> dict[str, Any]:
        record = {"id": self._id(kind[0]), **data, "contactId": contact_id}
        self._children.setdefault(kind, {})[record["id"]] = {**record, "_c": contact_id}
        return record


# ---------------------------------------------------------------- the stand-in server

_MARKER = re.compile(rb"mk(\d+)x")
_RAW_HEADERS = [(k.lower().encode(), v.encode()) for k, v in _HEADERS.items()]
_JSON = [(b"content-type", b"application/json")]


def asgi_app(ghl: InstantGHL) -> Callable[..., Any]:
    """`ghl` as a raw ASGI app (no framework: the stand-in should cost little CPU)."""

    async def app(
        scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]
    ) -> None:
        if scope["type"] != "http":
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        method, path = scope["method"], scope["path"]
        if path == "/_bench/writes":
            status, answer = 200, [_listed(write) for write in ghl.writes]
        else:
            status, answer = ghl.answer(method, path, body)
        data = json.dumps(answer).encode()
        headers = [*_JSON, *_RAW_HEADERS, (b"content-length", str(len(data)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": data})

    return app


def _listed(write: Write) -> list[Any]:
    found = _MARKER.search(write.body)
    return [write.at, write.method, write.path, int(found[1]) if found else None]


def serve(port_file: str, refuses_duplicates: bool = False) -> None:
    """Serve a fresh instant GHL on a free loopback port; write the port to `port_file`."""
    import socket

    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit it (asyncio sets it only on sockets it creates itself):
    # without it each answer on a kept-alive connection waited ~45 ms for the client's delayed
    # ACK (Nagle), and the stand-in's figures measured that wait, not the client.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        asgi_app(InstantGHL(refuses_duplicates=refuses_duplicates)),
        log_level="warning",
        access_log=False,
        lifespan="off",
    )
    server = uvicorn.Server(config)
    with open(port_file, "w") as out:
        out.write(str(sock.getsockname()[1]))
    server.run(sockets=[sock])


if __name__ == "__main__":
    import sys

    serve(sys.argv[1], refuses_duplicates="--refuses-duplicates" in sys.argv[2:])
