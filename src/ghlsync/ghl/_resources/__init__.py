"""Resource groups of the GHL client, one module per API family."""

from ghlsync.ghl._resources._automations import Campaigns, Workflows
from ghlsync.ghl._resources._businesses import Businesses
from ghlsync.ghl._resources._calendars import Calendars
from ghlsync.ghl._resources._contacts import Contacts
from ghlsync.ghl._resources._conversations import Conversations
from ghlsync.ghl._resources._locations import Locations
from ghlsync.ghl._resources._notes import Notes
from ghlsync.ghl._resources._opportunities import Opportunities
from ghlsync.ghl._resources._tasks import Tasks
from ghlsync.ghl._resources._users import Users

__all__ = [
    "Businesses",
    "Calendars",
    "Campaigns",
    "Contacts",
    "Conversations",
    "Locations",
    "Notes",
    "Opportunities",
    "Tasks",
    "Users",
    "Workflows",
]
