"""`client.tasks`: tasks of a contact, and the location-wide task search."""

from __future__ import annotations

import builtins
from typing import Any

from ghlsync.ghl._models import Ack, Task
from ghlsync.ghl._resources._base import Resource, parse, parse_list


class Tasks(Resource):
    """Contact tasks (GHL requires title, dueDate and completed on create)."""

    async def list(self, location_id: str, contact_id: str) -> builtins.list[Task]:
        """`GET /contacts/{contactId}/tasks`."""
        answer = await self._call("get-all-tasks", location_id, path={"contactId": contact_id})
        return parse_list(Task, answer, "tasks")

    async def get(self, location_id: str, contact_id: str, task_id: str) -> Task:
        """`GET /contacts/{contactId}/tasks/{taskId}`."""
        path = {"contactId": contact_id, "taskId": task_id}
        return parse(Task, await self._call("get-task", location_id, path=path), "task")

    async def create(self, location_id: str, contact_id: str, body: Any) -> Task:
        """`POST /contacts/{contactId}/tasks` (a lost answer raises OutcomeUnknownError)."""
        path = {"contactId": contact_id}
        return parse(
            Task, await self._call("create-task", location_id, path=path, body=body), "task"
        )

    async def update(self, location_id: str, contact_id: str, task_id: str, body: Any) -> Task:
        """`PUT /contacts/{contactId}/tasks/{taskId}`."""
        path = {"contactId": contact_id, "taskId": task_id}
        answer = await self._call("update-task", location_id, path=path, body=body)
        return parse(Task, answer, "task")

    async def complete(
        self, location_id: str, contact_id: str, task_id: str, completed: bool = True
    ) -> Task:
        """`PUT /contacts/{contactId}/tasks/{taskId}/completed`."""
        path = {"contactId": contact_id, "taskId": task_id}
        body = {"completed": completed}
        answer = await self._call("update-task-completed", location_id, path=path, body=body)
        return parse(Task, answer, "task")

    async def delete(self, location_id: str, contact_id: str, task_id: str) -> Ack:
        """`DELETE /contacts/{contactId}/tasks/{taskId}`."""
        path = {"contactId": contact_id, "taskId": task_id}
        return await self._ack("delete-task", location_id, path=path)

    async def search(self, location_id: str, body: Any = None) -> Any:
        """`POST /locations/{locationId}/tasks/search`."""
        path = {"locationId": location_id}
        return await self._call("task-search", location_id, path=path, body=body or {})
