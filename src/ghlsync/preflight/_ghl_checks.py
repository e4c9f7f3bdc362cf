"""Checks against GHL: the token, its scopes, and every thing the mapping names by id or name.

Each reads with harmless GETs of the location (one per list, shared through `Preflight`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ghlsync.ghl._errors import AuthenticationError, GHLError, PermissionDeniedError
from ghlsync.mapping import AppConfig
from ghlsync.preflight._model import CheckLine, Preflight, failed, passed
from ghlsync.preflight._recipe_refs import recipe_refs

__all__ = [
    "check_calendar",
    "check_custom_fields",
    "check_pipelines",
    "check_scopes",
    "check_token",
    "check_users",
    "required_scopes",
]

# Scope → the harmless read that proves it (write scopes are proved by the test writes).
_PROBES = {
    "locations.readonly": "get-location",
    "contacts.readonly": "get-contacts",
    "calendars.readonly": "get-calendars",
    "locations/customFields.readonly": "get-custom-fields",
    "opportunities.readonly": "get-pipelines",
    "users.readonly": "get-user-by-location",
    "workflows.readonly": "get-workflow",
}


def required_scopes(config: AppConfig, extra: Iterable[str] = ()) -> list[str]:
    """The OAuth scopes the enabled flows need (docs/auth.md lists them per flow)."""
    needed = ["locations.readonly", "contacts.readonly", "contacts.write"]
    entities = {rule.entity for rule in config.events.values()}
    if "appointment" in entities:
        needed += ["calendars.readonly", "calendars/events.readonly", "calendars/events.write"]
    if config.custom_fields:
        needed.append("locations/customFields.readonly")
    if _pipelines(config):
        needed += ["opportunities.readonly", "opportunities.write"]
    if config.users:
        needed.append("users.readonly")
    return list(dict.fromkeys([*needed, *extra]))


def _pipelines(config: AppConfig) -> dict[str, str]:
    """`deal`/`project` → the configured pipeline name, for the ones set."""
    settings = config.opportunities
    found = {"deal": settings.deal_pipeline, "project": settings.project_pipeline}
    return {kind: name for kind, name in found.items() if name}


def _ghl_words(error: GHLError) -> str:
    status = f"{error.status} " if error.status is not None else ""
    return f"GHL answered {status}{error.message}"


async def check_token(pf: Preflight) -> list[CheckLine]:
    """The token opens the location (GET /locations/{id})."""
    if pf.client is None or pf.location_id is None:
        return [_no_token(pf.config)]
    try:
        answer = await pf.read("get-location", locationId=pf.location_id)
    except AuthenticationError as error:
        fix = (
            "GHL does not accept the token: set a valid Private Integration token as "
            "ghl.token (or GHLSYNC_GHL_TOKEN), or reconnect with `ghlsync auth login`"
        )
        return [failed("token", f"token refused for {pf.location_id}: {_ghl_words(error)}", fix)]
    except GHLError as error:
        fix = (
            f"check ghl.location_id ({pf.location_id}) is the sub-account the token belongs "
            "to, and that the token has the locations.readonly scope"
        )
        return [failed("token", f"cannot read location {pf.location_id}: {_ghl_words(error)}", fix)]
    name = _location_name(answer)
    return [passed("token", f"token accepted for location {pf.location_id}{name}")]


def _no_token(config: AppConfig) -> CheckLine:
    what = "ghl.location_id" if not config.ghl.location_id else "a token for it"
    return failed(
        "token",
        f"no {what}: nothing can be sent to GHL",
        "set ghl.location_id and ghl.token (or GHLSYNC_GHL_LOCATION_ID / GHLSYNC_GHL_TOKEN), "
        "or store a token with `ghlsync auth login` / `ghlsync locations add`",
    )


def _location_name(answer: Any) -> str:
    found = answer.get("location") if isinstance(answer, Mapping) else None
    name = found.get("name") if isinstance(found, Mapping) else None
    return f" ({name})" if isinstance(name, str) and name else ""


async def check_scopes(pf: Preflight) -> list[CheckLine]:
    """Every scope the enabled flows need: granted (stored OAuth scopes) and proved by a read."""
    if pf.client is None:
        return []
    needed = required_scopes(pf.config, _recipe_scopes(pf.config))
    granted = set(pf.scopes.split()) if pf.scopes else None
    missing = sorted(s for s in needed if granted is not None and s not in granted)
    refused = [scope for scope in needed if await _refused(pf, scope)]
    problems = sorted(set(missing) | set(refused))
    if problems:
        return [
            failed(
                "scopes",
                f"the token lacks {', '.join(problems)} (needed by the enabled flows)",
                "grant these scopes to the Private Integration (GHL: Settings > Private "
                "Integrations) or to the marketplace app, then `ghlsync auth login` again",
            )
        ]
    how = "granted" if granted is not None else "reads answered"
    return [passed("scopes", f"{len(needed)} scopes for the enabled flows ({how})")]


async def _refused(pf: Preflight, scope: str) -> bool:
    operation = _PROBES.get(scope)
    if operation is None or pf.location_id is None:
        return False
    path = {"locationId": pf.location_id} if "{locationId}" in _path(operation) else {}
    try:
        await pf.read(operation, **path)
    except (PermissionDeniedError, AuthenticationError):
        return True
    except GHLError:
        return False  # not a scope problem; the check that reads it says what it is
    return False


def _path(operation: str) -> str:
    from ghlsync.ghl._operations import OPERATIONS

    return OPERATIONS[operation].path


def _recipe_scopes(config: AppConfig) -> list[str]:
    refs = recipe_refs(config)
    needed = ["workflows.readonly"] if refs.workflows else []
    return needed + (["opportunities.readonly", "opportunities.write"] if refs.pipelines else [])


async def check_calendar(pf: Preflight) -> list[CheckLine]:
    """The calendar appointments are written to (and any a recipe books in) exists."""
    appointments = any(rule.entity == "appointment" for rule in pf.config.events.values())
    recipes = recipe_refs(pf.config).calendars
    if pf.client is None or not (appointments or recipes):
        return []
    calendar = pf.config.ghl.calendar_id
    if appointments and not calendar:
        return [
            failed(
                "calendar",
                "no ghl.calendar_id: appointment events cannot be written",
                "set ghl.calendar_id (or GHLSYNC_GHL_CALENDAR_ID) to the calendar DripJobs "
                "appointments go to (GHL: Calendars > Calendar settings shows its id); for a "
                "location added with `ghlsync locations add`, add it again with --calendar ID",
            )
        ]
    try:
        answer = await pf.read("get-calendars")
    except GHLError as error:
        return [failed("calendar", f"cannot list calendars: {_ghl_words(error)}", _scope_fix())]
    known = _items(answer, "calendars", "id", "name")
    wanted = {calendar: "ghl.calendar_id"} if appointments and calendar else {}
    wanted |= {cal: where for cal, where in recipes.items() if cal not in wanted}
    return [
        passed("calendar", f"calendar {cal} ({known[cal]}) reachable")
        if cal in known
        else _missing("calendar", where, cal, known)
        for cal, where in wanted.items()
    ]


async def check_custom_fields(pf: Preflight) -> list[CheckLine]:
    """Every `custom_fields:` key (and recipe custom field) exists in the location."""
    wanted = {rule.key: f"custom_fields.{name}" for name, rule in pf.config.custom_fields.items()}
    if pf.client is None or not wanted:
        return []
    try:
        answer = await pf.read("get-custom-fields", locationId=pf.location_id or "")
    except GHLError as error:
        return [failed("custom fields", f"cannot list them: {_ghl_words(error)}", _scope_fix())]
    known = {
        _norm_field(k): v for k, v in _items(answer, "customFields", "fieldKey", "name").items()
    }
    return [_one_field(key, where, known) for key, where in wanted.items()]


def _norm_field(key: str) -> str:
    key = key.strip().lower()
    return key if key.startswith("contact.") else f"contact.{key}"


def _one_field(key: str, where: str, known: Mapping[str, str]) -> CheckLine:
    if _norm_field(key) in known:
        return passed("custom fields", f"{key} exists ({where})")
    return failed(
        "custom fields",
        f"{key} ({where}) is not a custom field of the location",
        f"create it in GHL (Settings > Custom Fields, key {key}) or fix {where}; the location "
        f"has: {_listing(known)}",
    )


async def check_pipelines(pf: Preflight) -> list[CheckLine]:
    """Each configured pipeline, and each stage `*_stages` names, exists."""
    configured = _pipelines(pf.config)
    refs = recipe_refs(pf.config)
    if pf.client is None or not (configured or refs.pipelines):
        return []
    try:
        answer = await pf.read("get-pipelines")
    except GHLError as error:
        return [failed("pipelines", f"cannot list them: {_ghl_words(error)}", _scope_fix())]
    pipelines = answer.get("pipelines", []) if isinstance(answer, Mapping) else []
    lines: list[CheckLine] = []
    for kind, name in configured.items():
        mapped = list(pf.config.opportunities.stages(kind).values())
        lines += _one_pipeline(f"opportunities.{kind}_pipeline", name, mapped, pipelines)
    for name, where in refs.pipelines.items():
        named = [stage for (pipeline, stage) in refs.stages if pipeline == name]
        lines += _one_pipeline(where, name, named, pipelines)
    return lines


def _one_pipeline(
    where: str, wanted: str, stages: Iterable[str], pipelines: list[Any]
) -> list[CheckLine]:
    folded = wanted.casefold()
    found = next(
        (
            p
            for p in pipelines
            if folded in (str(p.get("id")).casefold(), str(p.get("name")).casefold())
        ),
        None,
    )
    if found is None:
        names = ", ".join(repr(p.get("name")) for p in pipelines) or "none"
        return [
            failed(
                "pipelines",
                f"{where}: no pipeline {wanted!r} in the location",
                f"create it in GHL (Opportunities > Pipelines) or use one of: {names}",
            )
        ]
    have = {str(s.get("name")).casefold(): s.get("name") for s in found.get("stages") or []}
    missing = [s for s in dict.fromkeys(stages) if s.casefold() not in have]
    if missing:
        return [
            failed(
                "pipelines",
                f"{where}: pipeline {found.get('name')!r} has no stage "
                f"{', '.join(map(repr, missing))}",
                f"add the stage in GHL or fix the stage names; it has: "
                f"{', '.join(repr(n) for n in have.values()) or 'none'}",
            )
        ]
    count = len(list(dict.fromkeys(stages)))
    return [
        passed("pipelines", f"{where}: {found.get('name')!r} and its {count} mapped stages exist")
    ]


async def check_users(pf: Preflight) -> list[CheckLine]:
    """Every GHL user id of `users:` (and of recipes) is a user of the location."""
    wanted = {user_id: f"users.{name}" for name, user_id in pf.config.users.items()}
    for user, where in recipe_refs(pf.config).users.items():
        if user not in pf.config.users:  # a name of `users:` is checked by its id above
            wanted.setdefault(user, where)
    if pf.client is None or not wanted:
        return []
    try:
        answer = await pf.read("get-user-by-location")
    except GHLError as error:
        return [failed("users", f"cannot list them: {_ghl_words(error)}", _scope_fix())]
    known = _items(answer, "users", "id", "name")
    lines = []
    for user_id, where in wanted.items():
        if user_id in known:
            lines.append(passed("users", f"{where}: user {user_id} ({known[user_id]}) exists"))
        else:
            lines.append(_missing("users", where, user_id, known))
    return lines


async def check_workflows(pf: Preflight) -> list[CheckLine]:
    """Every workflow the recipes name exists (only when a `recipes:` section names one)."""
    wanted = recipe_refs(pf.config).workflows
    if pf.client is None or not wanted:
        return []
    try:
        answer = await pf.read("get-workflow")
    except GHLError as error:
        return [failed("workflows", f"cannot list them: {_ghl_words(error)}", _scope_fix())]
    known = _items(answer, "workflows", "id", "name")
    by_name = {name.casefold() for name in known.values()}
    lines = []
    for workflow, where in wanted.items():
        if workflow in known or workflow.casefold() in by_name:
            lines.append(passed("workflows", f"{where}: workflow {workflow!r} exists"))
        else:
            lines.append(_missing("workflows", where, workflow, known))
    return lines


def _items(answer: Any, key: str, id_key: str, name_key: str) -> dict[str, str]:
    items = answer.get(key, []) if isinstance(answer, Mapping) else []
    return {
        str(item[id_key]): str(item.get(name_key) or "")
        for item in items
        if isinstance(item, Mapping) and item.get(id_key)
    }


def _missing(check: str, where: str, value: str, known: Mapping[str, str]) -> CheckLine:
    return failed(
        check,
        f"{where}: {value} is not in the location",
        f"fix {where}; the location has: {_listing(known)}",
    )


def _listing(known: Mapping[str, str], limit: int = 8) -> str:
    shown = [f"{k} ({v})" if v else k for k, v in list(known.items())[:limit]]
    more = f", and {len(known) - limit} more" if len(known) > limit else ""
    return (", ".join(shown) + more) or "none"


def _scope_fix() -> str:
    return "see the token and scopes lines above; then run `ghlsync check` again"
