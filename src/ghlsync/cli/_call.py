"""`ghlsync call`: send one GHL operation by its operationId and print the answer.

    ghlsync call --list
    ghlsync call get-contact --param contactId=abc
    ghlsync call upsert-contact --body '{"email": "a@example.com"}'

The base URL, token and location come from the config (`ghl.base_url`, `ghl.token`,
`ghl.location_id` of `--config` / `$GHLSYNC_CONFIG` / `./ghlsync.yaml`, with the `GHLSYNC_GHL_*`
variables over them), as for every other command; `--base-url`, `--token` and `--location`
override them. A config written by `ghlsync init --sandbox URL` is enough to call the sandbox.

The JSON answer goes to stdout; the rate budget (X-RateLimit-*) of that answer to stderr.
Exit status: 0 on success, 1 when GHL (or the network) refused, 2 for a usage mistake.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from ghlsync.cli._engine_common import CONFIG_OPTION, load_config_or_fail
from ghlsync.ghl._client import GHLClient, RateInfo
from ghlsync.ghl._errors import GHLError, OutcomeUnknownError, TransportError, ValidationError
from ghlsync.ghl._operations import OPERATIONS, Operation
from ghlsync.ghl._tokens import StaticTokens


def register(app: typer.Typer) -> None:
    """Add this area's commands to `app`."""
    app.command("call")(call)


def call(
    operation: str = typer.Argument("", help="Operation id from the GHL spec (see --list)."),
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param", "-p", help="key=value; path parameters by name, the rest go to the query."
        ),
    ] = None,
    body: str = typer.Option("", help="Request body as JSON."),
    base_url: str = typer.Option("", help="GHL base URL (default: ghl.base_url of the config)."),
    token: str = typer.Option(
        "", help="Access or Private Integration token (default: ghl.token of the config)."
    ),
    location: str = typer.Option("", help="Location id (default: ghl.location_id of the config)."),
    config: Path | None = CONFIG_OPTION,
    list_: bool = typer.Option(False, "--list", help="List the operations and exit."),
) -> None:
    """Call one GHL API operation and print its JSON answer and the rate budget."""
    if list_:
        _print_list()
        return
    op = _operation(operation)
    ghl = load_config_or_fail("call", config).ghl
    location = location or ghl.location_id or ""
    secret = token or (ghl.token.reveal() if ghl.token is not None else "")
    if not secret:
        _usage("no token: set ghl.token in the config (or GHLSYNC_GHL_TOKEN), or pass --token")
    url = base_url or ghl.base_url
    path, query = _split_params(op, param or [], location)
    payload = _body(op, body, location)
    key = location or "default"
    try:
        with _quiet_client():
            sending = _send(url, key, secret, op, path, query, payload, ghl.api_version)
            answer, rate = asyncio.run(sending)
    except GHLError as error:
        _fail(error, url)
    typer.echo(json.dumps(answer, indent=2, ensure_ascii=False))
    typer.echo(_describe_rate(rate), err=True)


async def _send(
    url: str,
    key: str,
    secret: str,
    op: Operation,
    path: dict[str, str],
    query: dict[str, str],
    body: Any,
    api_version: str,
) -> tuple[Any, RateInfo | None]:
    # One retry, not five: a person is waiting, and the error says what to check.
    client = GHLClient(
        base_url=url, tokens=StaticTokens({key: secret}), max_attempts=2, api_version=api_version
    )
    async with client:
        answer = await client.call(
            op.operation_id, key=key, path_params=path, params=query, body=body
        )
        return answer, client.last_rate(key)


@contextmanager
def _quiet_client() -> Iterator[None]:
    """The client's per-attempt warnings would repeat the one error line `call` prints."""
    logger = logging.getLogger("ghlsync.ghl")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _print_list() -> None:
    for op in sorted(OPERATIONS.values(), key=lambda o: (o.family, o.path, o.method)):
        typer.echo(f"{op.operation_id:40} {op.method:6} {op.path:55} {op.version}")


def _operation(name: str) -> Operation:
    if not name:
        _usage("name an operation (ghlsync call --list shows them)")
    if name not in OPERATIONS:
        close = [o for o in OPERATIONS if name.lower() in o.lower()]
        hint = f"; did you mean {', '.join(close[:5])}?" if close else " (see --list)"
        _usage(f"unknown operation {name!r}{hint}")
    return OPERATIONS[name]


def _split_params(
    op: Operation, pairs: list[str], location: str
) -> tuple[dict[str, str], dict[str, str]]:
    path: dict[str, str] = {}
    query: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            _usage(f"--param wants key=value, got {pair!r}")
        (path if name in op.path_params else query)[name] = value
    if "locationId" in op.path_params and location:
        path.setdefault("locationId", location)
    if op.location_query and location:
        query.setdefault("locationId", location)
    missing = [p for p in op.path_params if p not in path]
    if missing:
        _usage(f"{op.operation_id} needs --param {'=… --param '.join(missing)}=…")
    return path, query


def _body(op: Operation, text: str, location: str) -> Any:
    if not text:
        data: Any = {} if op.body is not None else None
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            _usage(f"--body is not valid JSON: {exc}")
    fields = op.body.model_json_schema().get("properties", {}) if op.body else {}
    if isinstance(data, dict) and "locationId" in fields and location:
        data.setdefault("locationId", location)
    return data


def _describe_rate(rate: RateInfo | None) -> str:
    if rate is None:
        return "rate budget: no X-RateLimit headers in the answer"
    return (
        f"rate budget: {rate.remaining}/{rate.max} per {rate.interval_ms} ms, "
        f"{rate.daily_remaining}/{rate.daily_limit} today"
    )


def _usage(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def _fail(error: GHLError, url: str) -> NoReturn:
    if isinstance(error, TransportError | OutcomeUnknownError):
        typer.echo(
            f"error: cannot reach GHL at {url} ({error}); check ghl.base_url in the config "
            "(or --base-url) and that the server there is up",
            err=True,
        )
        raise typer.Exit(1)
    kind = type(error).__name__
    typer.echo(f"error: {kind}: {error}", err=True)
    if error.body not in (None, "") and not isinstance(error, ValidationError):
        typer.echo(json.dumps(error.body, indent=2, ensure_ascii=False), err=True)
    raise typer.Exit(1)
