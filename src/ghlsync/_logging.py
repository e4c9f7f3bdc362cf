"""Logging for the long-running commands (`serve`, `worker`): one handler on stderr for every
logger (ghlsync's own, uvicorn's), rendered by structlog.

- `text` (the default): `2026-12-06T01:23:09Z [info     ] message    [ghlsync.engine]`, one
  event a line, with the timestamp (UTC) and the level;
- `json`: one JSON object a line (`timestamp`, `level`, `logger`, `event` and any extra
  fields), for a log shipper. A line written while the worker syncs an item also carries
  `location`, `event_type`, `entity`, `entity_id`, `delivery_id` and `work_id` (structlog
  context variables the worker binds around the item).

The per-request lines of the GHL client (`ghlsync.ghl`, one per API call) and alembic's start-up
chatter are detail: shown at `--log-level debug` only, so that INFO stays readable at thousands
of calls an hour.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Literal, TextIO

import structlog

__all__ = ["LOG_FORMATS", "LOG_LEVELS", "LogFormat", "setup_logging"]

LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[str, ...] = ("text", "json")
LOG_LEVELS: tuple[str, ...] = ("debug", "info", "warning", "error")
# One line per GHL call (ours, and httpx2's "HTTP Request: POST https://.../contacts/<id>",
# which also put contact ids in every INFO log); alembic's "Context impl SQLiteImpl." on
# every start. Shown at debug.
_CHATTY = ("ghlsync.ghl", "httpx2", "alembic")


class _Handler(logging.StreamHandler[TextIO]):
    """Ours, so a second set-up replaces it instead of doubling every line."""


def setup_logging(
    level: str = "info", fmt: LogFormat | str = "text", stream: TextIO | None = None
) -> None:
    """Send every log record to `stream` (stderr) at `level` and above, as `fmt`."""
    number = _level(level)
    if fmt not in LOG_FORMATS:
        raise ValueError(f"log format {fmt!r} is not one of {', '.join(LOG_FORMATS)}")
    handler = _Handler(stream if stream is not None else sys.stderr)
    handler.setFormatter(_formatter(fmt == "json"))
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(number)
    for name in _CHATTY:
        logging.getLogger(name).setLevel(number if number <= logging.DEBUG else logging.WARNING)


def _level(level: str) -> int:
    if level.lower() not in LOG_LEVELS:
        raise ValueError(f"log level {level!r} is not one of {', '.join(LOG_LEVELS)}")
    return int(logging.getLevelNamesMapping()[level.upper()])


def _formatter(as_json: bool) -> structlog.stdlib.ProcessorFormatter:
    shared: list[Any] = [
        # The worker binds location, event type, entity and delivery id around each item.
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        _drop_color_message,
        structlog.processors.TimeStamper(fmt="%Y-%m-%dT%H:%M:%SZ", utc=True),
    ]
    if as_json:
        tail: list[Any] = [
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(default=str),
        ]
    else:
        tail = [structlog.dev.ConsoleRenderer(colors=False, exception_formatter=_plain_traceback)]
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *tail],
    )


def _drop_color_message(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
    # uvicorn adds a copy of its message with terminal colour codes as an extra field
    event.pop("color_message", None)
    return event


def _plain_traceback(sio: TextIO, exc_info: Any) -> None:
    # The standard traceback: a log file is read with grep, not in a colour terminal.
    structlog.dev.plain_traceback(sio, exc_info)
