"""GHL API v3 in the sandbox: which routes take `Version: v3`, and the v3 shapes on the wire.

The routes speak v2; a v3 request passes through `V3Adapter`, which reshapes it into the v2
request, and the v2 answer back into v3's (`apps/v3/*-v3.json`, docs/api-versions.md):

- contact bodies: `dndSettings` channels camelCase (`call`, `sms`, `whatsApp`, ...; a v2 name
  such as `Call` answers 422 like any property the DTO does not whitelist) and custom field
  values as `fieldValue` (the deprecated `field_value` still taken);
- contact answers: the same camelCase `dndSettings`;
- `succeeded` instead of v2's `succeded` (deletes keep the deprecated spelling beside it, as
  their v3 DTOs declare both);
- `DELETE /contacts/{id}/campaigns/remove-all` is v3's name of v2's `.../removeAll`.

Which Version a route takes: v3 exists for the contacts, calendars, locations and businesses
families (except `GET /contacts/`, which v3 dropped) and for OAuth. Every other route
(opportunities, users, workflows, campaigns) is v2 only: its spec's `Version` enum has only
`2021-07-28`, so a v3 call gets the same 400 as any unsupported Version. GHL documents no
other answer; this is the most faithful reading of the specs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ghlsync.sandbox._errors import error_body

__all__ = ["V3", "V3Adapter", "accepts_v3", "v2_only_in_v3"]

V3 = "v3"
_V3_PREFIXES = ("/contacts", "/calendars", "/locations", "/businesses", "/oauth")
_REMOVE_ALL_V2 = re.compile(r"^/contacts/[^/]+/campaigns/removeAll$")
_REMOVE_ALL_V3 = re.compile(r"^(/contacts/[^/]+/campaigns/)remove-all$")
_V3_ONLY_OAUTH = ("/oauth/location-token", "/oauth/installed-locations")
_DND_FROM_V3 = {
    "call": "Call",
    "email": "Email",
    "sms": "SMS",
    "whatsApp": "WhatsApp",
    "gmb": "GMB",
    "fb": "FB",
}
_DND_TO_V3 = {v2: v3 for v3, v2 in _DND_FROM_V3.items()}
_CONTACT_BODY = re.compile(r"^/contacts/(upsert|[^/]+)?/?$")


def accepts_v3(method: str, path: str) -> bool:
    """True when GHL's v3 specs declare `method path` (so `Version: v3` is taken)."""
    if not path.startswith(_V3_PREFIXES):
        return False
    if method == "GET" and path.rstrip("/") == "/contacts":
        return False  # the deprecated list is not in contacts-v3.json
    if _REMOVE_ALL_V2.match(path):
        return False
    return not path.startswith(("/oauth/locationToken", "/oauth/installedLocations"))


def v2_only_in_v3(path: str) -> bool:
    """True for the routes only v3 names (a v2 Version there is unsupported)."""
    return bool(_REMOVE_ALL_V3.match(path)) or path.startswith(_V3_ONLY_OAUTH)


class V3Adapter:
    """Runs a v3 request through the v2 routes, reshaping the body both ways."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        if found := _REMOVE_ALL_V3.match(path):
            path = f"{found.group(1)}removeAll"
        inner = {**scope, "path": path, "raw_path": path.encode()}
        body = await _read_body(receive)
        if _is_contact_write(scope["method"], path) and body:
            try:
                body = _contact_body_from_v3(body)
            except _Rejected as rejected:
                await _send_json(send, 422, error_body(422, rejected.messages))
                return
        await self.app(inner, _replay(body), _V3Answer(send, scope["method"]).send)


class _Rejected(Exception):
    def __init__(self, messages: list[str]) -> None:
        super().__init__(messages)
        self.messages = messages


def _is_contact_write(method: str, path: str) -> bool:
    return method in ("POST", "PUT") and _CONTACT_BODY.match(path) is not None


def _contact_body_from_v3(raw: bytes) -> bytes:
    try:
        data = json.loads(raw)
    except ValueError:
        return raw  # the route answers the malformed body
    if not isinstance(data, dict):
        return raw
    dnd = data.get("dndSettings")
    if isinstance(dnd, Mapping):
        wrong = [f"property dndSettings.{k} should not exist" for k in dnd if k not in _DND_FROM_V3]
        if wrong:
            raise _Rejected(wrong)
        data["dndSettings"] = {_DND_FROM_V3[k]: v for k, v in dnd.items()}
    if isinstance(data.get("customFields"), list):
        data["customFields"] = [_field_from_v3(item) for item in data["customFields"]]
    return json.dumps(data).encode()


def _field_from_v3(item: Any) -> Any:
    if not isinstance(item, Mapping) or "fieldValue" not in item:
        return item
    out = {k: v for k, v in item.items() if k != "fieldValue"}
    out["field_value"] = item["fieldValue"]  # preferred over the deprecated spelling
    return out


def answer_to_v3(body: Any, method: str) -> Any:
    """A v2 route's JSON answer in v3's shape."""
    if not isinstance(body, dict):
        return body
    out = dict(body)
    if "succeded" in out:
        out["succeeded"] = out["succeded"]
        if method != "DELETE":
            del out["succeded"]  # only the v3 delete DTOs keep the legacy spelling
    if isinstance(out.get("contact"), Mapping):
        out["contact"] = _contact_to_v3(out["contact"])
    if isinstance(out.get("contacts"), list):
        out["contacts"] = [_contact_to_v3(c) for c in out["contacts"]]
    return out


def _contact_to_v3(contact: Any) -> Any:
    if not isinstance(contact, Mapping) or not isinstance(contact.get("dndSettings"), Mapping):
        return contact
    dnd = {_DND_TO_V3.get(k, k): v for k, v in contact["dndSettings"].items()}
    return {**contact, "dndSettings": dnd}


class _V3Answer:
    """Buffers a JSON answer, reshapes it for v3, and sends it with a fixed content-length."""

    def __init__(self, send: Send, method: str) -> None:
        self._send = send
        self._method = method
        self._start: Message | None = None
        self._chunks: list[bytes] = []

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self._start = message
            return
        if message["type"] != "http.response.body" or self._start is None:
            await self._send(message)
            return
        self._chunks.append(bytes(message.get("body", b"")))
        if message.get("more_body", False):
            return
        await self._flush()

    async def _flush(self) -> None:
        start = self._start or {"type": "http.response.start", "status": 500}
        raw = _reshaped(b"".join(self._chunks), self._method)
        headers = [(k, v) for k, v in start.get("headers", []) if k != b"content-length"]
        headers.append((b"content-length", str(len(raw)).encode()))
        await self._send({**start, "headers": headers})
        await self._send({"type": "http.response.body", "body": raw})


def _reshaped(raw: bytes, method: str) -> bytes:
    try:
        body = json.loads(raw)
    except ValueError:
        return raw  # not JSON (an empty answer, a text error): sent as it came
    return json.dumps(answer_to_v3(body, method)).encode()


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(bytes(message.get("body", b"")))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


async def _send_json(send: Send, status: int, body: dict[str, Any]) -> None:
    raw = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": raw})
