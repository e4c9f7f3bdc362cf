"""The guarded protocol over uvicorn's h11 parser (pure Python; always available)."""

from __future__ import annotations

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from ghlsync.server.guard._conn import Phase, _Guarded


class _GuardedH11(_Guarded, H11Protocol):
    """uvicorn's h11 protocol with header and body deadlines and a connection cap.

    The head's size is h11's own bound (`h11_max_incomplete_event_size` in `uvicorn_settings`).
    """

    def _phase(self) -> Phase:
        state = self.conn.their_state
        if state is h11.IDLE:
            return "head" if self.conn.trailing_data[0] else "idle"
        return "body" if state is h11.SEND_BODY else "done"

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._watch()
