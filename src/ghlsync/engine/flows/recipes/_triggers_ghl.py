"""The GHL webhook events a recipe can listen to (`ghl.<type>`), with the fields each carries.

GHL POSTs every event type an app subscribes to at `/hooks/ghl`. A recipe acts in one
location, so the triggers are the events that name one: by `locationId`, or, for invoices
and orders, by `altId` with `altType: location` (`event_location`). Not triggers: the app's own
lifecycle (INSTALL, UNINSTALL, PLAN_CHANGE: the installer takes them), agency-level events
without a location (LocationCreate, LocationUpdate) and ProviderOutboundMessage (sent to a
conversation provider's delivery URL, not to the app's webhook).

Field lists follow GHL's webhook event documentation (names and types only); a dotted name
(`appointment.startTime`) is a field of a nested object.
"""

from __future__ import annotations

from ghlsync.engine.flows.recipes._spec import InputSpec, TriggerSpec
from ghlsync.engine.flows.to_dripjobs._events import event_location

__all__ = ["GHL_TRIGGER_TYPES", "event_location", "fields", "ghl_triggers"]


def fields(spec: str) -> tuple[InputSpec, ...]:
    """`"id! title dueDate:datetime"` → InputSpecs (`!` required; type after `:`, else string)."""
    found = []
    for word in spec.split():
        required = word.endswith("!")
        name, _, kind = word.rstrip("!").partition(":")
        found.append(InputSpec(name, kind or "string", required))
    return tuple(found)


_CONTACT = (
    "id! locationId! email phone firstName lastName name companyName source tags:list "
    "dnd:boolean assignedTo address1 city state postalCode country website dateOfBirth "
    "dateAdded:datetime customFields:list attachments:list"
)
_APPOINTMENT = (
    "locationId! appointment:object! appointment.id! appointment.calendarId appointment.contactId "
    "appointment.title appointment.startTime:datetime appointment.endTime:datetime "
    "appointment.appointmentStatus appointment.assignedUserId appointment.address "
    "appointment.notes appointment.source appointment.dateAdded:datetime "
    "appointment.dateUpdated:datetime"
)
_TASK = "id! locationId! contactId title body assignedTo dueDate:datetime dateAdded:datetime"
_NOTE = "id! locationId! contactId body dateAdded:datetime"
_OPPORTUNITY = (
    "id! locationId! contactId name pipelineId pipelineStageId status monetaryValue:number "
    "assignedTo source dateAdded:datetime"
)
_MESSAGE = (
    "locationId! contactId conversationId messageId body messageType direction status "
    "contentType attachments:list userId dateAdded:datetime conversationProviderId "
    "callDuration:number callStatus"
)
_INVOICE = (
    "_id! altId! altType! status invoiceNumber name title total:number amountDue:number "
    "amountPaid:number currency contactDetails:object issueDate dueDate createdAt:datetime "
    "updatedAt:datetime liveMode:boolean"
)
_ORDER = (
    "_id! altId! altType! contactId status fulfillmentStatus amount:number currency "
    "contactSnapshot:object items:list source:object createdAt:datetime updatedAt:datetime "
    "liveMode:boolean"
)
_PRODUCT = (
    "_id! locationId! name description productType availableInStore:boolean image "
    "createdAt:datetime updatedAt:datetime"
)
_PRICE = (
    "_id! locationId! product name amount:number currency recurring:object "
    "createdAt:datetime updatedAt:datetime"
)
_RECORD = "id! locationId! properties:list owners:list followers:list timestamp:datetime"
_ASSOCIATION = (
    "id! locationId! key associationType firstObjectKey firstObjectLabel secondObjectKey "
    "secondObjectLabel"
)
_RELATION = (
    "id! locationId! associationId firstObjectKey firstRecordId secondObjectKey secondRecordId"
)
_SCHEMA = (
    "key! locationId! objectType labels:object description primaryDisplayProperty "
    "searchableProperties:list timestamp:datetime"
)

