"""TRIGGERS: every event a recipe's `when: {trigger: ...}` can name.

- `dripjobs.<event>`: each event of the mapping (the preset's, built from `events:`; every one
  is accepted at `POST /hooks/dripjobs/<event>`), with the DripJobs fields its rules read;
- `ghl.<type>`: each GHL webhook event that names a location (`_triggers_ghl`).

`dripjobs_triggers(config)` gives the DripJobs triggers of any configuration (a user's own
events included); `TRIGGERS` is the preset's plus the GHL ones.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

from ghlsync.engine.flows.recipes._spec import InputSpec, TriggerSpec
from ghlsync.engine.flows.recipes._triggers_ghl import event_location, ghl_triggers
from ghlsync.mapping import AppConfig
from ghlsync.mapping._config import EventRule, FieldRule
from ghlsync.mapping._opportunity_settings import DEAL_EVENTS

__all__ = ["TRIGGERS", "dripjobs_triggers", "event_location", "trigger_id"]

# What each preset event is, in the words of DripJobs' Zapier triggers.
_ABOUT = {
    "customer.created": "A customer was created in DripJobs.",
    "customer.updated": "A customer's details were changed in DripJobs.",
    "lead.created": "New Lead Created: a new lead came into DripJobs.",
    "deal.stage_changed": "Deal Stage Changed: a deal or job card moved to a new stage.",
    "project.stage_changed": "Project Stage Changed: a project moved to a new stage.",
    "project.completed": "Project Completed: a project was marked completed.",
    "proposal.accepted": "Proposal Accepted: a proposal was marked accepted.",
    "proposal.rejected": "Proposal Rejected: a proposal was rejected.",
    "proposal.viewed": "Proposal Viewed: the customer opened a proposal.",
    "estimate.scheduled": "On-Site Estimate Scheduled: an on-site estimate appointment was booked.",
    "booking_form.submitted": "Booking Form Submitted: a new appointment request came in.",
    "custom_event.scheduled": "Custom Event Scheduled: a custom calendar event was scheduled.",
    "job_costing.completed": "Job Costing Completed: a job costing was marked complete.",
    "invoice.created": "New Invoice Created: an invoice was created (by hand or from a proposal).",
    "payment.received": "Payment Received: a payment (partial ones too) was marked received.",
    "text_message.received": "Incoming Text Message: a customer texted the company.",
    "card_label.changed": "Card Label Changed: a deal card's label was changed.",
    "task.created": "Task Created: a task was created in DripJobs.",
    "task.updated": "A task was changed in DripJobs.",
    "task.completed": "A task was completed in DripJobs.",
    "task.deleted": "A task was deleted in DripJobs.",
    "note.created": "A note was added in DripJobs.",
    "note.updated": "A note was edited in DripJobs.",
    "appointment.scheduled": "An appointment was scheduled in DripJobs.",
    "appointment.updated": "An appointment was changed in DripJobs.",
    "appointment.canceled": "An appointment was canceled in DripJobs.",
}
_TYPES = {"datetime": "datetime", "date": "date", "email": "email", "phone_e164": "phone"}


def trigger_id(side: str, event: str) -> str:
    """The id a recipe names: `dripjobs.lead.created`, `ghl.ContactTagUpdate`."""
    return f"{side}.{event}"


def dripjobs_triggers(config: AppConfig) -> dict[str, TriggerSpec]:
    """`dripjobs.<event>` → its TriggerSpec, for every event of `config`."""
    return {
        trigger_id("dripjobs", name): TriggerSpec(
            id=trigger_id("dripjobs", name),
            side="dripjobs",
            description=_ABOUT.get(name) or _generic(name, rule),
            fields=tuple(_unique(_fields(config, name, rule))),
            source=f"POST /hooks/dripjobs/{name}",
        )
        for name, rule in sorted(config.events.items())
    }


def _generic(name: str, rule: EventRule) -> str:
    what = {"upsert": "creates or updates", "delete": "deletes", "complete": "completes"}
    verb = what.get(rule.action, "cancels")
    return f"The DripJobs event {name}: {verb} a GHL {rule.entity}."


def _fields(config: AppConfig, name: str, rule: EventRule) -> Iterator[InputSpec]:
    """Every DripJobs field a rule of this event reads: ids first (required), then values."""
    yield InputSpec(rule.id, "string", True, f"the DripJobs {rule.entity} id")
    if rule.contact:
        yield InputSpec(rule.contact, "string", True, "the DripJobs customer id")
    yield from _rule_fields(rule.fields)
    yield from _rule_fields(config.fields.for_type(rule.entity))
    if rule.entity != "contact":
        yield from _rule_fields(config.fields.contact)
    for tag in (*rule.tags, *config.tags):
        if tag.source:
            yield InputSpec(tag.source, "string", False, f"tagged {tag.tag}")
    for source, custom in config.custom_fields.items():
        yield InputSpec(source, _type(custom.transforms), False, f"GHL field {custom.key}")
    deal = DEAL_EVENTS.get(name)
    if deal is not None:
        settings = config.opportunities
        yield InputSpec(deal.stage_field, "string", False, f"the {deal.pipeline} stage")
        for amount in settings.amount_fields:
            yield InputSpec(amount, "number", False, "the opportunity's value")
        yield InputSpec(settings.assignee_field, "string", False, "the opportunity's owner")
        yield InputSpec(f"{deal.pipeline}_name", "string", False, "the opportunity's name")
    if rule.timestamp:
        yield InputSpec(rule.timestamp, "datetime", False, "when DripJobs made the change")


def _rule_fields(rules: Iterable[FieldRule]) -> Iterator[InputSpec]:
    for rule in rules:
        about = "→ GHL " + ", ".join(rule.targets)
        for source in rule.sources:
            yield InputSpec(source, _type(rule.transforms), False, about)


def _type(transforms: Iterable[str]) -> str:
    return next((_TYPES[t] for t in transforms if t in _TYPES), "string")


def _unique(found: Iterable[InputSpec]) -> Iterator[InputSpec]:
    seen: set[str] = set()
    for spec in found:
        if spec.name not in seen:
            seen.add(spec.name)
            yield spec


def _registry() -> Mapping[str, TriggerSpec]:
    return {**dripjobs_triggers(AppConfig.default()), **ghl_triggers()}


TRIGGERS: Mapping[str, TriggerSpec] = _registry()
