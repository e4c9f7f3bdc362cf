"""`send_message`: an SMS or an Email to the contact through GHL's conversations.

GHL refuses (400) a message the location does not allow: no provider for the channel, a
contact without a phone (SMS) or email (Email), or in do-not-disturb for it; the step then
fails like any refused call. A message cannot be looked up by what it said, so a step an
earlier attempt may have sent (`ctx.pending`) is not sent again: at most once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ghlsync.engine.flows.recipes._context import StepContext, StepResult, operation_text
from ghlsync.engine.flows.recipes._spec import ActionSpec, InputSpec


async def send_message(ctx: StepContext, inputs: Mapping[str, Any]) -> StepResult:
    channel = str(inputs["type"])
    if ctx.pending is not None:
        return StepResult(None, f"{channel} not sent again (an earlier attempt may have sent it)")
    body: dict[str, Any] = {"type": channel, "contactId": ctx.contact()}
    body["message"] = str(inputs["message"])
    if channel == "Email":
        first_line = body["message"].strip().splitlines()[0] if body["message"].strip() else ""
        body["subject"] = str(inputs.get("subject") or first_line[:78] or "Message")
        body["html"] = str(inputs.get("html") or inputs["message"])
    answer = await ctx.send("send-a-new-message", body=body)
    message_id = answer.get("messageId") if isinstance(answer, Mapping) else None
    return StepResult(str(message_id) if message_id else None, f"{channel} sent")


MESSAGE_ACTIONS: tuple[ActionSpec, ...] = (
    ActionSpec(
        "send_message",
        "ghl",
        "Send the contact an Email or SMS (refused when the location does not allow it)",
        (
            InputSpec("type", "Email|SMS", True, "the channel"),
            InputSpec("message", "text", True, "the text (an Email's body unless html is set)"),
            InputSpec(
                "subject", "text", False, "an Email's subject (default: the first line of message)"
            ),
            InputSpec("html", "text", False, "an Email's HTML body"),
        ),
        operation_text("send-a-new-message"),
        send_message,
    ),
)