# type → (what happened, the fields it carries)
GHL_TRIGGER_TYPES: dict[str, tuple[str, str]] = {
    "ContactCreate": ("A contact was created in GHL.", _CONTACT),
    "ContactUpdate": ("A contact's fields were changed in GHL.", _CONTACT),
    "ContactDelete": ("A contact was deleted in GHL.", _CONTACT),
    "ContactTagUpdate": ("A contact's tags were changed in GHL.", _CONTACT),
    "ContactDndUpdate": (
        "A contact's do-not-disturb settings were changed.",
        _CONTACT + " dndSettings:object",
    ),
    "TaskCreate": ("A task was created in GHL.", _TASK),
    "TaskComplete": ("A task was marked completed in GHL.", _TASK),
    "TaskDelete": ("A task was deleted in GHL.", _TASK),
    "NoteCreate": ("A note was added to a contact in GHL.", _NOTE),
    "NoteUpdate": ("A contact's note was edited in GHL.", _NOTE),
    "NoteDelete": ("A contact's note was deleted in GHL.", _NOTE),
    "AppointmentCreate": ("An appointment was booked in a GHL calendar.", _APPOINTMENT),
    "AppointmentUpdate": ("An appointment was changed (time, status, ...).", _APPOINTMENT),
    "AppointmentDelete": ("An appointment was deleted in GHL.", _APPOINTMENT),
    "OpportunityCreate": ("An opportunity (pipeline card) was created.", _OPPORTUNITY),
    "OpportunityUpdate": ("An opportunity was changed.", _OPPORTUNITY),
    "OpportunityDelete": ("An opportunity was deleted.", _OPPORTUNITY),
    "OpportunityStageUpdate": ("An opportunity moved to another stage.", _OPPORTUNITY),
    "OpportunityStatusUpdate": (
        "An opportunity's status changed (open, won, lost, abandoned).",
        _OPPORTUNITY,
    ),
    "OpportunityAssignedToUpdate": ("An opportunity was assigned to another user.", _OPPORTUNITY),
    "OpportunityMonetaryValueUpdate": ("An opportunity's value changed.", _OPPORTUNITY),
    "InboundMessage": (
        "A contact sent a message (SMS, email, call, chat, ...) to the location.",
        _MESSAGE,
    ),
    "OutboundMessage": ("A user or automation sent a message to a contact.", _MESSAGE + " source"),
    "ConversationUnreadUpdate": (
        "A conversation's unread state changed.",
        "id! locationId! contactId unreadCount:number inbox:boolean starred:boolean "
        "deleted:boolean",
    ),
    "CampaignStatusUpdate": (
        "A contact's status in a campaign changed.",
        "id! locationId! contactId status templateId replied dateAdded:datetime",
    ),
    "LCEmailStats": (
        "Delivery statistics of an email sent from GHL (delivered, opened, clicked, ...).",
        "locationId! companyId webhookPayload:object",
    ),
    "InvoiceCreate": ("An invoice was created.", _INVOICE),
    "InvoiceUpdate": ("An invoice was changed.", _INVOICE),
    "InvoiceDelete": ("An invoice was deleted.", _INVOICE),
    "InvoiceSent": ("An invoice was sent to the customer.", _INVOICE),
    "InvoicePaid": ("An invoice was paid in full.", _INVOICE),
    "InvoicePartiallyPaid": ("A part of an invoice was paid.", _INVOICE),
    "InvoiceVoid": ("An invoice was voided.", _INVOICE),
    "OrderCreate": ("An order was placed.", _ORDER),
    "OrderStatusUpdate": ("An order's status changed.", _ORDER),
    "ProductCreate": ("A product was created.", _PRODUCT),
    "ProductUpdate": ("A product was changed.", _PRODUCT),
    "ProductDelete": ("A product was deleted.", _PRODUCT),
    "PriceCreate": ("A product price was created.", _PRICE),
    "PriceUpdate": ("A product price was changed.", _PRICE),
    "PriceDelete": ("A product price was deleted.", _PRICE),
    "RecordCreate": ("A custom object record (or company) was created.", _RECORD),
    "RecordUpdate": ("A custom object record (or company) was changed.", _RECORD),
    "RecordDelete": ("A custom object record (or company) was deleted.", _RECORD),
    "AssociationCreate": ("An association between two object types was created.", _ASSOCIATION),
    "AssociationUpdate": ("An association between two object types was changed.", _ASSOCIATION),
    "AssociationDelete": ("An association between two object types was deleted.", _ASSOCIATION),
    "RelationCreate": ("Two records were linked.", _RELATION),
    "RelationDelete": ("Two linked records were unlinked.", _RELATION),
    "ObjectSchemaCreate": ("A custom object was defined.", _SCHEMA),
    "ObjectSchemaUpdate": ("A custom object's definition was changed.", _SCHEMA),
    "UserCreate": (
        "A user was added to the location.",
        "id! locationId! companyId firstName lastName email phone role",
    ),
}


def ghl_triggers() -> dict[str, TriggerSpec]:
    """`ghl.<type>` → its TriggerSpec, for every type in `GHL_TRIGGER_TYPES`."""
    return {
        f"ghl.{kind}": TriggerSpec(
            id=f"ghl.{kind}",
            side="ghl",
            description=text,
            fields=(InputSpec("type", "string", True), *fields(spec)),
            source=f"GHL webhook {kind} -> POST /hooks/ghl",
        )
        for kind, (text, spec) in GHL_TRIGGER_TYPES.items()
    }
