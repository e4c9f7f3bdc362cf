"""`POST /conversations/messages`: send a message to a contact, where the location allows it.

The body is `SendMessageBodyDto`; the answer `SendMessageResponseDto` (conversationId,
messageId, emailMessageId for an Email, status). Refusals (400, the only error the spec
declares besides 401): a channel the location has no provider for (only SMS and Email are
set up), a contact without a phone (SMS) or an email (Email), and a contact in do-not-disturb,
globally (`dnd`) or for that channel (`dndSettings.<channel>.status` active or permanent).
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter

from ghlsync.sandbox._deps import Ctx, CtxDep
from ghlsync.sandbox._errors import SandboxError, unprocessable
from ghlsync.sandbox._models import Body, optional
from ghlsync.sandbox._records import now_iso, public
from ghlsync.sandbox._routes_contacts import require_contact

router = APIRouter()

MessageType = Literal[
    "SMS", "RCS", "Email", "WhatsApp", "IG", "FB", "Custom", "Live_Chat", "TIKTOK"
]
_ADDRESS = {"SMS": "phone", "Email": "email"}  # the channels the sandbox's location has


class SendMessage(Body):
    """`SendMessageBodyDto` (`subType` and `status` taken as optional: see docs/sandbox.md)."""

    type: MessageType
    contactId: str
    subType: dict[str, Any] = optional()
    status: Literal["delivered", "failed", "pending", "read"] = optional()
    message: str = optional()
    subject: str = optional()
    html: str = optional()
    attachments: list[str] = optional()
    appointmentId: str = optional()
    emailFrom: str = optional()
    emailTo: str = optional()
    emailCc: list[str] = optional()
    emailBcc: list[str] = optional()
    emailReplyMode: Literal["reply", "reply_all"] = optional()
    replyMessageId: str = optional()
    templateId: str = optional()
    threadId: str = optional()
    scheduledTimestamp: float = optional()
    conversationProviderId: str = optional()
    customSubtypeId: str = optional()
    fromNumber: str = optional()
    toNumber: str = optional()
    forward: dict[str, Any] = optional()
    usesNativeSchedulingAi: bool = optional()
    optimizationPeriod: Literal["24h", "48h", "72h"] = optional()


def _refusal(contact: dict[str, Any], body: SendMessage) -> str | None:
    channel = body.type
    address = _ADDRESS.get(channel)
    if address is None:
        return f"No {channel} provider is set up for this location"
    if not contact.get(address) and not (body.toNumber if channel == "SMS" else body.emailTo):
        return f"Contact has no {address} to send the {channel} to"
    setting = (contact.get("dndSettings") or {}).get(channel) or {}
    if contact.get("dnd") or setting.get("status") in ("active", "permanent"):
        return f"Cannot send the {channel}: the contact has DND active for it"
    return None


def _check_content(body: SendMessage) -> None:
    if body.type == "Email" and not (body.html or body.message or body.templateId):
        raise unprocessable("html or message must be given for an Email")
    if body.type == "Email" and not (body.subject or body.templateId):
        raise unprocessable("subject should not be empty")
    if body.type != "Email" and not (body.message or body.attachments or body.templateId):
        raise unprocessable("message should not be empty")


def _conversation(ctx: Ctx, contact_id: str) -> dict[str, Any]:
    found = ctx.location.conversations.get(contact_id)
    if found is None:
        found = {"id": ctx.state.new_id(), "contactId": contact_id,
                 "locationId": ctx.location.id, "dateAdded": now_iso(ctx.state)}  # fmt: skip
        ctx.location.conversations[contact_id] = found
    return found


@router.post("/conversations/messages")
async def send_message(ctx: CtxDep, body: SendMessage) -> dict[str, Any]:
    """Record an outbound message in the contact's conversation (200, as the spec says)."""
    _check_content(body)
    with ctx.state.lock:
        contact = require_contact(ctx, body.contactId)
        refused = _refusal(contact, body)
        if refused:
            raise SandboxError(400, refused)
        conversation = _conversation(ctx, body.contactId)
        message = {"id": ctx.state.new_id(), "conversationId": conversation["id"],
                   "direction": "outbound", "dateAdded": now_iso(ctx.state),
                   **body.given()}  # fmt: skip
        message["status"] = "pending"
        ctx.location.messages[message["id"]] = message
        conversation["lastMessageId"] = message["id"]
        answer = {"conversationId": conversation["id"], "messageId": message["id"],
                  "msg": "Message queued successfully.", "status": "pending"}  # fmt: skip
        if body.type == "Email":
            answer["emailMessageId"] = message["id"]
        return public(answer)
