"""The web console (`ghlsync serve` at `/console`): docs/console.md.

Server-rendered pages for the person who runs the sync day to day: the state of every
location, connections and webhook secrets, dead letters and replays, the mapping tester,
record search and the activity log. Behind an admin password (`ghlsync console
set-password`), a session cookie and CSRF tokens.
"""

from __future__ import annotations

from ghlsync.console._app import build_console

__all__ = ["build_console"]
