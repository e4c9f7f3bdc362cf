"""Request body of sending a message (`apps/conversations.json`)."""

from __future__ import annotations

from typing import Any, Literal

from ghlsync.ghl._models._base import Body

MessageType = Literal[
    "SMS", "RCS", "Email", "WhatsApp", "IG", "FB", "Custom", "Live_Chat", "TIKTOK"
]


class SendMessage(Body):
    """`POST /conversations/messages` (`SendMessageBodyDto`).

    The schema lists `subType` and `status` as required, yet types `subType` as an object
    exemplified by a string and `status` is the state of a message already sent; GHL's
    reference sends a message with `type`, `contactId` and its text, so only those two are
    required here.
    """

    type: MessageType
    contact_id: str
    sub_type: dict[str, Any] | None = None
    status: Literal["delivered", "failed", "pending", "read"] | None = None
    message: str | None = None
    subject: str | None = None
    html: str | None = None
    attachments: list[str] | None = None
    appointment_id: str | None = None
    email_from: str | None = None
    email_to: str | None = None
    email_cc: list[str] | None = None
    email_bcc: list[str] | None = None
    email_reply_mode: Literal["reply", "reply_all"] | None = None
    reply_message_id: str | None = None
    template_id: str | None = None
    thread_id: str | None = None
    scheduled_timestamp: float | None = None
    conversation_provider_id: str | None = None
    custom_subtype_id: str | None = None
    from_number: str | None = None
    to_number: str | None = None
    forward: dict[str, Any] | None = None
    uses_native_scheduling_ai: bool | None = None
    optimization_period: Literal["24h", "48h", "72h"] | None = None
