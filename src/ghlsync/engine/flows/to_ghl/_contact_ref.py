"""Which GHL contact a task, note or appointment belongs to."""

from __future__ import annotations

from ghlsync.engine.flows.to_ghl._model import ParentNotSyncedError, Run, parent_source_id
from ghlsync.mapping import MappedEntity, MappingError


async def contact_ghl_id(run: Run, entity: MappedEntity) -> str:
    """The GHL id of the entity's contact; it must have been synced first.

    A child never creates its contact from nothing: without the customer's fields there is no
    email or phone to keep GHL free of duplicates. When the contact is not (yet) in the ID map
    the error is retriable: its own work item is usually still in the queue.
    """
    customer = parent_source_id(entity)
    if not customer:
        raise MappingError("customer_id", None, f"is missing: a {entity.type} needs its customer")
    row = await run.ledger.lookup("contact", customer)
    if row is None or row.state != "confirmed" or not row.ghl_id:
        raise ParentNotSyncedError(
            f"customer {customer!r} of {entity.type} {entity.source_id!r} is not in GHL yet "
            "(no customer event with an email or phone was synced for it)",
            customer_id=customer,
        )
    return row.ghl_id
