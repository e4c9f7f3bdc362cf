"""What every API route needs: the sandbox state and the caller's location."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from ghlsync.sandbox._records import location_of
from ghlsync.sandbox._state import Location, Principal, SandboxState


@dataclass(frozen=True, slots=True)
class Ctx:
    """The state, the authenticated caller, and the caller's location."""

    state: SandboxState
    principal: Principal
    location: Location

    def check_location(self, location_id: str | None) -> Location:
        """The caller's location, after checking an explicitly named one is the same."""
        return location_of(self.state, self.principal, location_id)


def sandbox_state(request: Request) -> SandboxState:
    """The app's SandboxState."""
    state: SandboxState = request.app.state.sandbox
    return state


def _ctx(request: Request) -> Ctx:
    state = sandbox_state(request)
    principal: Principal = request.state.principal
    return Ctx(state, principal, location_of(state, principal))


CtxDep = Annotated[Ctx, Depends(_ctx)]
StateDep = Annotated[SandboxState, Depends(sandbox_state)]
