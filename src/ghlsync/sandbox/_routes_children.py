"""`/contacts/{contactId}/tasks` and `/contacts/{contactId}/notes`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from ghlsync.sandbox._deps import Ctx, CtxDep
from ghlsync.sandbox._models import CreateNote, CreateTask, TaskCompleted, UpdateNote, UpdateTask
from ghlsync.sandbox._records import emit, get_or_404, now_iso, public
from ghlsync.sandbox._routes_contacts import require_contact
from ghlsync.sandbox._state import Record

router = APIRouter()


def _task_of(ctx: Ctx, contact_id: str, task_id: str) -> Record:
    require_contact(ctx, contact_id)
    task = get_or_404(ctx.location.tasks, task_id, "Task")
    if task["contactId"] != contact_id:
        return get_or_404({}, task_id, "Task")
    return task


def _task_event(ctx: Ctx, kind: str, task: Record) -> None:
    fields = ("id", "assignedTo", "body", "contactId", "title", "dateAdded", "dueDate")
    emit(ctx.state, ctx.location, kind, public({k: task.get(k) for k in fields}))


@router.get("/contacts/{contactId}/tasks")
async def list_tasks(ctx: CtxDep, contactId: str) -> dict[str, Any]:
    """A contact's tasks."""
    with ctx.state.lock:
        require_contact(ctx, contactId)
        tasks = [public(t) for t in ctx.location.tasks.values() if t["contactId"] == contactId]
        return {"tasks": tasks}


@router.post("/contacts/{contactId}/tasks", status_code=201)
async def create_task(ctx: CtxDep, contactId: str, body: CreateTask) -> dict[str, Any]:
    """Create a task."""
    with ctx.state.lock:
        require_contact(ctx, contactId)
        task = {"id": ctx.state.new_id(), "contactId": contactId, "dateAdded": now_iso(ctx.state)}
        task.update(body.given())
        task["dateUpdated"] = task["dateAdded"]
        ctx.location.tasks[task["id"]] = task
        _task_event(ctx, "TaskCreate", task)
        return {"task": public(task)}


@router.get("/contacts/{contactId}/tasks/{taskId}")
async def get_task(ctx: CtxDep, contactId: str, taskId: str) -> dict[str, Any]:
    """One task."""
    with ctx.state.lock:
        return {"task": public(_task_of(ctx, contactId, taskId))}


@router.put("/contacts/{contactId}/tasks/{taskId}")
async def update_task(ctx: CtxDep, contactId: str, taskId: str, body: UpdateTask) -> dict[str, Any]:
    """Update a task's fields."""
    with ctx.state.lock:
        return {"task": public(_change_task(ctx, contactId, taskId, body.given()))}


@router.put("/contacts/{contactId}/tasks/{taskId}/completed")
async def complete_task(
    ctx: CtxDep, contactId: str, taskId: str, body: TaskCompleted
) -> dict[str, Any]:
    """Mark a task completed or not."""
    with ctx.state.lock:
        return {"task": public(_change_task(ctx, contactId, taskId, body.given()))}


def _change_task(ctx: Ctx, contact_id: str, task_id: str, fields: dict[str, Any]) -> Record:
    task = _task_of(ctx, contact_id, task_id)
    was_completed = bool(task.get("completed"))
    task.update(fields)
    task["dateUpdated"] = now_iso(ctx.state)
    if task.get("completed") and not was_completed:
        _task_event(ctx, "TaskComplete", task)  # GHL documents no TaskUpdate event
    return task


@router.delete("/contacts/{contactId}/tasks/{taskId}")
async def delete_task(ctx: CtxDep, contactId: str, taskId: str) -> dict[str, Any]:
    """Delete a task."""
    with ctx.state.lock:
        task = _task_of(ctx, contactId, taskId)
        del ctx.location.tasks[taskId]
        _task_event(ctx, "TaskDelete", task)
        return {"succeded": True}


def _note_of(ctx: Ctx, contact_id: str, note_id: str) -> Record:
    require_contact(ctx, contact_id)
    note = get_or_404(ctx.location.notes, note_id, "Note")
    if note["contactId"] != contact_id:
        return get_or_404({}, note_id, "Note")
    return note


def _note_event(ctx: Ctx, kind: str, note: Record) -> None:
    fields = ("id", "body", "contactId", "dateAdded")
    emit(ctx.state, ctx.location, kind, public({k: note.get(k) for k in fields}))


@router.get("/contacts/{contactId}/notes")
async def list_notes(ctx: CtxDep, contactId: str) -> dict[str, Any]:
    """A contact's notes."""
    with ctx.state.lock:
        require_contact(ctx, contactId)
        notes = [public(n) for n in ctx.location.notes.values() if n["contactId"] == contactId]
        return {"notes": notes}


@router.post("/contacts/{contactId}/notes", status_code=201)
async def create_note(ctx: CtxDep, contactId: str, body: CreateNote) -> dict[str, Any]:
    """Create a note."""
    with ctx.state.lock:
        require_contact(ctx, contactId)
        note = {"id": ctx.state.new_id(), "contactId": contactId, "dateAdded": now_iso(ctx.state)}
        note.update(body.given())
        ctx.location.notes[note["id"]] = note
        _note_event(ctx, "NoteCreate", note)
        return {"note": public(note)}


@router.get("/contacts/{contactId}/notes/{id}")
async def get_note(ctx: CtxDep, contactId: str, id: str) -> dict[str, Any]:
    """One note."""
    with ctx.state.lock:
        return {"note": public(_note_of(ctx, contactId, id))}


@router.put("/contacts/{contactId}/notes/{id}")
async def update_note(
    ctx: CtxDep,
    contactId: str,
    id: str,
    body: UpdateNote,
) -> dict[str, Any]:
    """Update a note."""
    with ctx.state.lock:
        note = _note_of(ctx, contactId, id)
        note.update(body.given())
        _note_event(ctx, "NoteUpdate", note)
        return {"note": public(note)}


@router.delete("/contacts/{contactId}/notes/{id}")
async def delete_note(ctx: CtxDep, contactId: str, id: str) -> dict[str, Any]:
    """Delete a note."""
    with ctx.state.lock:
        note = _note_of(ctx, contactId, id)
        del ctx.location.notes[id]
        _note_event(ctx, "NoteDelete", note)
        return {"succeded": True}
