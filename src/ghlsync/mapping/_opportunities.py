"""The `opportunities:` section of `ghlsync.yaml`, and the opportunity a deal event maps to.

DripJobs deals and projects move through stages; in GHL that is an opportunity (a card) in a
pipeline. When `deal_pipeline` (or `project_pipeline`) is set, these events also put the
customer's card in that pipeline, besides what their event rule does to the contact:

| event                   | pipeline | stage from      | status |
|-------------------------|----------|-----------------|--------|
| `deal.stage_changed`    | deal     | `deal_stage`    | (1)    |
| `proposal.accepted`     | deal     | `deal_stage`    | won    |
| `proposal.rejected`     | deal     | `deal_stage`    | lost   |
| `project.stage_changed` | project  | `project_stage` | (2)    |
| `project.completed`     | project  | `project_stage` | won    |

(1) the status `deal_statuses` maps the stage from (a won/lost stage), else none: the engine
sends `open` when the card it last synced won/lost moves to another stage
(`flows.to_ghl._opportunity`). (2) none, with the same `open` rule.

GHL keeps one card per contact and pipeline (`POST /opportunities/upsert` matches on both),
so the card's DripJobs id is `<pipeline>:<customer id>`. The stage name is looked up in
`deal_stages` / `project_stages` (DripJobs name → GHL stage name), else used as it is; the
engine turns the GHL name into the stage id. The stage tags of the contact are not affected.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from ghlsync.dripjobs._keys import fold_key
from ghlsync.mapping._errors import MappingError
from ghlsync.mapping._model import EntityKey, MappedEntity
from ghlsync.mapping._opportunity_settings import DEAL_EVENTS, OpportunitySettings
from ghlsync.mapping._transforms import Context, is_blank, user

_AMOUNT = re.compile(r"^-?\d+(\.\d+)?$")


def opportunity_entity(
    settings: OpportunitySettings,
    event: str,
    data: Mapping[str, Any],
    parent: EntityKey,
    updated: datetime | None,
    ctx: Context,
) -> MappedEntity | None:
    """The card `event` puts in a configured pipeline, or None (not a deal event, no pipeline).

    The body holds `pipeline` (deal | project) and `stage` (the GHL stage *name*) besides
    GHL's own fields; the engine resolves both to ids.
    """
    rule = DEAL_EVENTS.get(event)
    if rule is None or settings.pipeline(rule.pipeline) is None:
        return None
    body: dict[str, Any] = {"pipeline": rule.pipeline}
    stage = data.get(rule.stage_field)
    status = rule.status
    if not is_blank(stage):
        body["stage"] = settings.ghl_stage(rule.pipeline, str(stage).strip())
        status = status or settings.stage_status(rule.pipeline, str(stage))
    if status:
        body["status"] = status
    amount = _amount(settings, data)
    if amount is not None:
        body["monetaryValue"] = amount
    owner = data.get(fold_key(settings.assignee_field))
    if not is_blank(owner) and (user_id := user(owner, ctx)):
        body["assignedTo"] = user_id
    name = _name(rule.pipeline, data)
    return MappedEntity(
        type="opportunity",
        source_id=f"{rule.pipeline}:{parent.source_id}",
        action="upsert",
        body=body,
        defaults={"name": name},
        parent=parent,
        source_updated_at=updated,
    )


def card_fields(settings: OpportunitySettings, event: str) -> list[str]:
    """The DripJobs fields the card of `event` reads (none when it makes no card)."""
    rule = DEAL_EVENTS.get(event)
    if rule is None or settings.pipeline(rule.pipeline) is None:
        return []
    names = [rule.stage_field, settings.assignee_field, *settings.amount_fields]
    return [*names, f"{rule.pipeline}_name", f"{rule.pipeline}_id"]


def _amount(settings: OpportunitySettings, data: Mapping[str, Any]) -> float | None:
    """The first amount field present, as a number (`$1,250.50` → 1250.5)."""
    for name in settings.amount_fields:
        value = data.get(fold_key(name))
        if is_blank(value) or isinstance(value, bool):
            continue
        if isinstance(value, int | float):
            return float(value)
        text = re.sub(r"[\s$,]", "", str(value))
        if not _AMOUNT.match(text):
            raise MappingError(name, value, "is not an amount (e.g. 1250.50 or $1,250.50)")
        return float(text)
    return None


def _name(kind: str, data: Mapping[str, Any]) -> str:
    """A readable card name: the deal or project name, else the customer's name."""
    for field in (f"{kind}_name", "customer_name", "name"):
        if not is_blank(data.get(field)):
            return str(data[field]).strip()
    person = " ".join(str(data[f]).strip() for f in ("first_name", "last_name") if data.get(f))
    return person or f"DripJobs {kind} {data.get('customer_id', '')}".strip()
