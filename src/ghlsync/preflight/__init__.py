"""The go-live preflight (`ghlsync check`): is this environment ready to sync for real?

Public API::

    run_checks(config, *, location_id=None, credentials=None, transport=None, checks=None)
        -> list[CheckLine]      every check of CHECKS, in order, against config's GHL
    CHECKS: list[Check]         the checks; a check is `async (Preflight) -> list[CheckLine]`
    CheckLine(check, ok, message, fix)   one ✓/✗ line; .to_dict() for --json
    Preflight                   what a check sees: config, client, location_id, scopes,
                                sandbox (test writes are real), engine (a throwaway store),
                                .read(operation, **path) a cached GHL read
    Credentials(token, scopes=None, kind="config")   the token under check and its scopes
    required_scopes(config) -> list[str]   the OAuth scopes the enabled flows need

See docs/environments.md, "Going live: ghlsync check".
"""

from ghlsync.preflight._ghl_checks import required_scopes
from ghlsync.preflight._model import Check, CheckLine, Preflight
from ghlsync.preflight._run import CHECKS, Credentials, run_checks

__all__ = [
    "CHECKS",
    "Check",
    "CheckLine",
    "Credentials",
    "Preflight",
    "required_scopes",
    "run_checks",
]
