"""An emulated DripJobs for rehearsing two-way sync with no DripJobs account.

It plays DripJobs plus the user's Zaps: write-backs arrive at Zapier-style Catch Hooks
(`POST /dripjobs/hooks/catch/<action>`, Standard Webhooks signed), run the DripJobs action on
a small model (customers and leads, appointments, deals), and fire the Zapier triggers that
follow at ghlsync's `/hooks/dripjobs/<event>`. The admin API (`/dripjobs/_admin/`) acts as a
DripJobs user, shows state and counters, and injects faults. See docs/sandbox.md.
"""

from ghlsync.sandbox.dripjobs._app import DripJobsMount, create_dripjobs_app, mount_dripjobs
from ghlsync.sandbox.dripjobs._signature import SignatureError, signature, verify
from ghlsync.sandbox.dripjobs._state import DEFAULT_WRITEBACK_SECRET, DripJobsState, Settings

__all__ = [
    "DEFAULT_WRITEBACK_SECRET",
    "DripJobsMount",
    "DripJobsState",
    "Settings",
    "SignatureError",
    "create_dripjobs_app",
    "mount_dripjobs",
    "signature",
    "verify",
]
